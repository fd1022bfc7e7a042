"""Exception types of mxparams (a leaf module: imports nothing from the package)."""

from __future__ import annotations

__all__ = ["MXParamsError", "DeferredInitializationError", "ParamsFormatError"]


class MXParamsError(RuntimeError):
    """Base class of the package's own errors."""


class DeferredInitializationError(MXParamsError):
    """Data or gradient accessed while initialisation is deferred."""


class ParamsFormatError(MXParamsError, ValueError):
    """A ``.params`` file or buffer is malformed; the message names the byte offset."""
