"""mxparams: MXNet Gluon's parameter system and ``.params`` format, without MXNet."""

from __future__ import annotations

from typing import Any

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
    StaleGradientError,
)
from ._native import NDArray
from .context import Context, cpu, cpu_pinned, cpu_shared, current_context, gpu, num_gpus
from .parameter import Constant, Parameter, ParameterDict, Variable

__version__: str = _native.__version__


def __getattr__(name: str) -> Any:
    # torch-dependent parts load on first use, so ``import mxparams`` stays fast.
    if name == "Trainer":
        from .trainer import Trainer

        return Trainer
    if name in ("optimizer", "lr_scheduler", "distributed", "dist_checkpoint", "trainer"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise MXParamsAttributeError(f"module 'mxparams' has no attribute {name!r}")


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
    "StaleGradientError",
    "Trainer",
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
