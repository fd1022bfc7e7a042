"""Data-parallel training across processes on ``torch.distributed``.

Works with any initialised process group (Gloo on CPU, NCCL on GPU, launched
e.g. with ``torchrun``); ``group=`` selects a subgroup. Nothing here is a
transport of its own: every collective is ``torch.distributed``'s.

* :func:`broadcast_parameters` -- rank ``src``'s values on every rank and
  context; names, shapes and dtypes are compared across ranks first, so a
  mismatch is a named :class:`DistributedError` on every rank, not a hang.
  Parameters still in deferred initialisation are broadcast when they
  materialise (every rank must materialise them at the same point, as with
  Horovod).
* :class:`GradientSync` -- hierarchical gradient sync, like kvstore
  ``device`` + ``dist_sync``: a sum over the local contexts, one all-reduce
  per bucket across processes, the result on every local context. Buckets
  hold one dtype, about ``bucket_cap_mb`` each, in reverse registration
  order (as DDP); ``grad_req='null'`` parameters are skipped; ``average``
  divides by the total number of copies (processes x contexts).
* :class:`OverlappedGradSync` -- the same buckets, started asynchronously
  from gradient hooks on the tensors :func:`mxparams.torch.tensor` hands
  out, as soon as every gradient of a bucket has landed, so communication
  overlaps the rest of backward; :meth:`~OverlappedGradSync.wait` finishes
  them; :meth:`~OverlappedGradSync.no_sync` skips syncing for gradient
  accumulation (use ``grad_req='add'`` so the buffers accumulate).
* ``compression='fp16'``/``'bf16'``: float32 buckets travel in half
  precision (DDP's compression comm hooks).

On host contexts the gradients live in the buckets (DDP's
``gradient_as_bucket_view``): the first context's gradient of each parameter
is a range of its bucket's one allocation (``_native.bucket_grads``), so
backward writes straight into the bucket and the all-reduce runs on it in
place, with no copy in or out; the other local contexts are added into it
and receive the result. Device or pinned gradients are copied into a flat
bucket and back.

If a rank dies or hangs, the collectives of the others fail when the process
group's ``timeout`` (``init_process_group(timeout=...)``) expires -- with Gloo
sooner, as soon as the peer's connection closes -- and raise; see
docs/distributed.md for resuming from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.dlpack import from_dlpack as _from_dlpack

import mxparams._native as _native

from ._errors import MXParamsError, MXParamsValueError
from .parameter import Parameter, ParameterDict

__all__ = [
    "DistributedError",
    "GradientSync",
    "OverlappedGradSync",
    "broadcast_parameters",
]

DEFAULT_BUCKET_CAP_MB = 25.0
_COMPRESSION = {"fp16": torch.float16, "bf16": torch.bfloat16}


class DistributedError(MXParamsError):
    """Ranks that disagree (parameters, shapes, dtypes) or a missing process group."""


def _params_of(params: Any) -> list[Parameter]:
    if isinstance(params, ParameterDict):
        return list(params.values())
    if isinstance(params, dict):
        return list(params.values())
    return list(params)


def _require_group(group: Any) -> tuple[int, int]:
    if not dist.is_available() or not dist.is_initialized():
        raise DistributedError(
            "torch.distributed is not initialised: launch with torchrun and call "
            "torch.distributed.init_process_group() first"
        )
    return dist.get_rank(group), dist.get_world_size(group)


def _meta(p: Parameter) -> tuple[str, tuple[int, ...] | None, str]:
    shape = p.shape
    return (p.name, None if shape is None else tuple(shape), str(p.dtype))


def _check_same(metas: list[Any], what: str, src: int, group: Any) -> None:
    """Raises on every rank when ranks disagree (everyone sees every list)."""
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, metas, group=group)
    ref = gathered[src]
    for rank, other in enumerate(gathered):
        if other == ref:
            continue
        ref_by = {m[0]: m for m in ref}
        oth_by = {m[0]: m for m in other}
        missing = sorted(set(ref_by) - set(oth_by))
        extra = sorted(set(oth_by) - set(ref_by))
        if missing or extra:
            raise DistributedError(
                f"{what}: rank {rank} and rank {src} hold different parameters "
                f"(missing on rank {rank}: {missing[:5]}, extra: {extra[:5]})"
            )
        for name, m in ref_by.items():
            if oth_by[name] != m:
                raise DistributedError(
                    f"{what}: Parameter '{name}' is {oth_by[name][1:]} (shape, dtype) on rank "
                    f"{rank} but {m[1:]} on rank {src}"
                )
        raise DistributedError(f"{what}: rank {rank} orders the parameters differently")


def _broadcast_now(params: Sequence[Parameter], src: int, group: Any) -> None:
    """Broadcasts initialised parameters, one collective per dtype."""
    by_dtype: dict[torch.dtype, list[Parameter]] = {}
    for p in params:
        t = _from_dlpack(p.data(p.list_ctx()[0]))
        by_dtype.setdefault(t.dtype, []).append(p)
    for plist in by_dtype.values():
        views0 = [_from_dlpack(p.data(p.list_ctx()[0])) for p in plist]
        flat = torch.cat([v.reshape(-1) for v in views0]) if views0 else None
        if flat is None:
            continue
        dist.broadcast(flat, src=_global_rank(src, group), group=group)
        with torch.no_grad():
            off = 0
            for p, v in zip(plist, views0, strict=True):
                n = v.numel()
                piece = flat[off : off + n].view(v.shape)
                off += n
                for ctx in p.list_ctx():
                    _from_dlpack(p.data(ctx)).copy_(piece)


def _global_rank(rank_in_group: int, group: Any) -> int:
    if group is None:
        return rank_in_group
    return int(dist.get_global_rank(group, rank_in_group))


def broadcast_parameters(params: Any, src: int = 0, group: Any = None) -> None:
    """Gives every rank (and each of its contexts) rank ``src``'s values.

    Parameters
    ----------
    params : ParameterDict, dict or list of Parameter
    src : int
        The source rank (in ``group``).
    group : ProcessGroup, optional
    """
    _require_group(group)
    plist = _params_of(params)
    _check_same([_meta(p) for p in plist], "broadcast_parameters", src, group)
    ready = [p for p in plist if p._is_initialized()]
    _broadcast_now(ready, src, group)
    for p in plist:
        if not p._is_initialized() and p._is_deferred():
            _broadcast_on_materialise(p, src, group)


def _broadcast_on_materialise(p: Parameter, src: int, group: Any) -> None:
    original = p.finish_deferred_init

    def finish() -> None:
        done = p._is_initialized()
        original()
        if not done and p._is_initialized():
            _check_same([_meta(p)], "broadcast_parameters (deferred)", src, group)
            _broadcast_now([p], src, group)

    # The instance attribute shadows the method, for both of Gluon's names.
    p.finish_deferred_init = finish  # type: ignore[method-assign]
    p._finish_deferred_init = finish  # type: ignore[method-assign]


class _Bucket:
    """One dtype's flat buffer for a run of parameters, and where each sits."""

    def __init__(
        self, index: int, dtype: torch.dtype, params: list[Parameter], numels: list[int]
    ) -> None:
        self.index = index  # launch order
        self.dtype = dtype
        self.params = params
        self.numels = numels
        ctx0 = params[0].list_ctx()[0]
        self.in_place = ctx0.device_type in ("cpu", "cpu_shared")
        # In place with one context per parameter, syncing touches no gradient.
        self.only_bucket = self.in_place and all(len(p.list_ctx()) == 1 for p in params)
        if self.in_place:
            # The first context's gradients become ranges of this memory.
            self.flat = _from_dlpack(_native.bucket_grads(params, ctx0))
            self.offsets = [self._offset(p, ctx0) for p in params]
        else:
            self.offsets = []
            off = 0
            for n in numels:
                self.offsets.append(off)
                off += n
            self.flat = torch.zeros(off, dtype=dtype)
        self.pending = len(params)
        self.work: Any = None
        self.wire: torch.Tensor | None = None

    def _offset(self, p: Parameter, ctx: Any) -> int:
        g = _from_dlpack(p.grad(ctx))
        return (g.data_ptr() - self.flat.data_ptr()) // self.flat.element_size()

    def pieces(self) -> list[torch.Tensor]:
        return [self.flat[o : o + n] for o, n in zip(self.offsets, self.numels, strict=True)]


