"""`mxparams convert` between every pair of formats, bit-exact for every dtype
both formats hold, with the file written read by the format's own library:
numpy for .npz/.npy, safetensors for .safetensors, torch.load(weights_only=True)
for .pt and MXNet 1.9.1 for .params."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path

import mxparams as mx
import numpy as np
import pytest
from mxparams.cli import main

pytestmark = [pytest.mark.torch]

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

ALL = [
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
]
# What each format holds and its reader can read back. .params: the types MXNet
# 1.9.1 reads (int16/uint16/uint32/uint64 are MXNet 2.0's flags); numpy has no
# bfloat16.
HOLDS = {
    "params": [
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "bool",
        "int8",
        "uint8",
        "int32",
        "int64",
    ],
    "npz": [d for d in ALL if d != "bfloat16"],
    "npy": [d for d in ALL if d != "bfloat16"],
    "safetensors": ALL,
    "pt": ALL,
}
PAIRS = [(a, b) for a, b in itertools.permutations(HOLDS, 2)]


def _values(dtype: str) -> np.ndarray:
    """Random bits (NaN payloads, infinities, -0.0 included) of shape (3, 5);
    bfloat16 as its uint16 bits."""
    rng = np.random.default_rng(ALL.index(dtype))
    if dtype == "bool":
        return rng.integers(0, 2, (3, 5)).astype(bool)
    itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    raw = rng.integers(0, 256, 15 * itemsize, dtype=np.uint8)
    return raw.view(np.uint16 if dtype == "bfloat16" else np.dtype(dtype)).reshape(3, 5)


def _tensor(dtype: str) -> object:
    bits = _values(dtype)
    if dtype == "bfloat16":
        return torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(bits)


def _bits(t: object) -> tuple[str, tuple[int, ...], bytes]:
    """(dtype name, shape, raw bytes) of a torch tensor or numpy array."""
    if isinstance(t, np.ndarray):
        return str(t.dtype), t.shape, t.tobytes()
    assert isinstance(t, torch.Tensor)
    name = str(t.dtype).removeprefix("torch.")
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return name, tuple(t.shape), t.contiguous().numpy().tobytes()


def _expected(dtype: str) -> tuple[str, tuple[int, ...], bytes]:
    v = _values(dtype)
    return dtype, v.shape, v.tobytes()


Bits = dict[str, tuple[str, tuple[int, ...], bytes]]


def _convert(src: Path, dst: Path) -> None:
    assert main(["convert", str(src), str(dst)]) == 0


def _write_source(fmt: str, dtypes: list[str], path: Path) -> None:
    """A file of format ``fmt`` at ``path`` holding one array per dtype."""
    arrays = {f"w_{d}": _tensor(d) for d in dtypes}
    if fmt in ("params", "safetensors"):
        mx.nd.save(path, arrays)
        return
    seed = path.with_suffix(".seed.safetensors")
    mx.nd.save(seed, arrays)
    _convert(seed, path)


def _read_foreign(fmt: str, path: Path) -> Bits:
    if fmt == "safetensors":
        return {k: _bits(v) for k, v in safetensors_torch.load_file(path).items()}
    if fmt == "pt":
        return {k: _bits(v) for k, v in torch.load(path, weights_only=True).items()}
    if fmt == "npz":
        with np.load(path) as z:
            return {k: _bits(z[k]) for k in z.files}
    if fmt == "npy":
        return {path.stem: _bits(np.load(path))}
    raise AssertionError(fmt)


_MXNET_READ = """
import base64
result = []
for path in paths:
    one = {}
    loaded = mx.nd.load(path)
    if isinstance(loaded, list):
        loaded = {str(i): a for i, a in enumerate(loaded)}
    for name, a in loaded.items():
        n = a.asnumpy()
        dtype = "bfloat16" if n.dtype.names else str(n.dtype)
        one[name] = [dtype, list(n.shape), base64.b64encode(n.tobytes()).decode()]
    result.append(one)
