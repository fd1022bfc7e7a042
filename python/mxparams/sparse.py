"""``mxparams.nd.sparse``: row_sparse and csr arrays, as MXNet 1.x's ``mx.nd.sparse``.

Sparse arrays are ``NDArray`` objects whose ``stype`` is ``'row_sparse'`` or
``'csr'``. ``RowSparseNDArray`` and ``CSRNDArray`` are subclasses of
``NDArray`` that ``isinstance`` recognises by storage type, so MXNet code such
as ``isinstance(x, mx.nd.sparse.RowSparseNDArray)`` works unchanged. Every
array is created by the native module as a plain ``NDArray`` object (one type
for all arrays, whatever function made them), which is why the check goes by
``stype`` rather than by ``type(x)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import mxparams._native as _native

from ._errors import MXParamsTypeError, MXParamsValueError
from ._native import Context, NDArray

__all__ = [
    "BaseSparseNDArray",
    "CSRNDArray",
    "RowSparseNDArray",
    "array",
    "csr_matrix",
    "empty",
    "row_sparse_array",
    "zeros",
]

_DEFAULT_DTYPE = "float32"
_STYPES = ("row_sparse", "csr")


class _ByStorageType(type):
    """Makes ``isinstance(x, cls)`` true for every NDArray of ``cls``'s storage types."""

    _stypes: tuple[str, ...] = ()

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, NDArray) and obj.stype in cls._stypes


class BaseSparseNDArray(NDArray, metaclass=_ByStorageType):
    """Any sparse NDArray (row_sparse or csr)."""

    _stypes: tuple[str, ...] = _STYPES


class RowSparseNDArray(BaseSparseNDArray):
    """A row_sparse NDArray: sorted row ``indices`` and those rows' ``data``."""

    _stypes = ("row_sparse",)


class CSRNDArray(BaseSparseNDArray):
    """A csr NDArray: ``data``, column ``indices`` and row pointers ``indptr``."""

    _stypes = ("csr",)


def _dims(shape: int | Sequence[int]) -> list[int]:
    if isinstance(shape, (int, np.integer)):
        return [int(shape)]
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise MXParamsValueError(f"negative dimensions are not allowed: {tuple(dims)}")
    return dims


def _dense(source: Any, ctx: Context | None, dtype: Any) -> NDArray:
    values = np.asarray(source, dtype=_native._numpy_dtype(dtype))
    return _native._from_numpy(np.asarray(values, order="C"), ctx)


def zeros(
    stype: str, shape: int | Sequence[int], ctx: Context | None = None, dtype: Any = None
) -> NDArray:
    """An all-zero sparse array: no stored rows (row_sparse) or values (csr)."""
    dims = _dims(shape)
    dtype = _DEFAULT_DTYPE if dtype is None else dtype
    if stype == "row_sparse":
        if not dims:
            raise MXParamsValueError("row_sparse arrays need ndim >= 1")
        return _native._sparse(
            stype,
            dims,
            _native._zeros([0, *dims[1:]], ctx, dtype),
            _native._zeros([0], ctx, "int64"),
        )
    if stype == "csr":
        if len(dims) != 2:
            raise MXParamsValueError(f"csr arrays are 2-D, got shape {tuple(dims)}")
        return _native._sparse(
            stype,
            dims,
            _native._zeros([0], ctx, dtype),
            _native._zeros([0], ctx, "int64"),
            _native._zeros([dims[0] + 1], ctx, "int64"),
        )
    raise MXParamsValueError(
        f"unknown sparse storage type {stype!r}: expected 'row_sparse' or 'csr'"
    )


def empty(
    stype: str, shape: int | Sequence[int], ctx: Context | None = None, dtype: Any = None
) -> NDArray:
    """A sparse array with nothing stored (MXNet's ``empty`` gives the same)."""
    return zeros(stype, shape, ctx, dtype)


def csr_matrix(
    arg1: tuple[Any, Any, Any],
    shape: Sequence[int],
    ctx: Context | None = None,
    dtype: Any = None,
) -> NDArray:
    """A csr array from ``(data, indices, indptr)`` and its dense ``shape``."""
    data, indices, indptr = arg1
    return _native._sparse(
        "csr",
        _dims(shape),
        _dense(data, ctx, _DEFAULT_DTYPE if dtype is None else dtype),
        _dense(indices, ctx, "int64"),
        _dense(indptr, ctx, "int64"),
    )


def row_sparse_array(
    arg1: tuple[Any, Any],
    shape: Sequence[int],
    ctx: Context | None = None,
    dtype: Any = None,
) -> NDArray:
    """A row_sparse array from ``(data, indices)`` and its dense ``shape``."""
    data, indices = arg1
    return _native._sparse(
        "row_sparse",
        _dims(shape),
        _dense(data, ctx, _DEFAULT_DTYPE if dtype is None else dtype),
        _dense(indices, ctx, "int64"),
    )


def array(source_array: NDArray, ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """A copy of the sparse array ``source_array`` on ``ctx`` (default: the
    current context) with ``dtype`` (default: the source's), keeping its
    storage type and structure."""
    if not isinstance(source_array, BaseSparseNDArray):
        raise MXParamsTypeError(f"expected a sparse NDArray, got {type(source_array).__name__}")
    out = source_array.copyto(_native.current_context() if ctx is None else ctx)
    if dtype is not None and np.dtype(_native._numpy_dtype(dtype)) != out.dtype:
        out = out.astype(dtype)
    return out
