"""mxparams.init: every initializer, the dispatch rules, the registry and the error paths."""

from __future__ import annotations

import json
import logging
import math
import sys
import types
from collections.abc import Iterator
from typing import Any

import ml_dtypes
import mxparams
import numpy as np
import pytest
from mxparams import init
from mxparams.init import InitDesc


class StandIn:
    """Array-like with only ``shape``, ``dtype`` and ``arr[:] = value`` (no numpy view)."""

    def __init__(self, shape: tuple[int, ...], dtype: Any = "float32") -> None:
        self._data = np.full(shape, 42, dtype=dtype)
        self.setitem_calls = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._data.dtype

    @property
    def size(self) -> int:
        return int(self._data.size)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.setitem_calls += 1
        self._data[key] = np.asarray(value)

    def asnumpy(self) -> np.ndarray:
        return self._data.copy()


class ViewStandIn(StandIn):
    """Zero-copy ``__array__``, like ``mxparams.NDArray`` on a CPU context."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._data


class CopyStandIn(StandIn):
    """``__array__`` that copies, like an array on a device."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._data.copy()


def values(arr: Any) -> np.ndarray:
    return arr.asnumpy() if hasattr(arr, "asnumpy") else np.asarray(arr)


def fresh(kind: str, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
    if kind == "numpy":
        return np.full(shape, 42, dtype=dtype)
    return {"standin": StandIn, "view": ViewStandIn, "copy": CopyStandIn}[kind](shape, dtype)


KINDS = ["numpy", "standin", "view", "copy"]


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = dict(init._REGISTRY)
    yield
    init._REGISTRY.clear()
    init._REGISTRY.update(saved)


class Probe(init.Initializer):
    """Fills weights with 7 so the tests can see which branch ran."""

    def _init_weight(self, _: str, arr: Any) -> None:
        arr[:] = 7


# ---------------------------------------------------------------------------
# InitDesc and dispatch


def test_initdesc_is_a_str_with_attrs() -> None:
    d = InitDesc("fc_weight")
    assert isinstance(d, str) and d == "fc_weight"
    assert d.attrs == {} and d.global_init is None
    d2 = InitDesc("b", {"__init__": "zeros"}, global_init=init.One())
    assert d2.attrs == {"__init__": "zeros"} and d2.global_init == init.One()


def test_call_sets_global_init() -> None:
    p = Probe()
    d = InitDesc("fc_weight")
    p(d, np.zeros(3))
    assert d.global_init is p
    other = init.Zero()
    d3 = InitDesc("fc_weight", global_init=other)
    p(d3, np.zeros(3))
    assert d3.global_init is other


SUFFIX_CASES = [
    ("fc_weight", 7.0),
    ("fc_bias", 0.0),
    ("bn_gamma", 1.0),
    ("bn_beta", 0.0),
    ("q_min", 0.0),
    ("q_max", 1.0),
    ("weight", 7.0),
    ("fc_bias_quantize", 0.0),
    ("stn_loc_weight", 7.0),
    ("upsampling_weight", 7.0),
    ("stn_loc_bias", 0.0),
]


@pytest.mark.parametrize("name,expected", SUFFIX_CASES)
def test_suffix_rules(name: str, expected: float) -> None:
    arr = np.full((6,), 42.0, np.float32)
    Probe()(InitDesc(name), arr)
    assert np.all(arr == expected)


@pytest.mark.parametrize(
    "name", ["bn_moving_mean", "bn_moving_var", "bn_running_mean", "x", "fc_weights", ""]
)
def test_unknown_suffix_raises(name: str) -> None:
    with pytest.raises(ValueError, match="Unknown initialization pattern for"):
        Probe()(InitDesc(name), np.zeros(3))


def test_quantized_weight_is_one_random_int8() -> None:
    arr = np.zeros((4, 5), np.int8)
    Probe()(InitDesc("conv_weight_quantize"), arr)
    assert len(np.unique(arr)) == 1 and -127 <= int(arr[0, 0]) < 127


def test_base_initializer_weight_not_implemented() -> None:
    with pytest.raises(NotImplementedError, match="Must override it"):
        init.Initializer()(InitDesc("fc_weight"), np.zeros(3))
    # biases still work on the base class
    b = np.ones(3)
    init.Initializer()(InitDesc("fc_bias"), b)
    assert np.all(b == 0)


def test_init_attr_overrides_suffix() -> None:
    arr = np.zeros((3, 4), np.float32)
    Probe()(InitDesc("fc_bias", {"__init__": "ones"}), arr)
    assert np.all(arr == 1)
    Probe()(InitDesc("anything", {"__init__": init.Constant(2.5)}), arr)
    assert np.all(arr == 2.5)
    Probe()(InitDesc("bn_gamma", {"__init__": '["constant", {"value": -1}]'}), arr)
    assert np.all(arr == -1)
    # an empty __init__ falls back to the suffix rules
    Probe()(InitDesc("fc_weight", {"__init__": ""}), arr)
    assert np.all(arr == 7)


def test_init_attr_uses_init_weight_even_for_biases() -> None:
    # Gluon's Parameter passes {'__init__': init}: a bare bias gets the initializer's weight rule
    mxparams.random.seed(0)
    arr = np.zeros(1000, np.float32)
    init.Uniform()(InitDesc("fc_bias", {"__init__": init.Uniform()}), arr)
    assert np.abs(arr).max() <= 0.07 and np.count_nonzero(arr) > 990


def test_legacy_string_path() -> None:
    cases = {
        "upsampling0_weight": None,  # bilinear: checked below
        "stn_loc_weight": 0.0,
        "fc_bias": 0.0,
        "bn_gamma": 1.0,
        "bn_beta": 0.0,
        "fc_weight": 7.0,
        "bn_moving_mean": 0.0,
        "bn_moving_var": 1.0,
        "bn_moving_inv_var": 0.0,
        "bn_moving_avg": 0.0,
        "q_min": 0.0,
        "q_max": 1.0,
    }
    for name, expected in cases.items():
        arr = np.full((1, 1, 4, 4), 42.0, np.float32)
        with pytest.warns(DeprecationWarning, match="deprecated"):
            Probe()(name, arr)
        if expected is None:
            np.testing.assert_array_equal(arr, _naive_bilinear((1, 1, 4, 4)))
        else:
            assert np.all(arr == expected), name
    loc = np.zeros(6, np.float32)
    with pytest.warns(DeprecationWarning):
        Probe()("stn_loc_bias", loc)
    np.testing.assert_array_equal(loc, [1, 0, 0, 0, 1, 0])


def test_legacy_errors() -> None:
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="Unknown init"):
        Probe()("bn_running_var", np.zeros(3))
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="name must be string"):
        Probe()(3, np.zeros(3))  # type: ignore[arg-type]
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="arr must be an array"):
        Probe()("fc_weight", [1.0, 2.0])
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="6 elements"):
        Probe()("stn_loc_bias", np.zeros(5))


