"""PyTorch files and tensors as mxparams arrays, and the other way round.

Torch is imported when these functions run, never when ``mxparams`` is
imported. Every dtype keeps its type: bfloat16 crosses as its 16-bit pattern
(numpy has no bfloat16 of its own; ``ml_dtypes`` provides the numpy side).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from ._errors import MXParamsValueError
from ._files import write_with
from ._native import NDArray
from .nd import _np_dtype, to_ndarray

PathLike = str | os.PathLike[str]


def to_tensor(array: NDArray) -> Any:
    """A CPU torch tensor holding a copy of the array (dense form), dtype kept."""
    import torch

    if array.stype != "default":
        array = array.tostype("default")
    host = np.array(array)  # a writable copy: torch.save needs its own memory anyway
    if host.dtype == _np_dtype("bfloat16"):
        return torch.from_numpy(host.view(np.int16)).view(torch.bfloat16)
    # torch.from_numpy refuses numpy's alias type codes ('Q' for a uint64 that
    # numpy also spells 'L'): view as the canonical dtype of the same layout.
    return torch.from_numpy(host.view(np.dtype(host.dtype.str)))


def _state_dict_of(obj: Any, path: PathLike) -> Mapping[str, Any]:
    import torch

    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise MXParamsValueError(
            f"{os.fspath(path)} does not hold a state_dict (a dict of str to tensors)"
        )
    return obj


def read_torch(path: PathLike) -> tuple[list[str], list[NDArray]]:
    """The names and arrays of a ``torch.save``'d state_dict, loaded with
    ``weights_only=True`` (no code from the file runs)."""
    import torch

    obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    sd = _state_dict_of(obj, path)
    return list(sd.keys()), [to_ndarray(v) for v in sd.values()]


def write_torch(path: PathLike, names: list[str], arrays: list[NDArray]) -> None:
    """Writes a state_dict file that ``torch.load(weights_only=True)`` reads."""
    import torch

    sd = {n: to_tensor(a) for n, a in zip(names, arrays, strict=True)}
    write_with(path, lambda f: torch.save(sd, f))


def write_numpy(path: PathLike, fmt: str, names: list[str], arrays: list[NDArray]) -> None:
    """Writes a numpy ``.npz`` (one member per name) or ``.npy`` (one array)."""
    host = {}
    for n, a in zip(names, arrays, strict=True):
        if a.dtype == _np_dtype("bfloat16"):
            raise MXParamsValueError(
                f"numpy files cannot hold bfloat16 ({n}): use --dtype float32 or safetensors"
            )
        host[n] = np.asarray(a.tostype("default") if a.stype != "default" else a)

    def write(f: IO[bytes]) -> None:
        if fmt == "npy":
            np.save(f, next(iter(host.values())))
        else:
            np.savez(f, **host)  # type: ignore[arg-type]

    write_with(path, write)


@dataclass
class LoadReport:
    """What :func:`load_into` did, like ``load_state_dict``'s result."""

    method: str
    matched: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def renamed(self) -> dict[str, str]:
        """Checkpoint name -> module name, where they differ."""
        return {s: d for s, d in self.matched if s != d}


def _arrays_of(source: Any) -> dict[str, NDArray]:
    from .nd import load
    from .parameter import ParameterDict

    if isinstance(source, ParameterDict):
        return {n: p.data() for n, p in source.items()}
    if isinstance(source, Mapping):
        return {str(k): to_ndarray(v) for k, v in source.items()}
    loaded = load(source)
    if not isinstance(loaded, dict):
        raise MXParamsValueError(f"{os.fspath(source)} holds no names (a list file)")
    return loaded


def _skipped(name: str, t: Any) -> bool:
    # BatchNorm's step counter: PyTorch state, not a parameter (MXNet has none).
    return name.endswith("num_batches_tracked")


def load_into(
    module: Any, source: Any, *, mapping: Any = "auto", strict: bool = True
) -> LoadReport:
    """Loads a checkpoint (a ``.params``/``.npz``/``.safetensors`` path, a dict,
    or a ParameterDict) into a ``torch.nn.Module``; see ``mxparams.torch``."""
    from .names import pair

    arrays = _arrays_of(source)
    sd = module.state_dict()
    target = [(n, tuple(t.shape)) for n, t in sd.items() if not _skipped(n, t)]
    if isinstance(mapping, Mapping):
        pairs = [(s, d) for s, d in mapping.items()]
        method = "given"
    elif mapping == "auto":
        p = pair([(n, tuple(a.shape)) for n, a in arrays.items()], target)
        pairs, method = p.pairs, p.method
    else:
        raise MXParamsValueError(f"mapping must be 'auto' or a dict, not {mapping!r}")
    tshapes = dict(target)
    new = {}
    for s, d in pairs:
        if d not in tshapes:
            raise MXParamsValueError(f"{s} maps to {d}, which the module does not have")
        if tuple(arrays[s].shape) != tshapes[d]:
            raise MXParamsValueError(
                f"shape mismatch: {s} {tuple(arrays[s].shape)} for {d} {tshapes[d]}"
            )
        new[d] = to_tensor(arrays[s]).to(sd[d].dtype)
    missing = [n for n, _ in target if n not in new]
    unexpected = [s for s in arrays if s not in dict(pairs)]
    if strict and (missing or unexpected):
        raise MXParamsValueError(f"load_into: missing {missing[:5]}, unexpected {unexpected[:5]}")
    module.load_state_dict(new, strict=False)
    return LoadReport(method, pairs, missing, unexpected)


def state_dict(source: Any, *, mapping: Any = "gluon") -> dict[str, NDArray]:
    """The arrays of a torch module or state_dict, named for MXNet: with
    ``mapping="gluon"`` a BatchNorm's weight/bias become gamma/beta; a dict
    renames explicitly (module name -> MXNet name). Save with ``nd.save``."""
    from .names import torch_to_gluon

    sd = source.state_dict() if hasattr(source, "state_dict") else source
    items = [(n, t) for n, t in sd.items() if not _skipped(n, t)]
    names = [n for n, _ in items]
    if isinstance(mapping, Mapping):
        names = [mapping.get(n, n) for n in names]
    elif mapping == "gluon":
        names = torch_to_gluon(names)
    elif mapping is not None:
        raise MXParamsValueError(f"mapping must be 'gluon', None or a dict, not {mapping!r}")
    return {n: to_ndarray(t) for n, (_, t) in zip(names, items, strict=True)}
