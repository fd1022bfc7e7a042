"""Trainer state files: ours, and MXNet 1.9.1's ``Trainer.save_states`` pickles.

MXNet writes ``pickle.dumps((states, optimizer))``: ``states`` maps each
parameter index to NDArrays (or tuples of them, or None) and ``optimizer`` is
an ``mxnet.optimizer.Optimizer`` (with its ``lr_scheduler``). Such a pickle is
read by :class:`_RestrictedUnpickler`, which resolves only MXNet's NDArray,
its ``bytearray`` payload, the optimizer and scheduler classes mxparams
implements, and numpy scalars; any other global is refused, so no code
named by the file runs. NDArrays are rebuilt from their serialised records by
the native ``.params`` reader.

Our own files are pickles of builtins only (dicts, tuples, numbers, strings,
bytes): the optimizer's attributes, the state structure with arrays replaced
by their position, and the arrays as one ``.params`` buffer. They are written
to a temporary file and renamed over the target, so a crash never leaves a
torn file.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import torch

import mxparams._native as _native

from . import lr_scheduler as _lrs
from . import nd as _nd
from . import optimizer as _opt
from ._errors import MXParamsError, MXParamsTypeError
from ._files import write_bytes

__all__ = ["TrainerStatesError", "dump_states", "load_states_file"]

FORMAT = "mxparams.trainer_states"
VERSION = 1


class TrainerStatesError(MXParamsError):
    """A trainer states file that cannot be read (or names a forbidden class)."""


# -- arrays -------------------------------------------------------------------


def tensor_to_nd(t: torch.Tensor) -> Any:
    """A host NDArray copy of ``t``."""
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        arr = t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    else:
        arr = t.numpy()
    return _nd.array(arr, dtype=arr.dtype)


def nd_to_tensor(a: Any, device: torch.device) -> torch.Tensor:
    """A writable torch copy of NDArray ``a`` on ``device``."""
    arr = np.array(a.asnumpy(), copy=True)
    if arr.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16).to(device)
    return torch.from_numpy(arr).to(device)


# -- MXNet's pickle -------------------------------------------------------------


class _MXNDArray:
    """Stands for ``mxnet.ndarray.ndarray.NDArray`` while unpickling: holds
    the serialised record MXNet's ``__getstate__`` wrote."""

    def __init__(self, handle: Any = None) -> None:
        self.record: bytes | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != {"handle"}:
            raise TrainerStatesError("an MXNet NDArray in the states pickle has no 'handle'")
        handle = state["handle"]
        if handle is not None and not isinstance(handle, (bytes, bytearray)):
            raise TrainerStatesError("an MXNet NDArray's handle is not bytes")
        self.record = None if handle is None else bytes(handle)

    def to_nd(self) -> Any:
        if self.record is None:
            raise TrainerStatesError("an MXNet NDArray in the states pickle is empty")
        return _native._unpickle_ndarray(self.record, "cpu", 0)


class _Pickled:
    """Stands for an MXNet optimizer or scheduler: keeps the class it maps
    to and the attribute dict ``BUILD`` hands over."""

    target: type[Any] = object

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise TrainerStatesError(f"the pickled {self.target.__name__} has no attribute dict")
        self.attrs = state


def _stand_in(target: type[Any]) -> type[Any]:
    return type(f"_Pickled{target.__name__}", (_Pickled,), {"target": target})


_OPTIMIZERS: dict[str, type[Any]] = {
    "SGD": _opt.SGD,
    "NAG": _opt.NAG,
    "Adam": _opt.Adam,
    "RMSProp": _opt.RMSProp,
    "AdaGrad": _opt.AdaGrad,
    "AdaDelta": _opt.AdaDelta,
    "Signum": _opt.Signum,
    "Ftrl": _opt.Ftrl,
    "LAMB": _opt.LAMB,
}
_SCHEDULERS: dict[str, type[Any]] = {
    "FactorScheduler": _lrs.FactorScheduler,
    "MultiFactorScheduler": _lrs.MultiFactorScheduler,
    "PolyScheduler": _lrs.PolyScheduler,
    "CosineScheduler": _lrs.CosineScheduler,
}
_STAND_INS: dict[tuple[str, str], Any] = {
    ("mxnet.ndarray.ndarray", "NDArray"): _MXNDArray,
    ("builtins", "bytearray"): bytearray,
}
_STAND_INS.update({("mxnet.optimizer.optimizer", k): _stand_in(v) for k, v in _OPTIMIZERS.items()})
_STAND_INS.update({("mxnet.lr_scheduler", k): _stand_in(v) for k, v in _SCHEDULERS.items()})


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy.core.multiarray.scalar``, for plain numeric dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or not isinstance(data, bytes):
        raise TrainerStatesError("a numpy scalar of a non-numeric type in the states pickle")
    if len(data) != dtype.itemsize:
        raise TrainerStatesError("a numpy scalar of the wrong size in the states pickle")
    return np.frombuffer(data, dtype=dtype)[0].item()


def _numpy_dtype(name: Any, align: Any = False, copy: Any = True) -> np.dtype[Any]:
    dt = np.dtype(str(name)) if isinstance(name, str) else None
    if dt is None or dt.kind not in "biuf":
        raise TrainerStatesError(f"numpy dtype {name!r} is not allowed in a states pickle")
    return dt