# ---------------------------------------------------------------------------
# Deterministic initializers, on every kind of array


@pytest.mark.parametrize("kind", KINDS)
def test_zero_one_constant(kind: str) -> None:
    for make, expected in [
        (init.Zero, 0.0),
        (init.One, 1.0),
        (lambda: init.Constant(3.25), 3.25),
        (lambda: init.Constant(-2), -2.0),
    ]:
        arr = fresh(kind, (3, 5))
        make()(InitDesc("w", {"__init__": make()}), arr)
        assert np.all(values(arr) == expected)


@pytest.mark.parametrize("kind", KINDS)
def test_constant_array_value_broadcasts(kind: str) -> None:
    value = np.arange(5, dtype=np.float64)
    arr = fresh(kind, (3, 5))
    init.Constant(value)(InitDesc("fc_weight"), arr)
    np.testing.assert_array_equal(values(arr), np.broadcast_to(value, (3, 5)))
    arr2 = fresh(kind, (3, 5))
    init.Constant(ViewStandIn((3, 5)))(InitDesc("fc_weight"), arr2)
    assert np.all(values(arr2) == 42)


def test_constant_on_other_dtypes_and_0d() -> None:
    for dtype in (np.int32, np.int8, np.float16, ml_dtypes.bfloat16, np.uint8):
        arr = np.zeros((2, 2), dtype)
        init.Constant(5)(InitDesc("fc_weight"), arr)
        assert np.all(arr.astype(np.float64) == 5)
    scalar = np.zeros((), np.float32)
    init.Constant(1.5)(InitDesc("fc_weight"), scalar)
    assert scalar == 1.5


def test_constant_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        init.Constant(np.ones(4))(InitDesc("fc_weight"), np.zeros((3, 5)))


