"""The one random generator that every initializer draws from.

``seed(n)`` makes every later draw reproducible. The generator state is a
seed and a stream counter: each fill takes the next stream id, so successive
fills differ, and the values of a fill depend only on ``(seed, stream)``, the
array's size and its dtype -- not on the number of threads that filled it
(the native kernels split the array into fixed, independently seeded chunks).
Without an explicit seed the generator is seeded from OS entropy at import.

Unlike MXNet, there is a single generator for all contexts: ``seed(n, ctx)``
accepts ``ctx`` for compatibility and seeds that one generator.
"""

from __future__ import annotations

import numbers
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

import mxparams._native as _native

from ._errors import MXParamsTypeError, MXParamsValueError

__all__ = ["fill_normal", "fill_uniform", "normal", "randint", "seed", "uniform"]

_MASK64 = (1 << 64) - 1
_FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")


class _FloatDTypes:
    """The dtypes random fills accept, as a container (``dtype in _FLOAT_DTYPE_SET``).

    bfloat16 is ``ml_dtypes.bfloat16``, and importing ml_dtypes takes most of a second,
    so ``import mxparams`` must not do it: an array can only have that dtype once
    ml_dtypes is imported, so the membership test looks for it in ``sys.modules``
    instead of importing it.
    """

    # dtype objects hash and compare faster than ``dtype.name`` is computed.
    _NUMPY = frozenset([np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)])

    def __contains__(self, dtype: object) -> bool:
        if dtype in self._NUMPY:
            return True
        ml_dtypes = sys.modules.get("ml_dtypes")
        return (
            ml_dtypes is not None
            and isinstance(dtype, np.dtype)
            and dtype == np.dtype(ml_dtypes.bfloat16)
        )


_FLOAT_DTYPE_SET = _FloatDTypes()

ShapeLike = int | Sequence[int]
_T = TypeVar("_T")


class _Generator:
    """Seed plus stream counter, shared by every thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seed = int.from_bytes(os.urandom(8), "little")
        self._stream = 0

    def reseed(self, value: int) -> None:
        with self._lock:
            self._seed = value & _MASK64
            self._stream = 0

    def draw_block(self, fill: Callable[[int, int], tuple[_T, int]]) -> _T:
        """Runs ``fill(seed, first_stream)``, a native fill that draws
        consecutive streams from ``first_stream`` and returns its result and
        the number of streams it drew; no other draw runs meanwhile. A fill
        that raises draws nothing."""
        with self._lock:
            result, used = fill(self._seed, self._stream)
            self._stream += used
            return result

    def next_key(self) -> tuple[int, int]:
        with self._lock:
            key = (self._seed, self._stream)
            self._stream += 1
            return key


_GENERATOR = _Generator()


def seed(seed_state: int, ctx: Any = "all") -> None:
    """Seeds the generator used by every initializer.

    Parameters
    ----------
    seed_state : int
        The random number seed. The same seed gives the same values.
    ctx : Context or str, optional
        Accepted for compatibility with ``mx.random.seed``; mxparams has one
        generator for all devices, so it is always seeded.

    Examples
    --------
    >>> mxparams.random.seed(128)
    """
    if not isinstance(seed_state, numbers.Integral):
        raise MXParamsValueError("seed_state must be int")
    _GENERATOR.reseed(int(seed_state))


def _check_out(out: np.ndarray) -> None:
    if not isinstance(out, np.ndarray):
        raise MXParamsTypeError(f"out must be a numpy.ndarray, not {type(out).__name__}")
    if out.dtype not in _FLOAT_DTYPE_SET:
        raise MXParamsTypeError(
            f"random fills need a float32/float64/float16/bfloat16 array, not {out.dtype}"
        )


def _fill(kind: str, out: np.ndarray, a: float, b: float) -> np.ndarray:
    _check_out(out)
    a, b = float(a), float(b)
    # MXNet's sampling operators reject these; say so instead of filling NaN.
    (_native.FillSpec.uniform(a, b) if kind == "uniform" else _native.FillSpec.normal(a, b)).check()
    if out.size == 0:
        return out
    if out.flags.c_contiguous and out.flags.writeable:
        target = out
    else:
        target = np.empty(out.shape, dtype=out.dtype)
    seed_value, stream = _GENERATOR.next_key()
    if kind == "uniform":
        _native.fill_uniform(target, a, b, seed_value, stream)
    else:
        _native.fill_normal(target, a, b, seed_value, stream)
    if target is not out:
        out[...] = target
    return out


def fill_uniform(out: np.ndarray, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Fills a float numpy array in place with draws from ``[low, high)``; returns it."""
    return _fill("uniform", out, low, high)


def fill_normal(out: np.ndarray, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Fills a float numpy array in place with draws from ``N(loc, scale**2)``; returns it."""
    return _fill("normal", out, loc, scale)


def _shape(shape: ShapeLike) -> tuple[int, ...]:
    if isinstance(shape, Sequence):
        return tuple(int(d) for d in shape)
    return (int(shape),)


def uniform(
    low: float = 0.0,
    high: float = 1.0,
    shape: ShapeLike = 1,
    dtype: Any = "float32",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Draws from ``[low, high)`` into ``out`` or a new numpy array of ``shape``."""
    if out is None:
        out = np.empty(_shape(shape), dtype=_dtype(dtype))
    return fill_uniform(out, low, high)


def normal(
    loc: float = 0.0,
    scale: float = 1.0,
    shape: ShapeLike = 1,
    dtype: Any = "float32",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Draws from ``N(loc, scale**2)`` into ``out`` or a new numpy array of ``shape``."""
    if out is None:
        out = np.empty(_shape(shape), dtype=_dtype(dtype))
    return fill_normal(out, loc, scale)


def randint(low: int, high: int, shape: ShapeLike = 1, dtype: Any = "int32") -> np.ndarray:
    """Draws integers uniformly from ``[low, high)`` as a new numpy array."""
    if high <= low:
        raise MXParamsValueError(f"randint needs low < high, got low={low}, high={high}")
    u = uniform(0.0, 1.0, shape, dtype="float64")
    values: np.ndarray = np.minimum(np.floor(low + (high - low) * u), high - 1)
    return values.astype(_dtype(dtype))


def _dtype(dtype: Any) -> np.dtype[Any]:
    if isinstance(dtype, str) and dtype == "bfloat16":
        import ml_dtypes

        bf16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
        return bf16
    dt: np.dtype[Any] = np.dtype(dtype)
    return dt
