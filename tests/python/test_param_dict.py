"""mxparams.ParameterDict: mapping protocol, get/update policies, bulk operations, save/load."""

from __future__ import annotations

import threading
from pathlib import Path

import mxparams as mp
import numpy as np
import pytest
from mxparams import init as mpinit

C0, C1 = mp.cpu(0), mp.cpu(1)


class Fill(mpinit.Initializer):
    def __init__(self, value: float) -> None:
        super().__init__(value=value)
        self.value = value

    def _init_weight(self, desc, arr):  # type: ignore[no-untyped-def]
        np.asarray(arr)[...] = self.value


def vals(a):  # type: ignore[no-untyped-def]
    return np.asarray(a).copy()


def filled(prefix: str = "net_", n: int = 3, ctx=(C0, C1)) -> mp.ParameterDict:  # type: ignore[no-untyped-def]
    pd = mp.ParameterDict(prefix)
    for i in range(n):
        pd.get(f"w{i}", shape=(2, 3), init=Fill(float(i)))
    pd.initialize(ctx=list(ctx))
    return pd


def test_mapping_protocol_and_repr() -> None:
    pd = mp.ParameterDict("net_")
    w = pd.get("w", shape=(2, 3))
    b = pd.get("b", shape=(3,))
    assert pd.prefix == "net_"
    assert list(pd) == ["net_w", "net_b"] and list(pd.keys()) == ["net_w", "net_b"]
    assert list(pd.values()) == [w, b] and dict(pd.items()) == {"net_w": w, "net_b": b}
    assert pd["net_w"] is w and "net_b" in pd and "w" not in pd and len(pd) == 2
    with pytest.raises(KeyError):
        pd["nope"]
    assert repr(pd) == (
        "net_ (\n"
        "  Parameter net_w (shape=(2, 3), dtype=float32)\n"
        "  Parameter net_b (shape=(3,), dtype=float32)\n"
        ")"
    )
    assert repr(mp.ParameterDict()) == "(\n\n)"


def test_get_attribute_matching() -> None:
    pd = mp.ParameterDict()
    w = pd.get("w", shape=(0, 4), dtype="float32")
    assert pd.get("w", shape=(3, 0)) is w
    assert w.shape == (3, 4)
    assert pd.get("w", dtype=np.float32) is w
    with pytest.raises(
        ValueError, match=r"desired attribute does not match with stored for attribute 'shape'"
    ):
        pd.get("w", shape=(5, 4))
    with pytest.raises(ValueError, match="attribute 'dtype'"):
        pd.get("w", dtype="float16")
    with pytest.raises(ValueError, match="attribute 'lr_mult': desired '2.0' vs stored '1.0'"):
        pd.get("w", lr_mult=2.0)
    u = pd.get("u")
    pd.get("u", shape=(7,), init="zeros")  # unset attributes are filled in
    assert u.shape == (7,) and u.init == "zeros"


def test_shared_and_update() -> None:
    base = mp.ParameterDict("a_")
    w = base.get("w", shape=(2,))
    child = mp.ParameterDict("a_", shared=base)
    assert child.get("w") is w
    assert child["a_w"] is w
    other = mp.ParameterDict("a_")
    other.get("w", shape=(2,))
    with pytest.raises(ValueError, match="different Parameters with the same name 'a_w'"):
        child.update(other)
    third = mp.ParameterDict()
    third.update(child)
    assert third["a_w"] is w
    third.update(child)  # same objects: fine


def test_get_constant() -> None:
    pd = mp.ParameterDict("p_")
    with pytest.raises(KeyError, match="No constant named 'p_c'"):
        pd.get_constant("c")
    c = pd.get_constant("c", [1.0, 2.0])
    assert isinstance(c, mp.Constant) and pd.get_constant("c") is c
    assert pd.get_constant("c", [1.0, 2.0]) is c
    with pytest.raises(ValueError, match="already exists but it's value doesn't match"):
        pd.get_constant("c", [1.0, 3.0])
    pd.get("w", shape=(2,))
    with pytest.raises(ValueError, match="already exists but it is not a constant"):
        pd.get_constant("w", [1.0, 2.0])


