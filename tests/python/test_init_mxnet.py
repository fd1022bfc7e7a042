"""Parity of mxparams.init with MXNet 1.9.1's initializers (MXNet runs in a subprocess).

Deterministic initializers must give MXNet's values bit for bit; random ones must
match the scale MXNet's formulas give, which MXNet's own draws confirm.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import mxparams
import numpy as np
import pytest
from mxparams import init
from mxparams.init import InitDesc

pytestmark = pytest.mark.mxnet

MXNet = Callable[..., Any]

DETERMINISTIC = [
    # (initializer JSON, parameter name, shape, dtype)
    ('["zero", {}]', "fc_weight", [3, 4], "float32"),
    ('["one", {}]', "fc_weight", [2, 3, 4], "float64"),
    ('["constant", {"value": 0.5}]', "fc_weight", [5], "float32"),
    ('["constant", {"value": -3}]', "conv_weight", [2, 2, 3, 3], "float16"),
    ('["constant", {"value": 0.1}]', "fc_weight", [7, 3], "float32"),
    ('["constant", {"value": 0.1}]', "fc_weight", [7, 3], "float16"),
    ('["constant", {"value": 0.1}]', "fc_weight", [7, 3], "float64"),
    ('["bilinear", {}]', "up_weight", [1, 1, 4, 4], "float32"),
    ('["bilinear", {}]', "up_weight", [2, 3, 3, 5], "float32"),
    ('["bilinear", {}]', "up_weight", [3, 2, 7, 6], "float64"),
    ('["bilinear", {}]', "up_weight", [2, 2, 5, 5], "float16"),
    ('["bilinear", {}]', "up_weight", [1, 1, 1, 1], "float32"),
    ('["lstmbias", {}]', "lstm_weight", [8], "float32"),
    ('["lstmbias", {"forget_bias": 2.5}]', "lstm_weight", [12], "float32"),
    ('["lstmbias", {"forget_bias": 0.3}]', "lstm_weight", [10], "float64"),
    ('["lstmbias", {"forget_bias": 0.3}]', "lstm_weight", [16], "float16"),
    ('["zero", {}]', "bn_gamma", [4], "float32"),  # suffix: gamma -> 1
    ('["one", {}]', "fc_bias", [4], "float32"),  # suffix: bias -> 0
]


def test_deterministic_values_bit_exact(mxnet: MXNet) -> None:
    expected = mxnet(
        """
        result = []
        for spec, name, shape, dtype in cases:
            arr = mx.nd.ones(shape, dtype=dtype) * 42
            mx.init.create(spec)(mx.init.InitDesc(name), arr)
            result.append(arr.asnumpy().astype("float64").tolist())
        """,
        cases=DETERMINISTIC,
    )
    for (spec, name, shape, dtype), want in zip(DETERMINISTIC, expected, strict=False):
        arr = np.full(shape, 42, dtype=dtype)
        init.create(spec)(InitDesc(name), arr)
        got = arr.astype(np.float64)
        assert np.array_equal(got, np.array(want)), (spec, shape, dtype)
        assert got.tobytes() == np.array(want).tobytes(), (spec, shape, dtype)


def test_constant_array_value_matches(mxnet: MXNet) -> None:
    value = np.linspace(-1, 1, 6).reshape(2, 3).tolist()
    expected = mxnet(
        """
        arr = mx.nd.zeros((2, 3))
        c = mx.init.Constant(mx.nd.array(value))
        c(mx.init.InitDesc("w_weight"), arr)
        result = [arr.asnumpy().astype("float64").tolist(), c.dumps()]
        """,
        value=value,
    )
    arr = np.zeros((2, 3), np.float32)
    c = init.Constant(np.array(value, np.float32))
    c(InitDesc("w_weight"), arr)
    assert arr.astype(np.float64).tolist() == expected[0]
    assert c.dumps() == expected[1]


NAMES = [
    "fc_weight", "fc_bias", "bn_gamma", "bn_beta", "q_min", "q_max", "weight", "bias",
    "bn_moving_mean", "bn_moving_var", "bn_moving_inv_var", "bn_moving_avg", "bn_running_mean",
    "bn_running_var", "upsampling0_weight", "stn_loc_weight", "stn_loc_bias", "fc_bias_quantize",
    "fc_weights", "data", "", "Weight", "layer_max_pool", "xmin",
]  # fmt: skip

_DISPATCH_SCRIPT = """
class Probe(mx.init.Initializer):
    def _init_weight(self, _, arr):
        arr[:] = 7

