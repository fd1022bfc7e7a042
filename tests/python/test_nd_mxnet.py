"""Cross-compatibility with real MXNet 1.9.1, both directions.

Two oracle runs serve every test here: the first has MXNet write files (plain
``nd.save`` with float16/bool/int64/sparse arrays, a V3 ``npx.save`` file, a
Gluon ResNet-18's ``save_parameters`` and ``export``) together with what MXNet's
own loader reads back from them; the second has MXNet read files that mxparams
wrote and report what it found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_dtypes
import mxparams as mp
import numpy as np
import pytest
from mxparams import nd

pytestmark = pytest.mark.mxnet

MXNET_WRITES = """
out = outdir
np.random.seed(0)
mx.random.seed(0)

def dump(fname, loaded):
    exp = {}
    for k, v in (loaded.items() if isinstance(loaded, dict) else enumerate(loaded)):
        k = str(k)
        if v.stype != 'default':
            exp[k + '/data'] = v.data.asnumpy()
            exp[k + '/indices'] = v.indices.asnumpy()
            if v.stype == 'csr':
                exp[k + '/indptr'] = v.indptr.asnumpy()
        exp[k] = v.asnumpy()
    np.savez(fname, **exp)

dense = np.zeros((5, 4), dtype='float32')
dense[1] = [1, 0, 2, 0]
dense[3] = [0, 3, 0, 4]
mixed = {
    'f16': mx.nd.array(np.random.randn(3, 5), dtype='float16'),
    'bool': mx.nd.array([1, 0, 1, 1]).astype('bool'),
    'i64': mx.nd.array(np.array([2**40, -3, 7]), dtype='int64'),
    'f64': mx.nd.array(np.random.randn(7), dtype='float64'),
    'rsp': mx.nd.sparse.row_sparse_array(dense),
    'csr': mx.nd.sparse.csr_matrix(dense),
}
mx.nd.waitall()
mx.nd.save(out + '/mx_mixed.params', mixed)
dump(out + '/mx_mixed.npz', mx.nd.load(out + '/mx_mixed.params'))
mx.nd.save(out + '/mx_list.params', [mixed['f16'], mixed['i64']])
dump(out + '/mx_list.npz', mx.nd.load(out + '/mx_list.params'))

mx.npx.set_np()
v3 = {'s': mx.np.array(2.5), 'm': mx.np.arange(6).reshape(2, 3), 'z': mx.np.zeros((2, 0, 3))}
mx.npx.save(out + '/mx_v3.params', v3)
back = mx.npx.load(out + '/mx_v3.params')
np.savez(out + '/mx_v3.npz', **{k: v.asnumpy() for k, v in back.items()})
mx.npx.reset_np()

net = mx.gluon.model_zoo.vision.resnet18_v1()
net.initialize(mx.init.Xavier())
net.hybridize()
net(mx.nd.ones((1, 3, 32, 32)))
net.save_parameters(out + '/resnet.params')
dump(out + '/resnet.npz', mx.nd.load(out + '/resnet.params'))
net.export(out + '/resnet', epoch=7)
dump(out + '/resnet-0007.npz', mx.nd.load(out + '/resnet-0007.params'))
result = {
    'structural': list(mx.nd.load(out + '/resnet.params')),
    'export': list(mx.nd.load(out + '/resnet-0007.params')),
}
"""

MXNET_READS = """
out = outdir
res = {}

def compare(tag, loaded, expected):
    items = loaded.items() if isinstance(loaded, dict) else enumerate(loaded)
    got = {}
    for k, v in items:
        k = str(k)
        dt = v.dtype if isinstance(v.dtype, type) else v.dtype
        name = np.dtype(dt).names[0] if np.dtype(dt).names else np.dtype(dt).name
        vals = v.astype('float32').asnumpy() if name == 'bfloat16' else v.asnumpy()
        want = expected[k].astype(vals.dtype)
        same = vals.shape == want.shape and vals.tobytes() == want.tobytes()
        got[k] = {'stype': v.stype, 'dtype': name, 'shape': list(vals.shape), 'equal': bool(same)}
    res[tag] = {'kind': type(loaded).__name__, 'arrays': got}

for tag in ['ours_mixed', 'ours_list', 'ours_mmap_resave']:
    compare(tag, mx.nd.load(out + '/' + tag + '.params'), np.load(out + '/' + tag + '.npz'))