def test_initialize_zero_grad_reset_ctx_list_ctx_setattr() -> None:
    pd = filled()
    assert set(pd.list_ctx()) == {C0, C1}
    assert vals(pd["net_w2"].data(C1)).tolist() == [[2.0] * 3] * 2
    for p in pd.values():
        np.asarray(p.grad(C1))[...] = 5
    pd.zero_grad()
    assert all(np.all(vals(p.grad(C1)) == 0) for p in pd.values())
    pd.reset_ctx(mp.cpu(3))
    assert pd.list_ctx() == [mp.cpu(3)]
    assert vals(pd["net_w1"].data()).tolist() == [[1.0] * 3] * 2
    pd.setattr("grad_req", "null")
    assert all(p.grad_req == "null" for p in pd.values())
    pd.zero_grad()  # nothing to zero: fine
    pd.setattr("lr_mult", 0.5)
    assert all(p.lr_mult == 0.5 for p in pd.values())
    with pytest.warns(UserWarning, match="already initialized"):
        pd.initialize(ctx=C0)
    pd.initialize(init=Fill(7.0), ctx=C0, force_reinit=True)
    assert vals(pd["net_w0"].data()).tolist() == [[0.0] * 3] * 2  # Parameter.init wins
    plain = mp.ParameterDict()
    plain.get("x", shape=(2,))
    plain.initialize(init=Fill(7.0), ctx=C0)
    assert vals(plain["x"].data()).tolist() == [7.0, 7.0]
    uninit = mp.ParameterDict()
    uninit.get("z", shape=(1,))
    with pytest.raises(RuntimeError, match="Parameter 'z' has not been initialized"):
        uninit.list_ctx()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        uninit.save("/nonexistent/never-written.params")


def test_save_load_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "a.params"
    pd = filled()
    np.asarray(pd["net_w0"].data(C1))[...] = 2.0  # saved value is the mean: 1.0
    with pytest.raises(
        ValueError,
        match="Prefix 'zz_' is to be striped before saving, but Parameter's name 'net_w0' does "
        "not start with 'zz_'",
    ):
        pd.save(f, strip_prefix="zz_")
    pd.save(str(f), strip_prefix="net_")
    loaded = mp.nd.load(str(f))
    assert list(loaded) == ["w0", "w1", "w2"]
    assert vals(loaded["w0"]).tolist() == [[1.0] * 3] * 2

    target = filled(n=3)
    for p in target.values():
        np.asarray(p.data(C1))[...] = -1
    before = target["net_w1"].data(C1)
    target.load(f, restore_prefix="net_")
    assert target["net_w1"].data(C1) is before  # copied into the existing buffers
    assert vals(before).tolist() == [[1.0] * 3] * 2
    assert vals(target["net_w0"].data(C0)).tolist() == [[1.0] * 3] * 2

    # Uninitialised parameters are initialised on ctx from the file.
    fresh = mp.ParameterDict("net_")
    for i in range(3):
        fresh.get(f"w{i}", shape=(0, 3))
    fresh.load(f, ctx=[C1], restore_prefix="net_")
    assert fresh.list_ctx() == [C1] and fresh["net_w2"].shape == (2, 3)
    assert np.all(vals(fresh["net_w2"].data()) == 2.0)
    # Deferred parameters finish on their recorded contexts with the file's shape.
    deferred = mp.ParameterDict()
    for i in range(3):
        deferred.get(f"w{i}", shape=(0, 0), allow_deferred_init=True)
    deferred.initialize(ctx=[C0, C1])
    deferred.load(f)
    assert deferred["w1"].list_ctx() == [C0, C1] and deferred["w1"].shape == (2, 3)
    assert np.all(vals(deferred["w1"].data(C1)) == 1.0)
    with pytest.raises(
        ValueError,
        match=r"Failed to load Parameter 'w0' on \[cpu\(2\)\] because it was previous "
        r"initialized on \[cpu\(0\), cpu\(1\)\]",
    ):
        deferred.load(f, ctx=mp.cpu(2))


def test_load_policies(tmp_path: Path) -> None:
    f = tmp_path / "a.params"
    filled(prefix="", n=9, ctx=(C0,)).save(f)
    small = mp.ParameterDict()
    small.get("w0", shape=(2, 3))
    small.get("zz", shape=(2, 3))
    with pytest.raises(
        ValueError,
        match=r"Parameter 'zz' is missing in file: .*a\.params, which contains parameters: "
        r"'w0', 'w1', 'w2', \.\.\., 'w5', 'w6', 'w7', 'w8'",
    ):
        small.load(f)
    with pytest.raises(
        ValueError,
        match=r"Parameter 'w1' loaded from file: .* is not present in ParameterDict, choices "
        r"are: 'w0', 'zz'. Set ignore_extra to True",
    ):
        small.load(f, allow_missing=True)
    small.load(f, allow_missing=True, ignore_extra=True)
    assert np.all(vals(small["w0"].data()) == 0.0)
    with pytest.raises(
        ValueError, match="restore_prefix is 'x_' but Parameters name 'w0' does not start with 'x_'"
    ):
        small.load(f, restore_prefix="x_")
    with pytest.raises(FileNotFoundError):
        small.load(tmp_path / "missing.params")
    with pytest.raises(ValueError, match="dtype_source must be one of"):
        small.load(f, allow_missing=True, ignore_extra=True, dtype_source="mine")
    lst = tmp_path / "list.params"
    mp.nd.save(str(lst), [mp.nd.zeros((2, 3))])
    with pytest.raises(ValueError, match="unnamed list"):
        small.load(lst)
    bad = tmp_path / "bad.params"
    bad.write_bytes(b"\x00" * 40)
    with pytest.raises(mp.ParamsFormatError):
        small.load(bad)


