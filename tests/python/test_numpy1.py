"""The package under numpy 1.x: run by ``make test-numpy1`` in the MXNet oracle venv
(numpy 1.23), where the wheel is installed beside MXNet. Also runs under numpy 2."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import mxparams as mp
import numpy as np
from mxparams import nd

DATA = Path(__file__).resolve().parent.parent / "data"


def _expected(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"{name}.expected.npz") as z:
        return {k: z[k] for k in z.files}


def test_numpy_version_is_reported() -> None:
    assert int(np.__version__.split(".")[0]) in (1, 2)


def test_golden_dense_files_load_bit_for_bit() -> None:
    for name in ("dtypes_all_dict", "gluon_mobilenet0_25", "np_v3_dict", "zero_size_v2"):
        meta = json.loads((DATA / f"{name}.json").read_text())
        bf16 = set(meta.get("bfloat16_keys", []))
        exp = _expected(name)
        for mmap in (False, True):
            got = nd.load(DATA / f"{name}.params", mmap=mmap)
            assert isinstance(got, dict)
            for key, arr in got.items():
                a = np.asarray(arr)
                if a.dtype == ml_dtypes.bfloat16 or key in bf16:
                    a = a.view(np.uint16)
                assert a.shape == exp[key].shape, (name, key)
                assert a.tobytes() == exp[key].tobytes(), (name, key)


def test_resave_is_byte_identical() -> None:
    raw = (DATA / "gluon_mobilenet0_25.params").read_bytes()
    loaded = nd.load_frombuffer(raw)
    assert nd.save_tobuffer(loaded) == raw


def test_mmap_views_are_read_only(tmp_path: Path) -> None:
    f = tmp_path / "a.params"
    nd.save(f, {"w": nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))})
    view = np.asarray(nd.load(f, mmap=True)["w"])
    assert not view.flags.writeable
    assert view.sum() == 15


def test_dlpack_to_numpy_shares_memory() -> None:
    a = nd.zeros((3, 4))
    v = np.from_dlpack(a)
    np.asarray(a)[1, 2] = 5.0
    assert v[1, 2] == 5.0


def test_bfloat16_round_trip() -> None:
    x = np.array([1.5, -2.0, 3.25], dtype=ml_dtypes.bfloat16)
    a = nd.array(x, dtype=ml_dtypes.bfloat16)
    back = nd.load_frombuffer(nd.save_tobuffer([a]))[0]
    assert back.dtype == np.dtype(ml_dtypes.bfloat16)
    assert back.asnumpy().view(np.uint16).tolist() == x.view(np.uint16).tolist()


def test_parameter_dict_round_trip(tmp_path: Path) -> None:
    pd = mp.ParameterDict("net_")
    w = pd.get("w", shape=(4, 3))
    pd.get("b", shape=(4,), init="zeros")
    pd.initialize(mp.init.Xavier(), ctx=[mp.cpu(0), mp.cpu(1)])
    pd.save(tmp_path / "p.params", strip_prefix="net_")
    other = mp.ParameterDict("net_")
    w2 = other.get("w", shape=(4, 3))
    other.get("b", shape=(4,))
    other.load(tmp_path / "p.params", ctx=mp.cpu(0), restore_prefix="net_")
    np.testing.assert_array_equal(w2.data().asnumpy(), w.data(mp.cpu(1)).asnumpy())


def test_size_one_array_into_one_element() -> None:
    # MXNet 1.9.1 accepts these under either numpy major (numpy 2 alone refuses
    # a size-1 array where a scalar goes); test_sparse_mxnet.py compares with it.
    b = nd.zeros((3,))
    b[0] = np.array([5.0])
    b[1] = np.array([[6.0]])
    b[2] = nd.array([7.0])
    assert b.asnumpy().tolist() == [5.0, 6.0, 7.0]
    c = nd.zeros((2, 3))
    c[0, 1] = np.array([8.0])
    c[1] = np.array([9.0])
    assert c.asnumpy().tolist() == [[0.0, 8.0, 0.0], [9.0, 9.0, 9.0]]