mx.npx.set_np()
loaded = mx.npx.load(out + '/ours_v3.params')
exp = np.load(out + '/ours_v3.npz')
res['ours_v3'] = {
    k: {'shape': list(v.shape), 'equal': bool(v.asnumpy().tobytes() == exp[k].tobytes())}
    for k, v in loaded.items()
}
mx.npx.reset_np()

net = mx.gluon.model_zoo.vision.resnet18_v1()
net.load_parameters(out + '/ours_resnet.params')
orig = mx.nd.load(out + '/resnet.params')
res['gluon_load'] = all(
    np.array_equal(p.data().asnumpy(), orig[k].asnumpy())
    for k, p in net._collect_params_with_prefix().items()
) and len(orig) == len(net._collect_params_with_prefix())

blk = mx.gluon.SymbolBlock.imports(
    out + '/resnet-symbol.json', ['data'], out + '/ours_export.params'
)
orig = mx.nd.load(out + '/resnet-0007.params')
params = blk.collect_params()
res['export_import'] = all(
    np.array_equal(params[k.split(':', 1)[1]].data().asnumpy(), v.asnumpy())
    for k, v in orig.items()
)
sym, args, auxs = mx.model.load_checkpoint(out + '/ours_ckpt', 7)
res['checkpoint'] = [len(args), len(auxs)]
result = res
"""


@pytest.fixture(scope="module")
def mx_dir(tmp_path_factory: pytest.TempPathFactory, mxnet: Any) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("mxnet_cross")
    info = mxnet(MXNET_WRITES, outdir=str(out))
    return out, info


def check_against(loaded: Any, npz: Any) -> None:
    items = loaded.items() if isinstance(loaded, dict) else enumerate(loaded)
    n = 0
    for k, a in items:
        k = str(k)
        assert a.asnumpy().tobytes() == npz[k].tobytes(), k
        assert a.shape == npz[k].shape
        if a.stype != "default":
            assert a.data.asnumpy().tobytes() == npz[f"{k}/data"].tobytes()
            assert a.indices.asnumpy().tobytes() == npz[f"{k}/indices"].tobytes()
            if a.stype == "csr":
                assert a.indptr.asnumpy().tobytes() == npz[f"{k}/indptr"].tobytes()
        n += 1
    assert n > 0


def test_we_read_mxnet_files(mx_dir: tuple[Path, Any]) -> None:
    out, info = mx_dir
    for name in ["mx_mixed", "mx_list", "resnet", "resnet-0007"]:
        for mmap in (False, True):
            loaded = nd.load(out / f"{name}.params", mmap=mmap)
            check_against(loaded, np.load(out / f"{name}.npz"))
    mixed = nd.load(out / "mx_mixed.params")
    assert isinstance(mixed, dict)
    assert mixed["f16"].dtype == np.float16 and mixed["bool"].dtype == np.bool_
    assert mixed["i64"].asnumpy().tolist() == [2**40, -3, 7]
    assert mixed["rsp"].stype == "row_sparse" and mixed["csr"].stype == "csr"
    assert isinstance(nd.load(out / "mx_list.params"), list)
    res = nd.load(out / "resnet.params")
    assert list(res) == info["structural"]
    exp = nd.load(out / "resnet-0007.params")
    assert list(exp) == info["export"]
    assert all(k.startswith(("arg:", "aux:")) for k in exp)
    assert any(k.startswith("aux:") and k.endswith("running_var") for k in exp)


def test_we_read_mxnet_v3(mx_dir: tuple[Path, Any]) -> None:
    out, _ = mx_dir
    raw = (out / "mx_v3.params").read_bytes()
    assert raw[24:28] == bytes.fromhex("cafa93f9")
    loaded = nd.load(out / "mx_v3.params")
    assert isinstance(loaded, dict)
    npz = np.load(out / "mx_v3.npz")
    assert loaded["s"].shape == () and loaded["z"].shape == (2, 0, 3)
    for k in npz.files:
        assert loaded[k].asnumpy().tobytes() == npz[k].tobytes()
        assert loaded[k].dtype == npz[k].dtype


def test_we_resave_mxnet_files_byte_for_byte(mx_dir: tuple[Path, Any]) -> None:
    out, _ = mx_dir
    for name, version in [("resnet", 2), ("resnet-0007", 2), ("mx_v3", 3), ("mx_list", 2)]:
        raw = (out / f"{name}.params").read_bytes()
        assert nd.save_tobuffer(nd.load_frombuffer(raw), version=version) == raw, name


def test_mxnet_reads_our_files(mx_dir: tuple[Path, Any], mxnet: Any) -> None:
    out, _ = mx_dir
    rng = np.random.default_rng(1)
    mixed = {
        "f16": nd.array(rng.standard_normal((3, 5)), dtype="float16"),
        "bool": nd.array([True, False, True], dtype="bool"),
        "i64": nd.array(np.array([2**40, -3, 7]), dtype="int64"),
        "i8": nd.array(np.arange(-5, 6), dtype="int8"),
        "u8": nd.array(np.arange(7), dtype="uint8"),
        "i32": nd.array(np.arange(3), dtype="int32"),
        "f64": nd.array(rng.standard_normal(5), dtype="float64"),
        "bf16": nd.array([1.0, -3.5, 0.25], dtype="bfloat16"),
        "rsp": nd.sparse.row_sparse_array(([[1.0, 2.0], [3.0, 4.0]], [1, 3]), shape=(5, 2)),
        "csr": nd.sparse.csr_matrix(([1.0, 2.0, 3.0], [0, 2, 1], [0, 2, 2, 3]), shape=(3, 4)),
        "empty": nd.zeros((2, 0)),
    }

    def expected(a: mp.NDArray) -> np.ndarray:
        v = a.asnumpy()
        return v.astype(np.float32) if v.dtype == ml_dtypes.bfloat16 else v

    nd.save(out / "ours_mixed.params", mixed)
    np.savez(out / "ours_mixed.npz", **{k: expected(v) for k, v in mixed.items()})
    lst = [mixed["f16"], mixed["i64"], mixed["csr"]]
    nd.save(out / "ours_list.params", lst)
    np.savez(out / "ours_list.npz", **{str(i): expected(v) for i, v in enumerate(lst)})
    v3 = {"s": nd.array(np.float32(2.5)), "m": nd.array(np.arange(6).reshape(2, 3)),
          "z": nd.zeros((2, 0, 3))}  # fmt: skip
    nd.save(out / "ours_v3.params", v3, version=3)
    np.savez(out / "ours_v3.npz", **{k: v.asnumpy() for k, v in v3.items()})
    # mmap-loaded (read-only, possibly unaligned) arrays re-saved
    mm = nd.load(out / "mx_mixed.params", mmap=True)
    nd.save(out / "ours_mmap_resave.params", mm)
    np.savez(out / "ours_mmap_resave.npz", **{k: v.asnumpy() for k, v in mm.items()})  # type: ignore[union-attr]
    nd.save(out / "ours_resnet.params", nd.load(out / "resnet.params", mmap=True))
    exported = nd.load(out / "resnet-0007.params")
    nd.save(out / "ours_export.params", exported)
    (out / "ours_ckpt-symbol.json").write_bytes((out / "resnet-symbol.json").read_bytes())
    nd.save(out / "ours_ckpt-0007.params", exported)

    res = mxnet(MXNET_READS, outdir=str(out))
    for tag, source in [("ours_mixed", mixed), ("ours_mmap_resave", mm)]:
        assert res[tag]["kind"] == "dict"
        got = res[tag]["arrays"]
        assert set(got) == set(source)  # type: ignore[arg-type]
        for k, a in source.items():  # type: ignore[union-attr]
            assert got[k]["equal"], (tag, k, got[k])
            assert got[k]["stype"] == a.stype
            assert got[k]["dtype"] == (
                "bfloat16" if a.dtype == ml_dtypes.bfloat16 else a.dtype.name
            )
            assert got[k]["shape"] == list(a.shape)
    assert res["ours_list"]["kind"] == "list"
    assert all(v["equal"] for v in res["ours_list"]["arrays"].values())
    assert res["ours_v3"] == {
        "s": {"shape": [], "equal": True},
        "m": {"shape": [2, 3], "equal": True},
        "z": {"shape": [2, 0, 3], "equal": True},
    }
    assert res["gluon_load"] is True
    assert res["export_import"] is True
    n_aux = sum(k.startswith("aux:") for k in exported)
    assert res["checkpoint"] == [len(exported) - n_aux, n_aux]