"""


def _read_mxnet(paths: list[Path]) -> list[Bits]:
    from mxnet_oracle import run_mxnet

    got = run_mxnet(_MXNET_READ, paths=[str(p) for p in paths])
    return [{k: (d, tuple(s), base64.b64decode(b)) for k, (d, s, b) in one.items()} for one in got]


@pytest.mark.parametrize(
    ("src", "dst"),
    [pytest.param(a, b, marks=[pytest.mark.mxnet] if "params" in (a, b) else []) for a, b in PAIRS],
)
def test_convert_is_bit_exact(src: str, dst: str, tmp_path: Path) -> None:
    dtypes = [d for d in HOLDS[src] if d in HOLDS[dst]]
    # An .npy file holds one array (and no name): one file per dtype then.
    groups = [[d] for d in dtypes] if "npy" in (src, dst) else [dtypes]
    sources, outs = [], []
    for i, group in enumerate(groups):
        sources.append(tmp_path / f"src{i}.{src}")
        outs.append(tmp_path / f"out{i}.{dst}")
        _write_source(src, group, sources[-1])
        _convert(sources[-1], outs[-1])
    got = _read_mxnet(outs) if dst == "params" else [_read_foreign(dst, p) for p in outs]
    for group, one in zip(groups, got, strict=True):
        want = {f"w_{d}": _expected(d) for d in group}
        if len(group) == 1:  # names do not survive an .npy file
            assert list(one.values()) == list(want.values())
        else:
            assert one == want
    if src == "params":
        # MXNet itself reads the same values from the source files.
        for group, one in zip(groups, _read_mxnet(sources), strict=True):
            assert one == {f"w_{d}": _expected(d) for d in group}


def test_dtype_option_casts_floats_only(tmp_path: Path) -> None:
    src = tmp_path / "a.params"
    mx.nd.save(src, {"w": _tensor("float32"), "i": _tensor("int32"), "b": _tensor("bool")})
    out = tmp_path / "half.safetensors"
    assert main(["convert", str(src), str(out), "--dtype", "float16"]) == 0
    got = safetensors_torch.load_file(out)
    assert got["w"].dtype == torch.float16 and got["i"].dtype == torch.int32
    assert got["b"].dtype == torch.bool
    want = torch.from_numpy(_values("float32")).to(torch.float16)
    assert torch.equal(got["w"].isnan(), want.isnan())
    finite = ~want.isnan()
    assert torch.equal(got["w"][finite], want[finite])
    assert _bits(got["i"]) == _expected("int32")


def _record_version(path: Path, capfd: pytest.CaptureFixture[str]) -> str:
    import json

    capfd.readouterr()
    assert main(["inspect", "--json", str(path)]) == 0
    version: str = json.loads(capfd.readouterr().out)["version"]
    return version


@pytest.mark.mxnet
@pytest.mark.parametrize(
    ("arrays", "version"),
    [
        ({"w": np.ones((2, 3), np.float32)}, "V2"),
        ({"w": np.ones((2, 3), np.float32), "s": np.float32(3.0).reshape(())}, "V3"),
        # MXNet 1.9.1 reads a zero-size V2 record with its shape: V2 holds it.
        ({"w": np.ones((2, 3), np.float32), "z": np.ones((0, 4), np.float32)}, "V2"),
    ],
)
def test_convert_to_params_uses_v3_only_when_needed(
    arrays: dict[str, np.ndarray],
    version: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "a.safetensors"
    mx.nd.save(src, {k: mx.nd.array(v, dtype=v.dtype) for k, v in arrays.items()})
    out = tmp_path / "a.params"
    assert main(["convert", str(src), str(out)]) == 0
    assert _record_version(out, capfd) == version
    back = mx.nd.load(out)
    assert isinstance(back, dict)
    assert {k: (v.shape, v.asnumpy().tobytes()) for k, v in back.items()} == {
        k: (v.shape, v.tobytes()) for k, v in arrays.items()
    }
    if version == "V2":
        (seen,) = _read_mxnet([out])
        assert {k: s for k, (_, s, _) in seen.items()} == {k: v.shape for k, v in arrays.items()}
