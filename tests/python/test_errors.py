"""Errors a user can act on: every exception is an MXParamsError that also
subclasses the builtin it stands for, OS errors carry errno and the path, and
messages about foreign files say what the file is."""

from __future__ import annotations

import errno
import json
import pickle
import struct
import zipfile
from pathlib import Path

import mxparams as mp
import numpy as np
import pytest
from mxparams import _errors, nd


def test_every_exported_error_is_an_mxparams_error() -> None:
    for name in _errors.__all__:
        cls = getattr(_errors, name)
        assert issubclass(cls, mp.MXParamsError), name
        assert getattr(mp, name) is cls, name
    assert issubclass(mp.MXParamsFileNotFoundError, FileNotFoundError)
    assert issubclass(mp.MXParamsPermissionError, PermissionError)
    assert issubclass(mp.ParamsFormatError, ValueError)


def test_missing_file_is_file_not_found_with_errno_and_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.params"
    with pytest.raises(FileNotFoundError) as info:
        nd.load(str(path))
    err = info.value
    assert isinstance(err, mp.MXParamsFileNotFoundError)
    assert err.errno == errno.ENOENT
    assert err.filename == str(path)
    assert str(path) in str(err)


def test_directory_is_a_directory_error(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as info:
        nd.load(str(tmp_path))
    assert isinstance(info.value, mp.MXParamsError)
    assert info.value.filename == str(tmp_path)
    with pytest.raises(IsADirectoryError):
        nd.save(str(tmp_path), [nd.zeros((1,))])


def test_format_errors_name_the_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "junk.params"
    path.write_bytes(b"\x00" * 40)
    with pytest.raises(mp.ParamsFormatError, match=r"junk\.params.*byte offset 0"):
        nd.load(str(path))


def _foreign_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    sym = tmp_path / "net-symbol.json"
    sym.write_text(json.dumps({"nodes": [], "arg_nodes": [], "heads": []}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    st = tmp_path / "model.safetensors"
    # Cut short: a whole safetensors file loads (test_safetensors.py).
    st.write_bytes(struct.pack("<Q", len(header) + 100) + header)
    npz = tmp_path / "other.zip"
    with zipfile.ZipFile(npz, "w") as z:
        z.writestr("readme.txt", "hello")
    pt = tmp_path / "model.pt"
    with zipfile.ZipFile(pt, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": 1}))
        z.writestr("archive/byteorder", "little")
    pkl = tmp_path / "legacy.pt"
    pkl.write_bytes(pickle.dumps({"w": 1}, protocol=2))
    return {
        "symbol": (sym, "symbol file"),
        "safetensors": (st, "truncated or not a safetensors file"),
        "zip": (npz, "not an MXNet .npz"),
        "torch": (pt, "torch.load"),
        "pickle": (pkl, "pickle"),
    }


def test_foreign_files_say_what_they_are(tmp_path: Path) -> None:
    for kind, (path, words) in _foreign_files(tmp_path).items():
        with pytest.raises(mp.ParamsFormatError) as info:
            nd.load(str(path))
        assert words in str(info.value), (kind, str(info.value))


def test_non_integer_dimensions_are_refused() -> None:
    for make in (nd.zeros, nd.empty, nd.ones, lambda s: nd.full(s, 1.0)):
        for shape in ((2.5,), (2.0,), 2.5, (np.float32(2),)):
            with pytest.raises(TypeError) as info:
                make(shape)
            assert isinstance(info.value, mp.MXParamsTypeError), shape
    assert nd.zeros((np.int64(2), 3)).shape == (2, 3)
    with pytest.raises(mp.MXParamsTypeError):
        mp.Parameter("w", shape=(2.5, 3))


def test_initialize_with_a_str_context_asks_for_a_context() -> None:
    p = mp.Parameter("w", shape=(2,))
    with pytest.raises(TypeError, match="ctx must be a Context") as info:
        p.initialize(ctx="cpu")  # type: ignore[arg-type]
    assert isinstance(info.value, mp.MXParamsError)


def test_messages_speak_of_this_package() -> None:
    p = mp.Parameter("w", shape=(2,))
    with pytest.raises(RuntimeError) as info:
        p.data()
    msg = str(info.value)
    assert "Trainer" not in msg and "collect_params" not in msg and "initialize()" in msg


def test_python_side_errors_are_mxparams_errors() -> None:
    with pytest.raises(mp.MXParamsValueError):
        nd.zeros((-1,))
    with pytest.raises(mp.MXParamsValueError):
        nd.save_tobuffer({"a": nd.zeros((1,))}, version=7)
    pd = mp.ParameterDict()
    with pytest.raises(KeyError) as info:
        pd["missing"]
    assert isinstance(info.value, mp.MXParamsError)
