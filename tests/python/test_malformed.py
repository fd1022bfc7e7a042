"""Malformed .params input: every failure is a ParamsFormatError naming a byte
offset, never a crash, a hang or an unbounded allocation."""

from __future__ import annotations

import struct
from pathlib import Path

import mxparams as mp
import pytest
from mxparams import nd

DATA = Path(__file__).resolve().parent.parent / "data"

V1, V2, V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA


def header(n: int, reserved: int = 0, magic: int = 0x112) -> bytes:
    return struct.pack("<QQQ", magic, reserved, n)


def shape(dims: list[int], ndim: int | None = None) -> bytes:
    return struct.pack("<i", len(dims) if ndim is None else ndim) + b"".join(
        struct.pack("<q", d) for d in dims
    )


def dense(
    dims: list[int],
    data: bytes,
    flag: int = 0,
    magic: int = V2,
    stype: int = 0,
    ndim: int | None = None,
) -> bytes:
    return (
        struct.pack("<Ii", magic, stype)
        + shape(dims, ndim)
        + struct.pack("<iii", 1, 0, flag)
        + data
    )


def names(ns: list[bytes], count: int | None = None) -> bytes:
    out = struct.pack("<Q", len(ns) if count is None else count)
    for n in ns:
        out += struct.pack("<Q", len(n)) + n
    return out


def f32(*xs: float) -> bytes:
    return struct.pack(f"<{len(xs)}f", *xs)


def csr(indptr: list[int], indices: list[int], values: bytes, rows: int, cols: int,
        aux_flag: int = 6) -> bytes:  # fmt: skip
    nnz = len(indices)
    return (
        struct.pack("<Ii", V2, 2)
        + shape([nnz])
        + shape([rows, cols])
        + struct.pack("<iii", 1, 0, 0)
        + struct.pack("<i", aux_flag)
        + shape([len(indptr)])
        + struct.pack("<i", aux_flag)
        + shape([nnz])
        + values
        + b"".join(struct.pack("<q", x) for x in indptr)
        + b"".join(struct.pack("<q", x) for x in indices)
    )


def rsp(indices: list[int], values: bytes, dims: list[int]) -> bytes:
    return (
        struct.pack("<Ii", V2, 1)
        + shape([len(indices), *dims[1:]])
        + shape(dims)
        + struct.pack("<iii", 1, 0, 0)
        + struct.pack("<i", 6)
        + shape([len(indices)])
        + values
        + b"".join(struct.pack("<q", x) for x in indices)
    )


VALID = header(1) + dense([2], f32(1, 2)) + names([b"w"])


def bad(buf: bytes, match: str = "offset") -> mp.ParamsFormatError:
    with pytest.raises(mp.ParamsFormatError, match=match) as e:
        nd.load_frombuffer(buf)
    assert "offset" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, mp.MXParamsError)
    return e.value


def test_builders_make_valid_files() -> None:
    out = nd.load_frombuffer(VALID)
    assert isinstance(out, dict) and out["w"].asnumpy().tolist() == [1.0, 2.0]
    ok = nd.load_frombuffer(header(1) + csr([0, 1, 1], [2], f32(5), 2, 3) + names([]))
    assert ok[0].asnumpy().tolist() == [[0, 0, 5], [0, 0, 0]]  # type: ignore[index]
    ok = nd.load_frombuffer(header(1) + rsp([1], f32(5, 6), [3, 2]) + names([]))
    assert ok[0].asnumpy().tolist() == [[0, 0], [5, 6], [0, 0]]  # type: ignore[index]