def run(desc):
    arr = mx.nd.ones((6, 1, 2, 2)) * 42
    try:
        Probe()(desc, arr)
    except Exception as e:
        return "ERR:" + type(e).__name__
    return arr.asnumpy().astype("float64").ravel().tolist()

result = {
    "desc": [run(mx.init.InitDesc(n)) for n in names],
    "legacy": [run(n) for n in names],
    "attr": [run(mx.init.InitDesc(n, {"__init__": "ones"})) for n in names],
}
"""


class Probe(init.Initializer):
    def _init_weight(self, _: str, arr: Any) -> None:
        arr[:] = 7


def _run_probe(desc: Any) -> Any:
    arr = np.full((6, 1, 2, 2), 42, np.float32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            Probe()(desc, arr)
    except Exception as e:  # the builtin type MXNet would raise is what is compared
        builtin = next(c for c in type(e).__mro__ if c.__module__ == "builtins")
        return "ERR:" + builtin.__name__
    return arr.astype(np.float64).ravel().tolist()


def test_suffix_dispatch_matches(mxnet: MXNet) -> None:
    expected = mxnet(_DISPATCH_SCRIPT, names=NAMES)
    got = {
        "desc": [_run_probe(InitDesc(n)) for n in NAMES],
        "legacy": [_run_probe(n) for n in NAMES],
        "attr": [_run_probe(InitDesc(n, {"__init__": "ones"})) for n in NAMES],
    }
    for path in ("desc", "legacy", "attr"):
        for name, want, have in zip(NAMES, expected[path], got[path], strict=False):
            assert have == want, (path, name)


def test_quantized_dispatch_matches(mxnet: MXNet) -> None:
    expected = mxnet(
        """
        arr = mx.nd.zeros((3, 4), dtype="int8")
        mx.init.Uniform()(mx.init.InitDesc("conv_weight_quantize"), arr)
        v = arr.asnumpy()
        result = [len(set(v.ravel().tolist())), int(v.min()), int(v.max())]
        """
    )
    arr = np.zeros((3, 4), np.int8)
    init.Uniform()(InitDesc("conv_weight_quantize"), arr)
    assert expected[0] == 1 and -127 <= expected[1] < 127
    assert len(np.unique(arr)) == 1 and -127 <= int(arr.min()) < 127


CONSTRUCTORS: list[tuple[str, list[Any], dict[str, Any]]] = [
    ("Xavier", [], {}),
    ("Xavier", [], {"factor_type": "in", "magnitude": 2.34}),
    ("Xavier", ["gaussian", "out", 2], {}),
    ("MSRAPrelu", [], {}),
    ("MSRAPrelu", ["in", 0.1], {}),
    ("Uniform", [], {}),
    ("Uniform", [0.5], {}),
    ("Normal", [], {}),
    ("Normal", [], {"sigma": 2}),
    ("Zero", [], {}),
    ("One", [], {}),
    ("Constant", [3], {}),
    ("Constant", [0.25], {}),
    ("Orthogonal", [], {}),
    ("Orthogonal", [2.0, "normal"], {}),
    ("Bilinear", [], {}),
    ("LSTMBias", [], {}),
    ("LSTMBias", [], {"forget_bias": 0.5}),
]


def test_dumps_and_create_roundtrip_match(mxnet: MXNet) -> None:
    expected = mxnet(
        """
        result = []
        for cls, args, kwargs in cases:
            d = getattr(mx.init, cls)(*args, **kwargs).dumps()
            result.append([d, mx.init.create(d).dumps(), type(mx.init.create(d)).__name__])
        """,
        cases=CONSTRUCTORS,
    )
    for (cls, args, kwargs), (dumps, redumps, klass) in zip(CONSTRUCTORS, expected, strict=False):
        ours = getattr(init, cls)(*args, **kwargs)
        assert ours.dumps() == dumps
        again = init.create(ours.dumps())
        assert again.dumps() == redumps and type(again).__name__ == klass


def test_registry_names_match(mxnet: MXNet) -> None:
    expected = mxnet(
        """
        from mxnet import registry
        result = sorted(registry._REGISTRY[mx.init.Initializer])
        """
    )
    # FusedRNN needs MXNet's RNN cells to unpack fused weights: not provided.
    # Each gluon Constant registers "constant_<name>_<id>" (as in MXNet).
    ours = sorted(n for n in init._REGISTRY if not n.startswith("constant_"))
    assert ours == [n for n in expected if n != "fusedrnn"]


RANDOM_CASES: list[tuple[str, list[int]]] = [
    ('["uniform", {}]', [200, 300]),
    ('["uniform", {"scale": 1.5}]', [64, 32, 3, 3]),
    ('["normal", {}]', [200, 300]),
    ('["normal", {"sigma": 0.7}]', [64, 32, 3, 3]),
    ('["msraprelu", {}]', [128, 64, 3, 3]),
    ('["msraprelu", {"factor_type": "in", "slope": 0}]', [256, 300]),
    ('["msraprelu", {"factor_type": "out", "slope": 1.0}]', [32, 64, 5, 5]),
] + [
    (f'["xavier", {{"rnd_type": "{r}", "factor_type": "{f}", "magnitude": {m}}}]', s)
    for r in ("uniform", "gaussian")
    for f in ("avg", "in", "out")
    for m, s in ((3, [300, 200]), (2.5, [64, 32, 3, 3]), (1, [40, 30, 7]))
]


def expected_scale(spec: str, shape: list[int]) -> tuple[str, float]:
    """The distribution and its scale (bound or std) from MXNet 1.9.1's formulas."""
    name, kw = init.create(spec).dumps(), None
    i = init.create(spec)
    if isinstance(i, init.Uniform):
        return "uniform", float(i.scale)
    if isinstance(i, init.Normal):
        return "normal", float(i.sigma)
    assert isinstance(i, init.Xavier), (name, kw)
    hw = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[1] * hw, shape[0] * hw
    factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}[i.factor_type]
    scale = math.sqrt(i.magnitude / factor)
    return ("uniform" if i.rnd_type == "uniform" else "normal"), scale


