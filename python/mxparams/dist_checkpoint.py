"""Checkpoints of a ParameterDict across processes (``torch.distributed``).

* :func:`save` -- rank 0 writes ``NAME.params`` (atomically), then a barrier.
* :func:`load` -- every rank loads through the memory map, so the ranks of
  one node share one read of the file (the page cache).
* :func:`save_sharded` -- each rank writes its share of the parameters,
  balanced by bytes, in parallel: ``NAME-00000-of-00004.params`` ... and
  ``NAME.params.index.json`` (``{"metadata": ..., "weight_map": {param:
  file}}``, as the safetensors index). Shards are first written under
  temporary names; only after a barrier (every shard complete) are they
  renamed into place, and only after a second barrier does rank 0 write the
  index (atomically). A rank that dies before the first barrier leaves the
  previous checkpoint untouched; the index never names a shard that is
  absent or partial.
* :func:`load_sharded` -- reads a sharded checkpoint with any world size,
  also in one process without a process group; ``mxparams.nd.load`` reads
  the index file too.

The values saved are those :meth:`ParameterDict.save` writes (one copy per
parameter).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from . import nd as _nd
from ._errors import MXParamsError
from ._files import write_bytes
from .parameter import ParameterDict

__all__ = [
    "CheckpointError",
    "load",
    "load_index",
    "load_sharded",
    "save",
    "save_sharded",
    "shard_assignment",
]


class CheckpointError(MXParamsError):
    """A sharded checkpoint that cannot be read (index or shard missing)."""


def _dist() -> Any:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def _rank_world(group: Any) -> tuple[int, int, Any]:
    dist = _dist()
    if dist is None:
        return 0, 1, None
    return dist.get_rank(group), dist.get_world_size(group), dist


def save(pd: ParameterDict, fname: str | os.PathLike[str], group: Any = None) -> None:
    """Rank 0 saves ``pd`` to ``fname``; every rank returns after it is on disk."""
    rank, _, dist = _rank_world(group)
    if rank == 0:
        pd.save(fname)
    if dist is not None:
        dist.barrier(group=group)


def load(pd: ParameterDict, fname: str | os.PathLike[str], **kwargs: Any) -> None:
    """Every rank loads ``fname`` (memory-mapped: one read per node)."""
    pd.load(fname, **kwargs)


def shard_assignment(sizes: dict[str, int], nshards: int) -> list[list[str]]:
    """Names per shard, balanced by bytes: largest first onto the lightest
    shard (deterministic, so every rank computes the same split)."""
    loads = [0] * nshards
    shards: list[list[str]] = [[] for _ in range(nshards)]
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        k = min(range(nshards), key=lambda i: (loads[i], i))
        shards[k].append(name)
        loads[k] += sizes[name]
    return shards


def _shard_name(base: str, k: int, n: int) -> str:
    return f"{base}-{k:05d}-of-{n:05d}.params"


def _index_path(prefix: str | os.PathLike[str]) -> tuple[Path, str]:
    p = Path(prefix)
    name = p.name
    if name.endswith(".params.index.json"):
        name = name[: -len(".params.index.json")]
    elif name.endswith(".params"):
        name = name[: -len(".params")]
    return p.parent / f"{name}.params.index.json", name


def save_sharded(pd: ParameterDict, prefix: str | os.PathLike[str], group: Any = None) -> Path:
    """Writes ``pd`` as one shard per rank plus an index; returns the index path.

    ``prefix`` is ``DIR/NAME`` (or ``DIR/NAME.params``)."""
    rank, world, dist = _rank_world(group)
    index, base = _index_path(prefix)
    folder = index.parent
    sizes: dict[str, int] = {}
    for name, p in pd.items():
        if p._is_initialized():
            shape = p.shape or ()
            n = 1
            for d in shape:
                n *= d
            sizes[name] = n * p.dtype.itemsize
    shards = shard_assignment(sizes, world)
    token = uuid.uuid4().hex if rank == 0 else ""
    if dist is not None:
        box = [token]
        dist.broadcast_object_list(
            box, src=dist.get_global_rank(group, 0) if group else 0, group=group
        )
        token = box[0]
    mine = {name: pd[name]._reduce() for name in shards[rank]}
    final = folder / _shard_name(base, rank, world)
    tmp = folder / f".{final.name}.{token}.tmp"
    _nd.save(tmp, mine)
    if dist is not None:
        dist.barrier(group=group)  # every shard is complete before any is renamed
    os.replace(tmp, final)
    if dist is not None:
        dist.barrier(group=group)  # every shard is in place before the index names it
    if rank == 0:
        weight_map = {
            name: _shard_name(base, k, world) for k, names in enumerate(shards) for name in names
        }
        meta = {"total_size": sum(sizes.values()), "shards": world, "format": "mxnet-params"}
        body = json.dumps({"metadata": meta, "weight_map": weight_map}, indent=1, sort_keys=True)
        write_bytes(index, body.encode(), fsync=True)
    if dist is not None:
        dist.barrier(group=group)
    return index


def load_index(index: str | os.PathLike[str]) -> dict[str, Any]:
    """Every array of a sharded checkpoint, by name (memory-mapped, read-only).

    The index is read by the native loader (the one ``nd.load`` uses for
    ``*.index.json``): shard names must be plain sibling file names, and every
    name of the ``weight_map`` must be found in a shard.
    """
    path = Path(index)
    try:
        arrays = _nd.load(path, mmap=True)
    except MXParamsError as err:
        raise CheckpointError(f"{path}: {err}") from err
    if not isinstance(arrays, dict):
        raise CheckpointError(f"{path}: a sharded checkpoint stores named arrays")
    return arrays


def load_sharded(pd: ParameterDict, index: str | os.PathLike[str], **kwargs: Any) -> None:
    """Loads a sharded checkpoint into ``pd`` (any world size, or none);
    ``kwargs`` are :meth:`ParameterDict.load_dict`'s."""
    pd.load_dict(load_index(_index_path(index)[0]), filename=str(index), **kwargs)