@pytest.mark.parametrize(
    "name", ["basic_dict_f32", "sparse_csr", "sparse_zeros", "handmade_legacy_pre_v1", "np_v3_dict"]
)
def test_truncation_at_every_offset(name: str, tmp_path: Path) -> None:
    raw = (DATA / f"{name}.params").read_bytes()
    for i in range(len(raw)):
        bad(raw[:i])
    # through files too (owned and mmap), at a spread of offsets
    p = tmp_path / "t.params"
    for i in range(0, len(raw), max(1, len(raw) // 16)):
        p.write_bytes(raw[:i])
        for mmap in (False, True):
            with pytest.raises(mp.ParamsFormatError, match="offset"):
                nd.load(p, mmap=mmap)


def test_trailing_bytes_and_reserved_are_accepted() -> None:
    assert list(nd.load_frombuffer(VALID + b"junk")) == ["w"]  # type: ignore[arg-type]
    assert list(nd.load_frombuffer(header(1, reserved=0xDEADBEEF) + VALID[24:])) == ["w"]  # type: ignore[arg-type]


def test_bad_list_magic() -> None:
    bad(header(1, magic=0x113) + VALID[24:])
    bad(struct.pack(">Q", 0x112) + VALID[8:])
    bad(b"\x00" * 32)


def test_bad_record_magic() -> None:
    bad(header(1) + dense([2], f32(1, 2), magic=0xF993FACB) + names([]))
    bad(header(1) + dense([2], f32(1, 2), magic=0xFFFFFFFF) + names([]))


@pytest.mark.parametrize("ndim", [2**31 - 1, 1000, -1, -2, -(2**31)])
def test_absurd_ndim(ndim: int) -> None:
    bad(header(1) + dense([], b"", ndim=ndim) + names([]))


@pytest.mark.parametrize(
    "dims",
    [[-5], [-1], [2**62, 4], [2**62 + 1, 4], [2**63 - 1, 2], [2**32, 2**32], [10**12]],
)
def test_absurd_dims(dims: list[int]) -> None:
    bad(header(1) + dense(dims, f32(1, 2, 3, 4)) + names([]))


def test_counts_past_the_end() -> None:
    bad(header(2**62) + VALID[24:])
    bad(header(10**9) + VALID[24:])
    bad(header(2) + VALID[24:])
    body = header(1) + dense([2], f32(1, 2))
    bad(body + names([b"w"], count=2))  # name count neither 0 nor N
    bad(body + names([b"w"], count=2**62))
    bad(body + struct.pack("<QQ", 1, 2**62) + b"w")  # name length past the end
    bad(body + struct.pack("<QQ", 1, 10**9) + b"w")
    bad(body + struct.pack("<QQ", 1, 2) + b"w")


@pytest.mark.parametrize("flag", [-1, 13, 99, 2**31 - 1])
def test_unknown_dtype_flag(flag: int) -> None:
    bad(header(1) + dense([2], f32(1, 2), flag=flag) + names([]))


@pytest.mark.parametrize("stype", [-1, 3, 100])
def test_unknown_storage_type(stype: int) -> None:
    bad(header(1) + dense([2], f32(1, 2), stype=stype) + names([]))


def test_v3_sparse_rejected() -> None:
    rec = bytearray(csr([0, 1], [0], f32(1), 1, 1))
    rec[0:4] = struct.pack("<I", V3)
    bad(header(1) + bytes(rec) + names([]))


@pytest.mark.parametrize(
    "record",
    [
        csr([0, 1], [0], f32(1), 2, 3),  # indptr too short
        csr([0, 2, 1], [0, 1], f32(1, 2), 2, 3),  # indptr decreasing
        csr([1, 1, 1], [0], f32(1), 2, 3),  # indptr does not start at 0
        csr([0, 1, 2], [0], f32(1), 2, 3),  # indptr past nnz
        csr([0, 1, 1], [7], f32(1), 2, 3),  # column out of range
        csr([0, 2, 2], [2, 1], f32(1, 2), 2, 3),  # columns not increasing
        csr([0, 1, 1], [0], f32(1), 2, 3, aux_flag=4),  # int32 aux
        csr([0, 1, 1], [-1], f32(1), 2, 3),  # negative column
        rsp([5], f32(1, 2), [3, 2]),  # row out of range
        rsp([1, 1], f32(1, 2, 3, 4), [3, 2]),  # duplicate rows
        rsp([2, 1], f32(1, 2, 3, 4), [3, 2]),  # rows not sorted
    ],
)
def test_sparse_structure_errors(record: bytes) -> None:
    bad(header(1) + record + names([]))


def test_sparse_aux_length_past_end() -> None:
    rec = bytearray(csr([0, 1, 1], [0], f32(1), 2, 3))
    # indptr length field (after magic, stype, storage shape, shape, device, flag, aux flag, ndim)
    off = 4 + 4 + 12 + 20 + 12 + 4 + 4
    rec[off : off + 8] = struct.pack("<q", 2**61)
    bad(header(1) + bytes(rec) + names([]))


def test_invalid_utf8_name() -> None:
    with pytest.raises((mp.ParamsFormatError, UnicodeDecodeError)):
        nd.load_frombuffer(header(1) + dense([2], f32(1, 2)) + names([b"\xff\xfe"]))


def test_bit_flips_never_crash() -> None:
    raw = (DATA / "dtypes_all_dict.params").read_bytes()
    for i in range(0, len(raw)):
        for v in (0x00, 0xFF, 0x80):
            buf = raw[:i] + bytes([v]) + raw[i + 1 :]
            try:
                nd.load_frombuffer(buf)
            except mp.ParamsFormatError as e:
                assert "offset" in str(e)
            except UnicodeDecodeError:
                pass