def _stats(a: np.ndarray) -> list[float]:
    v = a.astype(np.float64)
    return [float(np.abs(v).max()), float(v.std()), float(v.mean())]


def test_random_initializer_statistics(mxnet: MXNet) -> None:
    theirs = mxnet(
        """
        result = []
        for k, (spec, shape) in enumerate(cases):
            mx.random.seed(k)
            arr = mx.nd.zeros(shape)
            mx.init.create(spec)(mx.init.InitDesc("x_weight"), arr)
            v = arr.asnumpy().astype("float64")
            result.append([float(np.abs(v).max()), float(v.std()), float(v.mean())])
        """,
        cases=RANDOM_CASES,
    )
    mxparams.random.seed(1)
    for (spec, shape), their in zip(RANDOM_CASES, theirs, strict=False):
        arr = np.zeros(shape, np.float32)
        init.create(spec)(InitDesc("x_weight"), arr)
        ours = _stats(arr)
        dist, scale = expected_scale(spec, shape)
        std = scale / math.sqrt(3) if dist == "uniform" else scale
        for who, (amax, sd, mean) in (("mxnet", their), ("mxparams", ours)):
            assert abs(sd / std - 1) < 0.03, (who, spec, shape, sd, std)
            assert abs(mean) < 0.03 * std, (who, spec, shape, mean)
            if dist == "uniform":
                assert 0.99 * scale < amax <= scale * (1 + 1e-6), (who, spec, shape, amax)
            else:
                assert amax > 3.5 * scale, (who, spec, shape, amax)
        assert abs(ours[1] / their[1] - 1) < 0.04, (spec, shape)