for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _STAND_INS[(_mod, "scalar")] = _numpy_scalar
_STAND_INS[("numpy", "dtype")] = _numpy_dtype


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in ``_STAND_INS``; refuses every other."""

    def find_class(self, module: str, name: str) -> Any:
        found = _STAND_INS.get((module, name))
        if found is None:
            raise TrainerStatesError(
                f"the states file names {module}.{name}, which a trainer states file "
                "may not contain (only MXNet's NDArray, optimizers and lr schedulers)"
            )
        return found


def _restricted_loads(data: bytes) -> Any:
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except TrainerStatesError:
        raise
    except Exception as err:  # pickle raises many types for bad bytes
        raise TrainerStatesError(f"not a readable trainer states pickle: {err}") from err


def _build(obj: Any, kind: str) -> Any:
    """An mxparams optimizer/scheduler from a stand-in's attributes."""
    if not isinstance(obj, _Pickled):
        raise TrainerStatesError(f"the states file's {kind} is not an MXNet {kind}")
    target = obj.target
    inst = object.__new__(target)
    attrs = dict(obj.attrs)
    sched = attrs.get("lr_scheduler")
    if sched is not None:
        attrs["lr_scheduler"] = _build(sched, "lr scheduler")
    inst.__dict__.update(attrs)
    if isinstance(inst, _opt.Optimizer):
        inst.param_dict = {}
    return inst


def _convert_state(s: Any, device: torch.device) -> Any:
    if isinstance(s, _MXNDArray):
        return nd_to_tensor(s.to_nd(), device)
    if isinstance(s, (tuple, list)):
        return type(s)(_convert_state(x, device) for x in s)
    if s is None:
        return None
    raise TrainerStatesError(f"unexpected {type(s).__name__} in the optimizer states")


# -- our format -------------------------------------------------------------------


def _flatten(s: Any, arrays: list[Any]) -> Any:
    if isinstance(s, torch.Tensor):
        arrays.append(tensor_to_nd(s))
        return ("__array__", len(arrays) - 1)
    if isinstance(s, (tuple, list)):
        return ("__tuple__", [_flatten(x, arrays) for x in s])
    if s is None:
        return None
    raise MXParamsTypeError(f"cannot save an optimizer state of type {type(s).__name__}")


def _unflatten(s: Any, arrays: list[Any], device: torch.device) -> Any:
    if s is None:
        return None
    if isinstance(s, tuple) and len(s) == 2 and s[0] == "__array__":
        return nd_to_tensor(arrays[s[1]], device)
    if isinstance(s, tuple) and len(s) == 2 and s[0] == "__tuple__":
        return tuple(_unflatten(x, arrays, device) for x in s[1])
    raise TrainerStatesError("malformed state structure in the trainer states file")


def _plain_attrs(obj: Any) -> dict[str, Any]:
    attrs = obj.__getstate__() if isinstance(obj, _opt.Optimizer) else dict(obj.__dict__)
    sched = attrs.get("lr_scheduler")
    if sched is not None:
        attrs["lr_scheduler"] = {
            "__scheduler__": type(sched).__name__,
            "attrs": dict(sched.__dict__),
        }
    return attrs


def dump_states(fname: str | os.PathLike[str], optimizer: Any, states: dict[int, Any]) -> None:
    """Writes ``states`` and ``optimizer`` to ``fname`` atomically."""
    arrays: list[Any] = []
    flat = {int(k): _flatten(v, arrays) for k, v in states.items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "optimizer_class": type(optimizer).__name__,
        "optimizer": _plain_attrs(optimizer),
        "states": flat,
        "arrays": _nd.save_tobuffer(arrays) if arrays else b"",
    }
    write_bytes(fname, pickle.dumps(payload, protocol=4), fsync=True)


def load_states_file(
    fname: str | os.PathLike[str], device: torch.device
) -> tuple[Any, dict[int, Any]]:
    """(optimizer, states) from ours or MXNet's states file; arrays become
    torch tensors on ``device``."""
    try:
        data = Path(fname).read_bytes()
    except OSError as err:
        raise TrainerStatesError(f"{fname}: {err.strerror}") from err
    obj = _restricted_loads(data)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return _load_ours(obj, device)
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], dict):
        optimizer = _build(obj[1], "optimizer")
        states = {int(k): _convert_state(v, device) for k, v in obj[0].items()}
        return optimizer, states
    raise TrainerStatesError(
        f"{fname}: not a trainer states file (MXNet's save_states with its optimizer, or ours)"
    )


def _load_ours(obj: dict[str, Any], device: torch.device) -> tuple[Any, dict[int, Any]]:
    if obj.get("version") != VERSION:
        raise TrainerStatesError(f"unsupported trainer states version {obj.get('version')!r}")
    klass = _OPTIMIZERS.get(str(obj.get("optimizer_class")))
    if klass is None:
        raise TrainerStatesError(f"unknown optimizer class {obj.get('optimizer_class')!r}")
    attrs = dict(obj["optimizer"])
    sched = attrs.get("lr_scheduler")
    if sched is not None:
        sk = _SCHEDULERS.get(str(sched.get("__scheduler__")))
        if sk is None:
            raise TrainerStatesError(f"unknown lr scheduler {sched.get('__scheduler__')!r}")
        s = object.__new__(sk)
        s.__dict__.update(sched["attrs"])
        attrs["lr_scheduler"] = s
    optimizer = object.__new__(klass)
    optimizer.__dict__.update(attrs)
    optimizer.param_dict = {}
    raw = obj["arrays"]
    arrays: list[Any] = []
    if raw:
        loaded = _nd.load_frombuffer(raw)
        arrays = list(loaded.values()) if isinstance(loaded, dict) else list(loaded)
    states = {int(k): _unflatten(v, arrays, device) for k, v in obj["states"].items()}
    return optimizer, states