def test_load_shape_dtype_and_prefixes(tmp_path: Path) -> None:
    f = tmp_path / "h.params"
    mp.nd.save(
        str(f),
        {"arg:w": mp.nd.array([1.5, 2.5], dtype="float16"), "aux:s": mp.nd.array([1.0, 2.0])},
    )
    pd = mp.ParameterDict()
    w = pd.get("w", shape=(2,))
    s = pd.get("s", shape=(2,))
    pd.initialize(init=Fill(0), ctx=C0)
    with pytest.raises(
        ValueError,
        match="dtype incompatible expected float32 vs saved float16. Set cast_dtype=True",
    ):
        pd.load(f)
    pd.load(f, cast_dtype=True)
    assert w.dtype == np.float32 and vals(w.data()).tolist() == [1.5, 2.5]
    assert vals(s.data()).tolist() == [1.0, 2.0]
    pd.load(f, cast_dtype=True, dtype_source="saved")
    assert w.dtype == np.float16 and w.grad().dtype == np.float16
    bad = mp.ParameterDict()
    bad.get("w", shape=(3,))
    with pytest.raises(
        ValueError,
        match=r"Failed loading Parameter 'w' from saved params: shape incompatible expected "
        r"\(3,\) vs saved \(2,\)",
    ):
        bad.load(f, ignore_extra=True, cast_dtype=True)


def test_load_dict() -> None:
    pd = mp.ParameterDict()
    w = pd.get("w", shape=(2,))
    pd.load_dict({"arg:w": mp.nd.array([3.0, 4.0])}, ctx=C1)
    assert w.list_ctx() == [C1] and vals(w.data()).tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="Parameter 'w' is missing in param_dict"):
        pd.load_dict({"v": np.ones(2, np.float32)})


def test_concurrent_bulk_operations(tmp_path: Path) -> None:
    pd = filled(prefix="", n=50)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                for p in pd.values():
                    p.data(C0)
                    p.grad(C1)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def writer(i: int) -> None:
        try:
            for _ in range(20):
                pd.zero_grad()
                for p in pd.values():
                    p.set_data(np.full((2, 3), float(i), np.float32))
                pd.save(tmp_path / f"t{i}.params")
                pd.load(tmp_path / f"t{i}.params")
                for p in pd.values():
                    v = vals(p._reduce())
                    assert np.all(v == v.flat[0]), v
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=reader)] + [
        threading.Thread(target=writer, args=(i,)) for i in range(3)
    ]
    for t in ts:
        t.start()
    for t in ts[1:]:
        t.join(timeout=120)
    stop.set()
    ts[0].join(timeout=30)
    assert not any(t.is_alive() for t in ts)
    assert not errors, errors


GOLDEN = [
    # (file, restore_prefix, strip_prefix to re-save byte for byte or None)
    ("checkpoint_bn-0003", "", None),
    ("gluon_paramdict_mlp", "mlp0_", "mlp0_"),
    ("gluon_mobilenet0_25", "", ""),
    ("dtypes_all_dict", "", ""),
    ("dtype_bfloat16", "", ""),
    ("gluon_np_v3", "", None),
    ("shapes_ndim1_to_6", "", ""),
]