class GradientSync:
    """Sums (or averages) gradients over contexts and processes, by buckets.

    Parameters
    ----------
    params : ParameterDict, dict or list of Parameter
    group : ProcessGroup, optional
    average : bool
        Divide by the total number of copies (world size x contexts).
    bucket_cap_mb : float
        Bucket size in MiB.
    compression : {None, 'fp16', 'bf16'}
        Send float32 buckets in half precision.
    """

    def __init__(
        self,
        params: Any,
        group: Any = None,
        average: bool = True,
        bucket_cap_mb: float = DEFAULT_BUCKET_CAP_MB,
        compression: str | None = None,
    ) -> None:
        self._params = _params_of(params)
        self.group = group
        self.average = average
        self.bucket_cap_bytes = max(1, int(bucket_cap_mb * 1024 * 1024))
        if compression is not None and compression not in _COMPRESSION:
            raise MXParamsValueError(
                f"compression must be None, 'fp16' or 'bf16', not {compression!r}"
            )
        self.compression = compression
        self._buckets: list[_Bucket] = []
        self._layout_key: Any = None
        self._core: Any = None
        # The latest round's events only, so a long run does not grow it.
        self.timeline: list[tuple[str, int, float]] = []
        self._round_over = False

    # -- layout ---------------------------------------------------------------

    def _active(self) -> list[Parameter]:
        return [p for p in self._params if p._is_initialized() and p.grad_req != "null"]

    def _layout(self) -> list[_Bucket]:
        active = self._active()
        key = self._key(active)
        if key == self._layout_key:
            return self._buckets
        _, world = _require_group(self.group)
        metas = [_meta(p) for p in active]
        _check_same(metas, "gradient sync", 0, self.group)
        buckets: list[_Bucket] = []
        open_: dict[torch.dtype, tuple[list[Parameter], list[int], int]] = {}
        for p in reversed(active):  # DDP's order: last registered, first ready
            g = _from_dlpack(p.grad(p.list_ctx()[0]))
            plist, numels, nbytes = open_.get(g.dtype, ([], [], 0))
            plist.append(p)
            numels.append(g.numel())
            nbytes += g.numel() * g.element_size()
            if nbytes >= self.bucket_cap_bytes:
                buckets.append(_Bucket(len(buckets), g.dtype, plist, numels))
                plist, numels, nbytes = [], [], 0
            open_[g.dtype] = (plist, numels, nbytes)
        for dtype, (plist, numels, _) in open_.items():
            if plist:
                buckets.append(_Bucket(len(buckets), dtype, plist, numels))
        self._buckets = buckets
        self._layout_key = self._key(active)  # bucketing gave the grads new versions
        core = _native.ParameterDictCore("")
        for i, p in enumerate(active):
            core[str(i)] = p
        self._core = core
        self._ncopies = world * max(1, len(active[0].list_ctx()) if active else 1)
        return buckets

    @staticmethod
    def _key(active: list[Parameter]) -> Any:
        return tuple((id(p), p._version, p.grad_req) for p in active)

    @property
    def buckets(self) -> list[list[str]]:
        """The parameter names of each bucket, in launch order."""
        return [[p.name for p in b.params] for b in self._layout()]

    # -- the collective -----------------------------------------------------------

    def _mark(self, kind: str, b: _Bucket) -> None:
        if self._round_over:
            self.timeline.clear()
            self._round_over = False
        self.timeline.append((kind, b.index, time.perf_counter()))

    def _fill(self, b: _Bucket) -> None:
        """The bucket gets the sum of the local copies of its gradients."""
        if b.only_bucket:
            return
        with torch.no_grad():
            for p, piece in zip(b.params, b.pieces(), strict=True):
                ctxs = p.list_ctx()
                if not b.in_place:  # else the first context's gradient is the piece
                    piece.copy_(_from_dlpack(p.grad(ctxs[0])).reshape(-1))
                for ctx in ctxs[1:]:
                    piece.add_(_from_dlpack(p.grad(ctx)).reshape(-1))

    def _launch(self, b: _Bucket, async_op: bool) -> None:
        wire = b.flat
        if self.compression and b.dtype == torch.float32:
            wire = b.flat.to(_COMPRESSION[self.compression])
        b.wire = wire
        self._mark("launch", b)
        b.work = dist.all_reduce(wire, group=self.group, async_op=async_op)

    def _finish(self, b: _Bucket) -> None:
        if b.work is not None:
            b.work.wait()
            b.work = None
        if b.wire is not None and b.wire is not b.flat:
            b.flat.copy_(b.wire)
        b.wire = None
        self._mark("done", b)
        with torch.no_grad():
            if self.average:
                b.flat.div_(self._ncopies)
            if b.only_bucket:
                return
            for p, piece in zip(b.params, b.pieces(), strict=True):
                ctxs = p.list_ctx()
                for ctx in ctxs[1:] if b.in_place else ctxs:
                    g = _from_dlpack(p.grad(ctx))
                    g.copy_(piece.view(g.shape))

    def start(self) -> None:
        """Starts the all-reduce of every bucket not yet started (local sums
        first); returns without waiting, so the caller can work meanwhile."""
        for b in self._layout():
            if b.work is None:
                self._fill(b)
                self._launch(b, async_op=True)

    def wait(self) -> None:
        """Finishes what :meth:`start` began (starting whatever it did not):
        the result is on every context afterwards."""
        self.start()
        for b in self._buckets:
            self._finish(b)
        self._round_over = True

    def sync(self) -> None:
        """Local sum, one all-reduce per bucket, result on every context."""
        self.start()
        self.wait()


