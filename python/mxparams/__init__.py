"""mxparams: MXNet Gluon's parameter system and ``.params`` format, without MXNet."""

from __future__ import annotations

from . import _native, autograd, init, random
from . import init as initializer
from ._errors import DeferredInitializationError, MXParamsError, ParamsFormatError

__version__: str = _native.__version__

__all__ = [
    "DeferredInitializationError",
    "MXParamsError",
    "ParamsFormatError",
    "__version__",
    "autograd",
    "init",
    "initializer",
    "random",
]