def _naive_bilinear(shape: tuple[int, ...]) -> np.ndarray:
    weight = np.zeros(int(np.prod(shape)), dtype="float32")
    f = math.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    for i in range(weight.size):
        x = i % shape[3]
        y = (i // shape[3]) % shape[2]
        weight[i] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    return weight.reshape(shape)


@pytest.mark.parametrize(
    "shape", [(1, 1, 4, 4), (2, 3, 3, 5), (1, 1, 1, 1), (3, 2, 4, 3), (2, 2, 3, 4, 2)]
)
@pytest.mark.parametrize("kind", KINDS)
def test_bilinear(shape: tuple[int, ...], kind: str) -> None:
    arr = fresh(kind, shape)
    init.Bilinear()(InitDesc("up_weight"), arr)
    np.testing.assert_array_equal(values(arr), _naive_bilinear(shape))


def test_bilinear_needs_4d() -> None:
    with pytest.raises(ValueError, match="4-D"):
        init.Bilinear()(InitDesc("up_weight"), np.zeros((3, 3)))


@pytest.mark.parametrize("n", [4, 8, 12, 10, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_lstm_bias(n: int, kind: str) -> None:
    arr = fresh(kind, (n,))
    init.LSTMBias(forget_bias=2.5)(InitDesc("lstm_i2h_bias", {"__init__": init.LSTMBias(2.5)}), arr)
    expected = np.zeros(n, np.float32)
    expected[n // 4 : 2 * (n // 4)] = 2.5
    np.testing.assert_array_equal(values(arr), expected)


def test_lstm_bias_needs_an_axis() -> None:
    with pytest.raises(ValueError, match="1-D"):
        init.LSTMBias()(InitDesc("b_weight"), np.zeros(()))


# ---------------------------------------------------------------------------
# Random initializers


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", ml_dtypes.bfloat16])
def test_uniform_and_normal_fill_every_target(kind: str, dtype: Any) -> None:
    mxparams.random.seed(11)
    arr = fresh(kind, (200, 100), dtype)
    init.Uniform(0.5)(InitDesc("fc_weight"), arr)
    v = values(arr).astype(np.float64)
    assert v.min() >= -0.5 and v.max() <= 0.5 and abs(v.std() - 0.5 / math.sqrt(3)) < 0.01
    arr = fresh(kind, (200, 100), dtype)
    init.Normal(0.2)(InitDesc("fc_weight"), arr)
    v = values(arr).astype(np.float64)
    assert abs(v.mean()) < 0.01 and abs(v.std() - 0.2) < 0.01


def test_view_targets_are_filled_in_place() -> None:
    for make in (init.Uniform, init.Normal, init.Xavier, init.Zero, init.Bilinear, init.LSTMBias):
        arr = ViewStandIn((2, 3, 4, 4))
        make()(InitDesc("x_weight"), arr)
        assert arr.setitem_calls == 0, make
        assert not np.all(arr.asnumpy() == 42)


def test_copy_targets_are_assigned() -> None:
    arr = CopyStandIn((20, 30))
    init.Xavier()(InitDesc("x_weight"), arr)
    assert arr.setitem_calls == 1
    assert not np.any(arr.asnumpy() == 42)


def test_noncontiguous_numpy_view_is_filled() -> None:
    base = np.zeros((40, 60), np.float32)
    init.Uniform(1.0)(InitDesc("x_weight"), base[:, ::3])
    assert np.count_nonzero(base[:, ::3]) == 800 and np.count_nonzero(base[:, 1::3]) == 0


def test_readonly_numpy_array_raises() -> None:
    arr = np.zeros((4, 4), np.float32)
    arr.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        init.Uniform()(InitDesc("x_weight"), arr)


def test_integer_target_gets_cast_values() -> None:
    arr = np.full((50, 50), 42, np.int32)
    init.Uniform(0.5)(InitDesc("x_weight"), arr)
    assert np.all(arr == 0)  # |draws| < 1 truncate to 0, as arr[:] = float_values does


def test_seed_makes_initializers_reproducible() -> None:
    def draw() -> list[np.ndarray]:
        out = []
        for make in (init.Uniform, init.Normal, init.Xavier, init.MSRAPrelu, init.Orthogonal):
            a = np.empty((30, 20), np.float32)
            make()(InitDesc("x_weight"), a)
            out.append(a)
        return out

    mxparams.random.seed(77)
    first = draw()
    mxparams.random.seed(77)
    for a, b in zip(first, draw(), strict=False):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], draw()[0])


def xavier_scale(shape: tuple[int, ...], factor_type: str, magnitude: float) -> float:
    hw = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[1] * hw, shape[0] * hw
    factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}[factor_type]
    return math.sqrt(magnitude / factor)


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3), (40, 30, 5), (16, 8, 3, 3, 3)])
@pytest.mark.parametrize("factor_type", ["avg", "in", "out"])
@pytest.mark.parametrize("rnd_type", ["uniform", "gaussian"])
def test_xavier_scale(shape: tuple[int, ...], factor_type: str, rnd_type: str) -> None:
    mxparams.random.seed(3)
    arr = np.empty(shape, np.float32)
    init.Xavier(rnd_type, factor_type, magnitude=2.5)(InitDesc("conv_weight"), arr)
    scale = xavier_scale(shape, factor_type, 2.5)
    v = arr.astype(np.float64)
    if rnd_type == "uniform":
        assert np.abs(v).max() <= scale and np.abs(v).max() > 0.99 * scale
        assert abs(v.std() / (scale / math.sqrt(3)) - 1) < 0.03
    else:
        assert abs(v.std() / scale - 1) < 0.03
    assert abs(v.mean()) < 0.05 * scale