@pytest.mark.parametrize(("name", "restore", "strip"), GOLDEN)
def test_golden_corpus_loads_and_resaves(
    data_dir: Path, tmp_path: Path, name: str, restore: str, strip: str | None
) -> None:
    import json

    meta = json.loads((data_dir / f"{name}.json").read_text())
    expected = np.load(data_dir / f"{name}.expected.npz")
    pd = mp.ParameterDict(restore)
    stored = {}
    for a in meta["arrays"]:
        key = a["name"]
        short = key[4:] if key.startswith(("arg:", "aux:")) else key
        stored[restore + short] = a["npz_key"]
        # Unknown dims everywhere: the file supplies the shape.
        pd.get(short, shape=tuple(0 for _ in a["shape"]), dtype=a["dtype"])
    pd.load(data_dir / f"{name}.params", ctx=[C0, C1], restore_prefix=restore)
    for full, key in stored.items():
        got = np.asarray(pd[full].data(C1))
        want = expected[key]
        assert got.shape == want.shape, full
        assert got.tobytes() == want.tobytes(), full
    if strip is not None:
        out = tmp_path / "re.params"
        pd.save(out, strip_prefix=strip)
        assert out.read_bytes() == (data_dir / f"{name}.params").read_bytes()


class _Ramp(mpinit.Initializer):
    """A custom initializer: takes the general (per-parameter) path."""

    def _init_weight(self, name: str, arr: mp.nd.NDArray) -> None:
        arr[:] = np.arange(arr.size, dtype=arr.dtype).reshape(arr.shape)


def _batch_dict() -> mp.ParameterDict:
    pd = mp.ParameterDict("net_")
    pd.get("a", shape=(5, 3))
    pd.get("b", shape=(4,), init=mpinit.Normal(0.5))
    pd.get("ramp", shape=(2, 3), init=_Ramp())
    pd.get("c", shape=(7, 3), init=mpinit.Xavier())
    pd.get("ints", shape=(3,), dtype="int32")  # a random fill does not suit int32
    pd.get("zeros", shape=(3,), dtype="int64", init=mpinit.Zero())
    pd.get("later", shape=(0, 2), allow_deferred_init=True)
    pd.get("half", shape=(6,), dtype="float16", init=mpinit.Constant(0.3))
    pd.get("d", shape=(300, 400))
    return pd


def test_dict_initialize_equals_one_by_one() -> None:
    mp.random.seed(5)
    batched = _batch_dict()
    batched.initialize(ctx=mp.cpu())
    mp.random.seed(5)
    single = _batch_dict()
    for p in single.values():
        p.initialize(default_init=mpinit.Uniform(), ctx=mp.cpu())
    for k in single.keys():
        if k == "net_later":
            assert batched[k].list_ctx() == single[k].list_ctx() == [mp.cpu()]
            continue
        a, b = batched[k].data().asnumpy(), single[k].data().asnumpy()
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b, err_msg=k)
        assert not batched[k].grad().asnumpy().any()
    # The stream counter moved on by the same amount: the next draws agree.
    x, y = mp.ParameterDict("x_"), mp.ParameterDict("y_")
    mp.random.seed(5)
    batched_again = _batch_dict()
    batched_again.initialize(ctx=mp.cpu())
    x.get("n", shape=(9,)).initialize(ctx=mp.cpu())
    mp.random.seed(5)
    for p in _batch_dict().values():
        p.initialize(default_init=mpinit.Uniform(), ctx=mp.cpu())
    y.get("n", shape=(9,)).initialize(ctx=mp.cpu())
    np.testing.assert_array_equal(x["x_n"].data().asnumpy(), y["y_n"].data().asnumpy())


def test_dict_initialize_skips_and_warns_like_one_by_one() -> None:
    pd = _batch_dict()
    pd["net_c"].initialize(init=mpinit.One(), ctx=mp.cpu())
    with pytest.warns(UserWarning, match="'net_c' is already initialized"):
        pd.initialize(ctx=mp.cpu())
    np.testing.assert_array_equal(pd["net_c"].data().asnumpy(), np.ones((7, 3), "float32"))
    before = pd["net_a"].data().asnumpy()
    pd.initialize(init=mpinit.Zero(), ctx=[mp.cpu(0), mp.cpu(1)], force_reinit=True)
    assert pd["net_a"].list_ctx() == [mp.cpu(0), mp.cpu(1)]
    assert before.any() and not pd["net_a"].data(mp.cpu(1)).asnumpy().any()
    # A parameter whose shape is unknown and may not be deferred fails where
    # it stands; the ones before it are initialized.
    bad = mp.ParameterDict("bad_")
    bad.get("ok", shape=(2,))
    bad.get("unknown", shape=(0, 2))
    bad.get("after", shape=(2,))
    with pytest.raises(ValueError, match="invalid shape"):
        bad.initialize(ctx=mp.cpu())
    assert bad["bad_ok"].data().shape == (2,)
    with pytest.raises(RuntimeError):
        bad["bad_after"].data()


