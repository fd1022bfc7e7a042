"""Exception types of mxparams (a leaf module: imports nothing from the package).

Every exception the package raises is an :class:`MXParamsError`. Where one
stands for a builtin exception it subclasses that builtin too, so code written
for MXNet (``except ValueError``, ``except FileNotFoundError``) keeps working.
The builtin comes first among the bases of the OS errors: ``OSError`` then
keeps its constructor, so ``errno``, ``strerror``, ``filename`` and
``filename2`` are set as on any ``OSError``.
"""

from __future__ import annotations

__all__ = [
    "DeferredInitializationError",
    "MXParamsAttributeError",
    "MXParamsBufferError",
    "MXParamsError",
    "MXParamsFileExistsError",
    "MXParamsFileNotFoundError",
    "MXParamsIsADirectoryError",
    "MXParamsKeyError",
    "MXParamsMemoryError",
    "MXParamsNotADirectoryError",
    "MXParamsNotImplementedError",
    "MXParamsOSError",
    "MXParamsPermissionError",
    "MXParamsTypeError",
    "MXParamsValueError",
    "ParamsFormatError",
    "StaleGradientError",
]


class MXParamsError(RuntimeError):
    """Base class of every error the package raises (a ``RuntimeError``, as ``MXNetError`` is)."""


class DeferredInitializationError(MXParamsError):
    """Data or gradient accessed while initialisation is deferred."""


class MXParamsValueError(ValueError, MXParamsError):
    """An argument has the right type but a bad value (shape, dtype, name, option)."""


class ParamsFormatError(MXParamsValueError):
    """A ``.params`` file or buffer is malformed; the message names the byte offset."""


class MXParamsTypeError(TypeError, MXParamsError):
    """An argument has the wrong type (a non-integer dimension, a str for a Context, ...)."""


class MXParamsKeyError(KeyError, MXParamsError):
    """A name is not present in a mapping."""


class MXParamsAttributeError(AttributeError, MXParamsError):
    """The array has no such attribute (``indices`` of a dense array, ...)."""


class MXParamsBufferError(BufferError, MXParamsError):
    """The array cannot be exported through the buffer protocol or DLPack as asked."""


class MXParamsNotImplementedError(NotImplementedError, MXParamsError):
    """The operation is not supported for this kind of array or parameter."""


class MXParamsMemoryError(MemoryError, MXParamsError):
    """Memory for an array could not be allocated."""


class MXParamsOSError(OSError, MXParamsError):
    """An operating-system error; ``errno``, ``filename`` (and ``filename2``) are set."""


class MXParamsFileNotFoundError(FileNotFoundError, MXParamsOSError):
    """The file (or a directory on its path) does not exist."""


class MXParamsFileExistsError(FileExistsError, MXParamsOSError):
    """The file exists where a new one was to be created."""


class MXParamsPermissionError(PermissionError, MXParamsOSError):
    """The file may not be read or written (including a file whose mode makes it read-only)."""


class MXParamsIsADirectoryError(IsADirectoryError, MXParamsOSError):
    """A directory was given where a file was expected."""


class MXParamsNotADirectoryError(NotADirectoryError, MXParamsOSError):
    """A path component that should be a directory is not one."""


class StaleGradientError(UserWarning, MXParamsError):
    """``Trainer.step`` met a gradient no backward pass wrote since the last
    step. MXNet raises its ``UserWarning`` as an exception; this is one."""