def test_xavier_errors() -> None:
    with pytest.raises(ValueError, match="cannot be applied to vector fc_weight"):
        init.Xavier()(InitDesc("fc_weight"), np.zeros(5))
    with pytest.raises(ValueError, match="Incorrect factor type"):
        init.Xavier(factor_type="sum")(InitDesc("fc_weight"), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="Unknown random type"):
        init.Xavier(rnd_type="normal")(InitDesc("fc_weight"), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="cannot be applied"):
        init.Xavier()(InitDesc("fc_weight"), np.zeros((0, 0)))
    with pytest.raises(ValueError):
        init.Xavier(magnitude="big")  # type: ignore[arg-type]


@pytest.mark.parametrize("factor_type", ["avg", "in", "out"])
@pytest.mark.parametrize("slope", [0.25, 0.0, 1.0])
def test_msraprelu(factor_type: str, slope: float) -> None:
    mxparams.random.seed(4)
    shape = (128, 64, 3, 3)
    arr = np.empty(shape, np.float32)
    i = init.MSRAPrelu(factor_type, slope)
    assert i.rnd_type == "gaussian" and i._kwargs == {"factor_type": factor_type, "slope": slope}
    i(InitDesc("conv_weight"), arr)
    expected = xavier_scale(shape, factor_type, 2.0 / (1 + slope**2))
    assert abs(arr.std() / expected - 1) < 0.02


@pytest.mark.parametrize("shape", [(20, 50), (50, 20), (30, 30), (16, 4, 3, 3), (8, 3, 2)])
@pytest.mark.parametrize("rand_type", ["uniform", "normal"])
def test_orthogonal(shape: tuple[int, ...], rand_type: str) -> None:
    mxparams.random.seed(5)
    arr = np.empty(shape, np.float32)
    init.Orthogonal(scale=2.0, rand_type=rand_type)(InitDesc("w_weight"), arr)
    m = arr.reshape(shape[0], -1).astype(np.float64)
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    np.testing.assert_allclose(gram, 4.0 * np.eye(gram.shape[0]), atol=1e-4)


def test_orthogonal_errors() -> None:
    with pytest.raises(ValueError, match="Unknown random type"):
        init.Orthogonal(rand_type="gaussian")(InitDesc("w_weight"), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="1-D"):
        init.Orthogonal()(InitDesc("w_weight"), np.zeros(()))


def test_uniform_normal_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="low must be less or equal to high"):
        init.Uniform(-1)(InitDesc("w_weight"), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="has to be positive"):
        init.Normal(0)(InitDesc("w_weight"), np.zeros(3, np.float32))
    zero = np.ones(4, np.float32)
    init.Uniform(0)(InitDesc("w_weight"), zero)
    assert np.all(zero == 0)


# ---------------------------------------------------------------------------
# Registry, create, dumps, equality


def test_registry_names() -> None:
    # Each mxparams.Constant adds "constant_<name>_<id>" (as MXNet's does).
    assert sorted(n for n in init._REGISTRY if not n.startswith("constant_")) == [
        "bilinear", "constant", "lstmbias", "msraprelu", "normal", "one", "ones",
        "orthogonal", "uniform", "xavier", "zero", "zeros",
    ]  # fmt: skip


