"""Array creation and ``.params`` I/O, as MXNet 1.x's ``mx.nd`` names them.

Arrays are typed buffers; compute on them with numpy (``np.asarray(arr)`` is a
zero-copy view on CPU contexts) or any DLPack consumer.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import mxparams._native as _native

from . import sparse
from ._errors import MXParamsTypeError, MXParamsValueError
from ._native import Context, NDArray, cpu, current_context

__all__ = [
    "NDArray",
    "array",
    "empty",
    "release_host_pool",
    "full",
    "load",
    "load_frombuffer",
    "ones",
    "ones_like",
    "save",
    "save_tobuffer",
    "sparse",
    "zeros",
    "zeros_like",
]

ShapeLike = int | Sequence[int]
PathLike = str | os.PathLike[str]
SaveData = NDArray | Sequence[NDArray] | Mapping[str, NDArray]

_DEFAULT_DTYPE = "float32"


def _dim(d: Any) -> int:
    # operator.index, not int(): 2.5 (or 2.0) is refused, not truncated, as MXNet does.
    try:
        return operator.index(d)
    except TypeError:
        raise MXParamsTypeError(
            f"array dimensions must be integers, not {type(d).__name__} ({d!r})"
        ) from None


def _shape(shape: ShapeLike) -> list[int]:
    if isinstance(shape, Sequence) or hasattr(shape, "__iter__"):
        try:
            items = list(shape)
        except TypeError:
            raise MXParamsTypeError(
                f"shape must be an int or a sequence of ints, not {shape!r}"
            ) from None
    else:
        items = [shape]
    dims = [_dim(d) for d in items]
    if any(d < 0 for d in dims):
        raise MXParamsValueError(f"negative dimensions are not allowed: {tuple(dims)}")
    return dims


def _np_dtype(dtype: Any) -> np.dtype[Any]:
    # Every spelling NDArray accepts ('bfloat16', MXNet's structured bfloat16, ...).
    return _native._numpy_dtype(dtype)


def _from_numpy(source: np.ndarray[Any, Any], ctx: Context | None) -> NDArray:
    # not ascontiguousarray: it turns 0-d arrays into 1-d ones
    return _native._from_numpy(np.asarray(source, order="C"), ctx)


def array(source_array: Any, ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """Creates an array from any array-like object.

    Parameters
    ----------
    source_array : array_like
        An NDArray, a numpy array, a nested list, a scalar, ...
    ctx : Context, optional
        Device context (default: the current context).
    dtype : str or numpy.dtype, optional
        The element type. As in MXNet 1.x it defaults to the source's dtype for
        an NDArray source and to ``float32`` for everything else (numpy arrays
        of other dtypes included).
    """
    if isinstance(source_array, sparse.BaseSparseNDArray):
        return sparse.array(source_array, ctx, dtype)  # keeps the storage type, as MXNet
    if isinstance(source_array, NDArray):
        if dtype is None:
            dtype = source_array.dtype
        source = np.asarray(source_array)
    else:
        if dtype is None:
            dtype = _DEFAULT_DTYPE
        source = source_array
    try:
        values = np.asarray(source, dtype=_np_dtype(dtype))
    except (TypeError, ValueError) as e:
        raise MXParamsTypeError(f"source_array must be array like object: {e}") from e
    return _from_numpy(values, ctx)


def zeros(
    shape: ShapeLike,
    ctx: Context | None = None,
    dtype: Any = None,
    stype: str | None = None,
    **kwargs: Any,
) -> NDArray:
    """An array of zeros (dtype defaults to float32); ``stype`` may ask for an
    all-zero ``'row_sparse'`` or ``'csr'`` array, as in MXNet."""
    del kwargs  # MXNet's `out` is not supported
    if stype not in (None, "default"):
        return sparse.zeros(stype, shape, ctx, dtype)
    return _native._zeros(_shape(shape), ctx, _DEFAULT_DTYPE if dtype is None else dtype)


def empty(
    shape: ShapeLike, ctx: Context | None = None, dtype: Any = None, stype: str | None = None
) -> NDArray:
    """An array whose contents are unspecified (here: zeros, which costs nothing
    extra); a sparse ``stype`` gives an array with nothing stored, as in MXNet."""
    return zeros(shape, ctx, dtype, stype)


def full(shape: ShapeLike, val: Any, ctx: Context | None = None, dtype: Any = None) -> NDArray:
    """An array filled with ``val`` (dtype defaults to float32)."""
    target = current_context() if ctx is None else ctx
    if target.device_type == "gpu":
        # Device memory is not host-addressable: fill on the host, copy once.
        return full(shape, val, cpu(), dtype).as_in_context(target)
    out = zeros(shape, ctx, dtype)
    np.asarray(out)[...] = val
    return out


def ones(shape: ShapeLike, ctx: Context | None = None, dtype: Any = None, **kwargs: Any) -> NDArray:
    """An array of ones (dtype defaults to float32)."""
    del kwargs
    return full(shape, 1, ctx, dtype)


def zeros_like(data: NDArray) -> NDArray:
    """Zeros with the shape, dtype and context of ``data``."""
    return zeros(data.shape, data.context, data.dtype)


def ones_like(data: NDArray) -> NDArray:
    """Ones with the shape, dtype and context of ``data``."""
    return ones(data.shape, data.context, data.dtype)


_BAD_ITEMS = "save only accept dict str->NDArray or list of NDArray"


def _split(data: Any) -> tuple[list[str] | None, list[NDArray]]:
    """MXNet's ``nd.save`` argument rules: an NDArray, a list of them, or a dict
    str -> NDArray. Item types are checked where the items are used (joining
    the names, handing the arrays to Rust), which costs nothing extra; see
    ``_checked``."""
    if isinstance(data, NDArray):
        return None, [data]
    if isinstance(data, Mapping):
        return list(data.keys()), list(data.values())
    if isinstance(data, (list, tuple)):
        return None, list(data)
    raise MXParamsValueError(
        "data needs to either be a NDArray, dict of str, NDArray pairs or a list of NDarrays."
    )


def _checked(call: Any, names: list[str] | None, arrays: list[NDArray], *args: Any) -> Any:
    """Runs ``call(joined_names, arrays, *args)``, turning a wrong item type
    into MXNet's error."""
    try:
        joined = _joined(names)
    except TypeError:
        raise MXParamsTypeError(_BAD_ITEMS) from None
    try:
        return call(joined, arrays, *args)
    except TypeError:
        if not all(isinstance(a, NDArray) for a in arrays):
            raise MXParamsTypeError(_BAD_ITEMS) from None
        raise


