"""safetensors through nd.load / nd.save: every dtype, metadata, mmap, shards,
files checked by the safetensors package itself."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import mxparams as mp
import numpy as np
import pytest
from mxparams import nd

DTYPES = [
    "float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool",
    "int16", "uint16", "uint32", "uint64", "bfloat16",
]  # fmt: skip


def sample(dtype: str, seed: int = 0) -> np.ndarray:
    bits = np.random.default_rng(seed).integers(0, 256, size=48, dtype=np.uint8)
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    if dtype == "bool":
        return (bits % 2).astype(bool).reshape(2, 3, 8)
    return bits.view(np_dtype).reshape(2, -1)


@pytest.mark.parametrize("mmap", [False, True])
def test_every_dtype_round_trips_bit_exact(tmp_path: Path, mmap: bool) -> None:
    from safetensors.numpy import load_file

    data = {d: sample(d) for d in DTYPES}
    p = tmp_path / "all.safetensors"
    nd.save(p, data, metadata={"origin": "test"})
    loaded = nd.load(p, mmap=mmap)
    assert isinstance(loaded, dict)
    for d, v in data.items():
        got = np.asarray(loaded[d])
        assert got.dtype == v.dtype and got.tobytes() == v.tobytes()
    theirs = load_file(str(p))  # numpy has no bfloat16 only as ml_dtypes; bytes still match
    for d, v in theirs.items():
        assert v.tobytes() == data[d].tobytes()
    assert mp._native._safetensors_metadata(p) == {"origin": "test"}


def test_files_match_the_reference_writer_byte_for_byte(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    data = {
        "b": np.ones((3, 2), np.float32),
        "a": np.arange(5, dtype=np.int64),
        "c": np.zeros(0, np.uint8),
    }
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    nd.save(ours, data, metadata={"k": "v"})
    save_file(data, str(theirs), metadata={"k": "v"})
    assert ours.read_bytes() == theirs.read_bytes()


def test_reads_files_written_by_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    data = {
        f"t{i}": np.random.default_rng(i).standard_normal((i + 1, 3)).astype(np.float32)
        for i in range(5)
    }
    p = tmp_path / "ref.safetensors"
    save_file(data, str(p))
    loaded = nd.load(p)
    assert isinstance(loaded, dict)
    assert {k: np.asarray(v).tolist() for k, v in loaded.items()} == {
        k: v.tolist() for k, v in data.items()
    }


def test_sharded_index(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"a": np.ones(2, np.float32)}, str(tmp_path / "m-00001-of-00002.safetensors"))
    save_file({"b": np.zeros(3, np.float16)}, str(tmp_path / "m-00002-of-00002.safetensors"))
    index = {
        "metadata": {},
        "weight_map": {"a": "m-00001-of-00002.safetensors", "b": "m-00002-of-00002.safetensors"},
    }
    (tmp_path / "m.safetensors.index.json").write_text(json.dumps(index))
    for mmap in (False, True):
        loaded = nd.load(tmp_path / "m.safetensors.index.json", mmap=mmap)
        assert isinstance(loaded, dict) and sorted(loaded) == ["a", "b"]
        assert loaded["b"].dtype == np.float16


def test_sparse_arrays_are_written_dense(tmp_path: Path) -> None:
    rs = nd.sparse.row_sparse_array((np.ones((1, 2)), [1]), shape=(3, 2))
    p = tmp_path / "s.safetensors"
    nd.save(p, {"rs": rs})
    got = nd.load(p)
    assert isinstance(got, dict)
    assert np.asarray(got["rs"]).tolist() == [[0, 0], [1, 1], [0, 0]]


def test_malformed_files_raise_format_errors(tmp_path: Path) -> None:
    p = tmp_path / "bad.safetensors"
    p.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1}        ')
    with pytest.raises(mp.ParamsFormatError, match="byte offset 8"):
        nd.load(p)
    with pytest.raises(ValueError, match="named arrays"):
        nd.save(p, [nd.zeros((1,))])
    with pytest.raises(ValueError, match="duplicate|once"):
        mp._native._save_safetensors(p, ["x", "x"], [nd.zeros((1,)), nd.zeros((1,))])