def test_create_forms() -> None:
    assert type(init.create("xavier")) is init.Xavier
    assert type(init.create("XaVier")) is init.Xavier
    assert type(init.create("zeros")) is init.Zero and type(init.create("ones")) is init.One
    x = init.create("xavier", "gaussian", magnitude=2)
    assert x._kwargs == {"rnd_type": "gaussian", "factor_type": "avg", "magnitude": 2}
    inst = init.Normal(0.3)
    assert init.create(inst) is inst
    assert init.create({"initializer": "normal", "sigma": 0.5}) == init.Normal(0.5)
    assert init.create(initializer="uniform", scale=0.2) == init.Uniform(0.2)
    assert init.create('["constant", {"value": 4}]') == init.Constant(4)
    assert init.create('{"initializer": "msraprelu", "slope": 0.1}') == init.MSRAPrelu(slope=0.1)
    for i in (
        init.Xavier("gaussian", "in", 2.34),
        init.MSRAPrelu("out", 0.5),
        init.LSTMBias(3.0),
        init.Orthogonal(2.0, "normal"),
        init.Zero(),
        init.Bilinear(),
        init.Constant([1, 2]),
    ):
        assert init.create(i.dumps()) == i


def test_create_errors() -> None:
    with pytest.raises(ValueError, match="foo is not registered"):
        init.create("Foo")
    with pytest.raises(ValueError, match="already an instance"):
        init.create(init.Zero(), 1)
    with pytest.raises(ValueError, match="string type"):
        init.create(3)
    with pytest.raises(TypeError, match="needs an initializer"):
        init.create()
    with pytest.raises(ValueError, match="no additional arguments"):
        init.create('["zero", {}]', 1)
    with pytest.raises(ValueError, match="malformed initializer JSON"):
        init.create('["zero"]')
    with pytest.raises(json.JSONDecodeError):
        init.create("[zero")
    with pytest.raises(ValueError, match="bogus is not registered"):
        Probe()(InitDesc("w", {"__init__": "bogus"}), np.zeros(2))


def test_register_and_alias(clean_registry: None) -> None:
    @init.register
    @init.alias("myinit", "MyOther")
    class CustomInit(init.Initializer):
        def __init__(self, v: float = 0.1) -> None:
            super().__init__(v=v)
            self.v = v

        def _init_weight(self, _: str, arr: Any) -> None:
            arr[:] = self.v

    for name in ("custominit", "myinit", "myother"):
        arr = np.zeros(3)
        init.create(name, v=0.5)(InitDesc("fc_weight"), arr)
        assert np.all(arr == 0.5)
    assert CustomInit().dumps() == '["custominit", {"v": 0.1}]'
    with pytest.warns(UserWarning, match="is overriding existing initializer"):

        @init.register
        class Xavier(init.Initializer):
            pass

    assert init.create("xavier").__class__ is Xavier
    with pytest.raises(TypeError, match="subclass of Initializer"):
        init.register(int)  # type: ignore[type-var]


def test_dumps() -> None:
    assert (
        init.Xavier().dumps()
        == '["xavier", {"rnd_type": "uniform", "factor_type": "avg", "magnitude": 3}]'
    )
    assert init.Normal(0.5).dumps() == '["normal", {"sigma": 0.5}]'
    assert init.Zero().dumps() == '["zero", {}]'
    c = init.Constant(np.array([[1.0, 2.0]]))
    assert c.dumps() == '["constant", {"value": [[1.0, 2.0]]}]'
    assert init.Constant(ViewStandIn((2,))).dumps() == '["constant", {"value": [42.0, 42.0]}]'


def test_equality_hash_repr() -> None:
    assert init.Xavier() == init.Xavier("uniform", "avg", 3)
    assert init.Xavier() != init.Xavier(magnitude=2)
    assert init.Zero() != init.One()
    assert init.Zero() != "zero"
    assert (init.Zero() == 0) is False
    with pytest.raises(TypeError, match="unhashable"):
        hash(init.Zero())
    assert repr(init.Normal(0.5)) == "Normal(sigma=0.5)"
    assert repr(init.MSRAPrelu()) == "MSRAPrelu(factor_type='avg', slope=0.25)"


# ---------------------------------------------------------------------------
# Mixed and Load