ORTHO_CASES = [
    ('["orthogonal", {}]', [20, 50]),
    ('["orthogonal", {"scale": 2.0}]', [50, 20]),
    ('["orthogonal", {"rand_type": "normal"}]', [16, 4, 3, 3]),
    ('["orthogonal", {"scale": 0.5, "rand_type": "normal"}]', [30, 30]),
]


def test_orthogonal_matches(mxnet: MXNet) -> None:
    theirs = mxnet(
        """
        result = []
        for spec, shape in cases:
            arr = mx.nd.zeros(shape)
            mx.init.create(spec)(mx.init.InitDesc("x_weight"), arr)
            m = arr.asnumpy().astype("float64").reshape(shape[0], -1)
            g = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
            result.append(g.tolist())
        """,
        cases=ORTHO_CASES,
    )
    for (spec, shape), their_gram in zip(ORTHO_CASES, theirs, strict=False):
        arr = np.zeros(shape, np.float32)
        i = init.create(spec)
        i(InitDesc("x_weight"), arr)
        m = arr.astype(np.float64).reshape(shape[0], -1)
        gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        want = i.scale**2 * np.eye(gram.shape[0])  # type: ignore[attr-defined]
        np.testing.assert_allclose(np.array(their_gram), want, atol=1e-4)
        np.testing.assert_allclose(gram, want, atol=1e-4)


ERROR_CASES = [
    ('["xavier", {}]', "fc_weight", [5]),
    ('["xavier", {"factor_type": "sum"}]', "fc_weight", [2, 2]),
    ('["xavier", {"rnd_type": "normal"}]', "fc_weight", [2, 2]),
    ('["msraprelu", {}]', "fc_weight", [3]),
    ('["uniform", {}]', "bn_running_mean", [3]),
]


def test_value_errors_match(mxnet: MXNet) -> None:
    theirs = mxnet(
        """
        result = []
        for spec, name, shape in cases:
            try:
                mx.init.create(spec)(mx.init.InitDesc(name), mx.nd.zeros(shape))
                result.append(None)
            except Exception as e:
                result.append([type(e).__name__, str(e)])
        """,
        cases=ERROR_CASES,
    )
    for (spec, name, shape), their in zip(ERROR_CASES, theirs, strict=False):
        with pytest.raises(ValueError) as info:
            init.create(spec)(InitDesc(name), np.zeros(shape, np.float32))
        assert their[0] == "ValueError"
        # Same message, up to the hint that names MXNet's symbol API.
        assert str(info.value)[:60] == their[1][:60]


def test_load_and_mixed_match(mxnet: MXNet) -> None:
    theirs = mxnet(
        """
        src = {"arg:fc_weight": mx.nd.array([[1, 2], [3, 4]]), "aux:bn_moving_var": mx.nd.ones(3),
               "plain_weight": mx.nd.array([5, 6])}
        ld = mx.init.Load(src, default_init=mx.init.Constant(9))
        mixed = mx.init.Mixed(["fc_.*|bn_.*|plain.*", ".*"], [ld, mx.init.Constant(-1)])
        out = {}
        for name, shape in [("fc_weight", (2, 2)), ("bn_moving_var", (3,)), ("plain_weight", (2,)),
                            ("fc_other_weight", (2,)), ("conv_weight", (2,)), ("fc_bias", (2,))]:
            arr = mx.nd.zeros(shape)
            mixed(mx.init.InitDesc(name), arr)
            out[name] = arr.asnumpy().tolist()
        result = [sorted(ld.param), out]
        """
    )
    src = {
        "arg:fc_weight": np.array([[1.0, 2], [3, 4]]),
        "aux:bn_moving_var": np.ones(3),
        "plain_weight": np.array([5.0, 6]),
    }
    ld = init.Load(src, default_init=init.Constant(9))
    mixed = init.Mixed(["fc_.*|bn_.*|plain.*", ".*"], [ld, init.Constant(-1)])
    assert sorted(ld.param) == theirs[0]
    for name, want in theirs[1].items():
        arr = np.zeros(np.array(want).shape, np.float32)
        mixed(InitDesc(name), arr)
        assert arr.tolist() == want, name