def _joined(names: list[str] | None) -> str | None:
    # One NUL-joined str crosses into Rust far faster than a list of str.
    return None if names is None else "\0".join(names)


def tensor_to_numpy(t: Any) -> np.ndarray[Any, Any]:
    """A host numpy array with the tensor's values and dtype (a view when the
    tensor is a contiguous CPU tensor)."""
    import torch

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
        out: np.ndarray[Any, Any] = t.numpy().view(_np_dtype("bfloat16"))
        return out
    host: np.ndarray[Any, Any] = t.numpy()
    return host


def to_ndarray(value: Any) -> NDArray:
    """An NDArray copy of a torch tensor or numpy array, dtype kept."""
    if isinstance(value, NDArray):
        return value
    if isinstance(value, np.ndarray):
        return _from_numpy(value, None)
    return _from_numpy(tensor_to_numpy(value), None)


def _coerced(arrays: list[Any]) -> list[Any]:
    # numpy arrays and torch tensors are saved with their own dtype.
    if all(isinstance(a, NDArray) for a in arrays):
        return arrays
    return [
        to_ndarray(a) if isinstance(a, np.ndarray) or hasattr(a, "__dlpack__") else a
        for a in arrays
    ]


def save(
    fname: PathLike,
    data: SaveData,
    *,
    version: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Saves arrays to ``fname`` in MXNet's ``.params`` format.

    Parameters
    ----------
    fname : str or os.PathLike
        The file; written to a temporary sibling and renamed, so a crash
        never leaves a partial file.
    data : NDArray, list of NDArray, or dict of str to NDArray
        A dict gives a named file (``load`` returns a dict), the others a list.
    version : {None, 2, 3}
        Record version: 2 is MXNet 1.x's default, 3 its numpy-shape form
        (dense only). None picks V2 unless a 0-d array needs V3 to be read
        back by MXNet.
    metadata : dict of str to str, optional
        A ``.safetensors`` file's ``__metadata__``.

    A name ending in ``.safetensors`` writes a safetensors file (named arrays
    only; sparse arrays are stored densely). Values may also be numpy arrays
    or torch tensors, saved with their dtype.
    """
    path = os.fspath(fname)
    names, arrays = _split(data)
    arrays = _coerced(arrays)
    if path.endswith(".safetensors"):
        if names is None:
            raise MXParamsValueError("a safetensors file holds named arrays: pass a dict")
        _native._save_safetensors(path, names, arrays, None if metadata is None else dict(metadata))
        return
    _checked(lambda n, a, v: _native._save(path, n, a, v), names, arrays, version)


def save_tobuffer(data: SaveData, *, version: int | None = None) -> bytes:
    """The bytes ``save`` would write."""
    names, arrays = _split(data)
    arrays = _coerced(arrays)
    out: bytes = _checked(_native._save_tobuffer, names, arrays, version)
    return out


def _result(names: list[str] | None, arrays: list[NDArray]) -> list[NDArray] | dict[str, NDArray]:
    if names is None:
        return arrays
    # Duplicate names: the last one wins, as in MXNet.
    return dict(zip(names, arrays, strict=False))


def load(
    fname: PathLike, mmap: bool = False, ctx: Context | None = None
) -> list[NDArray] | dict[str, NDArray]:
    """Loads a ``.params`` file (or MXNet 2.0 ``.npz``, ``.npy``, ``.safetensors``,
    a sharded ``*.safetensors.index.json``): a list (no names stored) or a dict.

    Parameters
    ----------
    fname : str or os.PathLike
    mmap : bool
        Memory-map the file and return read-only zero-copy views of it
        (copy them, e.g. with ``copyto``, before writing).
    ctx : Context, optional
        Where the arrays go (default ``cpu(0)``). A GPU context streams the
        memory-mapped file to the device through pinned staging buffers.

    ``fname`` may also be a sharded checkpoint's index (``NAME.params.index.json``
    written by ``mxparams.dist_checkpoint``, or a safetensors
    ``*.safetensors.index.json``): the dict of every shard's arrays.
    """
    names, arrays = _native._load(os.fspath(fname), mmap, ctx)
    return _result(names, arrays)


def release_host_pool() -> int:
    """Returns cached host memory to the operating system; gives the bytes released.

    Freed arrays of 1 MiB or more leave their memory in a process-wide cache
    (up to ``MXPARAMS_HOST_POOL_BYTES``, default 4 GiB; 0 disables it) so that the
    next load of a similar checkpoint reuses warm pages instead of faulting in
    fresh ones, as MXNet's pooled storage manager does.
    """
    return _native._release_host_pool()


def load_frombuffer(buf: bytes | bytearray | memoryview) -> list[NDArray] | dict[str, NDArray]:
    """Loads ``.params`` bytes: a list or a dict, as ``load``."""
    names, arrays = _native._load_frombuffer(bytes(buf))
    return _result(names, arrays)
