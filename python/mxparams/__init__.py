"""mxparams: MXNet Gluon's parameter system and ``.params`` format, without MXNet."""

from __future__ import annotations

from . import _native, autograd, init, nd, random
from . import init as initializer
from ._errors import (
    DeferredInitializationError,
    MXParamsAttributeError,
    MXParamsBufferError,
    MXParamsError,
    MXParamsFileExistsError,
    MXParamsFileNotFoundError,
    MXParamsIsADirectoryError,
    MXParamsKeyError,
    MXParamsMemoryError,
    MXParamsNotADirectoryError,
    MXParamsNotImplementedError,
    MXParamsOSError,
    MXParamsPermissionError,
    MXParamsTypeError,
    MXParamsValueError,
    ParamsFormatError,
)
from ._native import NDArray
from .context import Context, cpu, cpu_pinned, cpu_shared, current_context, gpu, num_gpus
from .parameter import Constant, Parameter, ParameterDict, Variable

__version__: str = _native.__version__

__all__ = [
    "Constant",
    "Context",
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
    "NDArray",
    "Parameter",
    "ParameterDict",
    "ParamsFormatError",
    "Variable",
    "__version__",
    "autograd",
    "cpu",
    "cpu_pinned",
    "cpu_shared",
    "current_context",
    "gpu",
    "init",
    "initializer",
    "nd",
    "num_gpus",
    "random",
]