class OverlappedGradSync(GradientSync):
    """:class:`GradientSync` started from gradient hooks during backward.

    Hooks go on the tensors of :func:`mxparams.torch.tensor` for every
    parameter and context (``ctx=`` picks them, default every context of
    each parameter); a bucket's all-reduce starts once each of its
    gradients has landed on every context. Call :meth:`wait` (or
    ``Trainer(..., grad_sync=this)``, whose ``step`` calls it) after
    backward. ``timeline`` records ``('landed'|'launch'|'done', bucket, time)``
    of the latest round (a new round clears it).
    """

    def __init__(self, params: Any, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._skip = False
        self._landed: dict[int, set[Any]] = {}
        self._hooked: set[tuple[int, Any]] = set()
        self._tensors: list[torch.Tensor] = []
        self._owner: dict[int, _Bucket] = {}
        self._attached_key: Any = None
        self._attach()

    def _attach(self) -> None:
        from . import torch as _mxtorch

        buckets = self._layout()
        self._attached_key = self._layout_key
        self._owner = {id(p): b for b in buckets for p in b.params}
        for b in buckets:
            for p in b.params:
                for ctx in p.list_ctx():
                    if (id(p), ctx) in self._hooked:
                        continue
                    t = _mxtorch.tensor(p, ctx)
                    t.register_post_accumulate_grad_hook(self._hook_for(p, ctx))  # type: ignore[no-untyped-call]
                    self._hooked.add((id(p), ctx))
                    # Held here: the adapter caches tensors weakly, and the
                    # hook lives on this tensor object.
                    self._tensors.append(t)

    def _hook_for(self, p: Parameter, ctx: Any) -> Any:
        def hook(_: torch.Tensor) -> None:
            self._landed_one(p, ctx)

        return hook

    def _landed_one(self, p: Parameter, ctx: Any) -> None:
        if self._skip:
            return
        b = self._owner.get(id(p))
        if b is None or b.work is not None:
            return
        seen = self._landed.setdefault(id(b), set())
        seen.add((id(p), ctx))
        self._mark("landed", b)
        need = sum(len(q.list_ctx()) for q in b.params)
        if len(seen) == need:
            self._fill(b)
            self._launch(b, async_op=True)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside do not start collectives (accumulate with
        ``grad_req='add'``); the first backward after it syncs the total."""
        self._skip = True
        try:
            yield
        finally:
            self._skip = False

    def start(self) -> None:
        """Starts buckets whose hooks did not all fire (e.g. unused
        parameters), without waiting."""
        self._layout()
        if self._attached_key != self._layout_key:
            self._attach()
        super().start()

    def wait(self) -> None:
        """Starts buckets whose hooks did not all fire and finishes every bucket."""
        super().wait()
        self._landed.clear()