def test_mixed() -> None:
    m = init.Mixed(["bias$", ".*"], [init.Zero(), init.Constant(3)])
    b, w = np.ones(3), np.zeros(3)
    m(InitDesc("fc_bias"), b)
    m(InitDesc("fc_weight"), w)
    assert np.all(b == 0) and np.all(w == 3)
    only = init.Mixed(["conv"], [init.One()])
    with pytest.raises(ValueError, match="fc_weight did not match any pattern"):
        only(InitDesc("fc_weight"), w)
    with pytest.raises(ValueError, match="one initializer per pattern"):
        init.Mixed(["a", "b"], [init.One()])


def test_load_from_dict() -> None:
    src = {
        "arg:fc_weight": np.arange(6.0).reshape(2, 3),
        "aux:bn_moving_mean": np.ones(4),
        "plain": ViewStandIn((2,)),
    }
    loader = init.Load(src)
    assert sorted(loader.param) == ["bn_moving_mean", "fc_weight", "plain"]
    w = np.zeros((2, 3), np.float32)
    loader(InitDesc("fc_weight"), w)
    np.testing.assert_array_equal(w, np.arange(6.0).reshape(2, 3))
    p = StandIn((2,))
    loader("plain", p)
    assert np.all(p.asnumpy() == 42)
    with pytest.raises(ValueError, match="Shape mismatch, target \\(3, 2\\) vs loaded \\(2, 3\\)"):
        loader(InitDesc("fc_weight"), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="Cannot Initialize fc_bias. Not found in loaded param"):
        loader(InitDesc("fc_bias"), np.zeros(2))


def test_load_default_init_and_verbose(caplog: pytest.LogCaptureFixture) -> None:
    loader = init.Load({"fc_weight": np.ones((2, 2))}, default_init=init.Constant(5), verbose=True)
    w2, b = np.zeros(3), np.ones(3)
    with caplog.at_level(logging.INFO):
        loader(InitDesc("fc2_weight"), w2)
        loader(InitDesc("fc2_bias"), b)  # the default's own suffix rule: a bias is zeroed
        loader(InitDesc("fc_weight"), np.zeros((2, 2)))
    assert np.all(w2 == 5) and np.all(b == 0)
    assert "Initialized fc2_weight by default" in caplog.text
    assert "Initialized fc_weight by loading" in caplog.text


def test_load_from_file_uses_nd_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    calls = []

    def fake_load(fname: str) -> Any:
        calls.append(fname)
        return {"arg:w": np.full((2,), 9.0)} if fname.endswith("dict.params") else [np.ones(2)]

    fake = types.ModuleType("mxparams.nd")
    fake.load = fake_load  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mxparams.nd", fake)
    loader = init.Load(str(tmp_path / "dict.params"))
    arr = np.zeros(2)
    loader("w", arr)
    assert np.all(arr == 9) and calls == [str(tmp_path / "dict.params")]
    with pytest.raises(ValueError, match="dict of name to array"):
        init.Load(tmp_path / "list.params")
    with pytest.raises(ValueError, match="dict of name to array"):
        init.Load([np.ones(2)])


# ---------------------------------------------------------------------------
# Verbosity and module aliases


def test_set_verbosity_logs(caplog: pytest.LogCaptureFixture) -> None:
    i = init.One().set_verbosity(True)
    assert isinstance(i, init.One)
    arr = np.zeros((2, 2), np.float32)
    with caplog.at_level(logging.INFO):
        i(InitDesc("fc_weight"), arr)
        i(InitDesc("fc_bias"), arr)
        i(InitDesc("x", {"__init__": "zeros"}), arr)
    assert "Initialized fc_weight as weight: 1.0" in caplog.text
    assert "Initialized fc_bias as bias: 0.0" in caplog.text
    assert "Initialized x as zeros: 0.0" in caplog.text
    caplog.clear()
    j = init.One().set_verbosity(True, print_func=lambda a: f"sum={np.asarray(a).sum()}")
    with caplog.at_level(logging.INFO):
        j(InitDesc("fc_gamma"), arr)
    assert "Initialized fc_gamma as gamma: sum=4.0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        init.One().set_verbosity(False)(InitDesc("fc_weight"), arr)
    assert caplog.text == ""


def test_initializer_alias_module() -> None:
    import mxparams.initializer as initializer

    assert initializer is init and mxparams.initializer is init
    assert initializer.Xavier is init.Xavier
    assert set(init.__all__) <= set(dir(init))