def test_one_map_shared_by_views_and_shared_lookup() -> None:
    base = mp.ParameterDict("net_")
    w = base.get("w", shape=(2, 3))
    assert base.get("w") is w and base["net_w"] is w
    child = mp.ParameterDict("net_", shared=base)
    assert "net_w" not in child
    assert child.get("w") is w  # found in the shared dict and bound here
    assert list(child.keys()) == ["net_w"] and child["net_w"] is w
    # MXNet's private ``_params`` writes through to the one map.
    other = mp.Parameter("other", shape=(1,))
    child._params["other"] = other
    assert child["other"] is other and list(child) == ["net_w", "other"]
    del child._params["net_w"]
    assert list(child.items()) == [("other", other)]
    assert "net_w" in base  # the shared dict is not touched


def test_get_merges_native_attributes_and_keeps_python_ones() -> None:
    pd = mp.ParameterDict()
    w = pd.get("w", shape=(0, 3), lr_mult=2)
    assert pd.get("w", shape=(4, 0), dtype=np.float32, lr_mult=2.0) is w
    assert w.shape == (4, 3) and w.lr_mult == 2
    with pytest.raises(ValueError, match="attribute 'lr_mult': desired '3.0' vs stored '2.0'"):
        pd.get("w", lr_mult=3.0)
    assert pd.get("w", init="zeros").init == "zeros"  # absent: set
    with pytest.raises(ValueError, match="attribute 'init'"):
        pd.get("w", init="ones")
    assert pd.get("w", allow_deferred_init=True) is w  # MXNet sets unknown attributes


def test_fill_spec_xavier_scale_is_the_initializers() -> None:
    spec = mp._native.FillSpec.xavier("gaussian", "in", 2.0)
    fill = spec.resolve("w", [5, 8])
    assert (fill.kind, fill.args) == ("normal", [0.0, 0.5])
    with pytest.raises(ValueError, match="requires at least 2D"):
        spec.resolve("b", [3])
    # Native and general paths fill the same values from the same stream.
    mp.random.seed(3)
    p = mp.Parameter("p_weight", shape=(6, 4), init=mpinit.Xavier())
    p.initialize()
    mp.random.seed(3)
    arr = np.zeros((6, 4), np.float32)
    mpinit.Xavier()(mpinit.InitDesc("p_weight"), arr)
    np.testing.assert_array_equal(p.data().asnumpy(), arr)


def test_reference_cycle_through_the_dict_is_collected() -> None:
    import gc
    import weakref

    pd = mp.ParameterDict()
    p = pd.get("w", shape=(2,))
    p.owner = pd  # type: ignore[attr-defined]  # a cycle: dict -> parameter -> dict
    ref = weakref.ref(p)
    del pd, p
    gc.collect()
    assert ref() is None


def test_missing_keys_raise_key_error() -> None:
    pd = mp.ParameterDict()
    with pytest.raises(KeyError):
        pd["nothing"]
    with pytest.raises(KeyError):
        pd[1]  # type: ignore[index]
    with pytest.raises(KeyError):
        del pd._params["nothing"]


def test_from_file_builds_every_parameter(tmp_path: Path) -> None:
    import mxparams as mpx

    path = tmp_path / "export-0000.params"
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    mpx.nd.save(
        path,
        {
            "arg:fc_weight": mpx.nd.array(w),
            "arg:fc_bias": mpx.nd.array(np.ones(2, np.float16), dtype="float16"),
            "aux:bn_running_mean": mpx.nd.zeros((3,)),
        },
    )
    pdict = mpx.ParameterDict.from_file(path, prefix="net_")
    assert sorted(pdict.keys()) == ["net_bn_running_mean", "net_fc_bias", "net_fc_weight"]
    assert pdict["net_fc_weight"].data().asnumpy().tolist() == w.tolist()
    assert pdict["net_fc_bias"].dtype == np.float16
    assert pdict["net_bn_running_mean"].grad_req == "null"
    assert pdict["net_fc_weight"].grad_req == "write"
    # What it builds saves back to the same arrays.
    out = tmp_path / "again.params"
    pdict.save(out, strip_prefix="net_")
    again = mpx.nd.load(out)
    assert isinstance(again, dict)
    assert again["fc_weight"].asnumpy().tolist() == w.tolist()
    mpx.nd.save(tmp_path / "list.params", [mpx.nd.zeros((1,))])
    with pytest.raises(mpx.MXParamsValueError, match="list"):
        mpx.ParameterDict.from_file(tmp_path / "list.params")
