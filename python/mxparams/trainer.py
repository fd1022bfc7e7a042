"""Gluon's ``Trainer``: applies an optimizer to a set of parameters.

``Trainer(params, optimizer, optimizer_params=None, kvstore='device')`` keeps
MXNet 1.9.1's training loop: ``step(batch_size)`` rescales gradients by
``1/batch_size``, sums them over the contexts of each parameter (and over
processes for ``kvstore='dist_sync'``/``'dist_device_sync'``, through the
initialised ``torch.distributed`` group, see :mod:`mxparams.distributed`) and
updates every copy identically; ``kvstore=None`` sums nothing, as in MXNet.
``params`` given as a dict or ParameterDict are indexed in sorted-name order,
as MXNet does, so state files interchange.

Across processes the gradient is averaged over processes (the sum over
contexts stays a sum, as in one process): ``step(local_batch_size)`` on W
processes then equals one process stepping with ``W * local_batch_size``,
which is what MXNet's ``Module`` and Horovod's ``DistributedTrainer`` do.

The update runs once on the first context's copy (one fused call per dtype,
see :mod:`mxparams.optimizer`) and is copied to the other contexts, as
MXNet's kvstore update does; states are MXNet's and ``save_states`` /
``load_states`` also read files MXNet's Trainer wrote.

A ``torch.optim.Optimizer`` subclass may be passed instead of a name; its
parameter groups then carry ``lr_mult``/``wd_mult`` (see
:func:`mxparams.torch.param_groups`) and its ``state_dict`` is what
``save_states`` writes.

Gradient freshness follows MXNet: each copy of a parameter carries a flag
(``p.data(ctx)._fresh_grad``, held by the native parameter) that a backward
pass sets when it delivers that copy's gradient (the PyTorch adapter's hooks,
or any adapter delivering through ``Parameter._deliver_grad``; not inside
:func:`mxparams.autograd.pause`). ``step``/``update`` raise
:class:`~mxparams.StaleGradientError` (a ``UserWarning``, MXNet's message)
for a parameter with a stale copy, unless ``ignore_stale_grad=True``. What
happens then depends on where MXNet 1.9.1 would update:

* locally (one context, ``kvstore=None``, or ``update_on_kvstore=False``):
  with ``kvstore=None`` and several contexts nothing is summed either: each
  copy is updated with its own gradient and keeps its own optimizer state,
  as MXNet's per-context updaters do without a kvstore;
  only fresh copies are updated and every updated copy's flag is cleared.
  With several contexts a parameter fresh on some only is updated on those,
  after which its copies (and their optimizer states) differ, as MXNet's
  per-context updaters leave them;
* in the kvstore (several contexts with ``kvstore='device'``/``'local'``,
  MXNet's default): every parameter is updated and no flag is cleared; in
  ``step`` the check comes after the update, so the weights have moved when
  the error is raised;
* across processes (``dist_*``) as in the kvstore: skipping on some ranks
  only would desynchronise the replicas, and MXNet's dist kvstore updates on
  its servers whatever was pushed.

With a ``torch.optim`` optimizer (not an MXNet mode) a parameter is skipped
when it is stale on every context, else all its copies are updated.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.dlpack import from_dlpack as _from_dlpack

import mxparams._native as _native

from . import optimizer as _opt
from . import trainer_states as _states
from ._errors import MXParamsError, MXParamsValueError, StaleGradientError
from ._files import write_bytes
from .context import Context
from .parameter import Parameter, ParameterDict

__all__ = ["Trainer"]

_DIST_KVSTORES = ("dist_sync", "dist_device_sync", "dist_sync_device")
_LOCAL_KVSTORES = ("device", "local", None)


class _Plan:
    """What one update touches, kept while no parameter's buffers change
    (the per-step Python work of gathering them is what it saves)."""

    __slots__ = ("active", "contexts", "copies", "groups", "held")

    def __init__(
        self,
        contexts: list[Context],
        active: list[Parameter],
        groups: list[tuple[list[int], list[torch.Tensor], list[torch.Tensor]]],
        copies: list[tuple[list[torch.Tensor], list[torch.Tensor]]],
    ) -> None:
        self.contexts = contexts
        self.active = active
        # Per dtype: (optimizer indices, first-context weights, their grads).
        self.groups = groups
        # Per further context: (its weights, the first context's).
        self.copies = copies
        self.held: list[torch.Tensor] = []


def _param_list(params: Any) -> list[Parameter]:
    if isinstance(params, (Mapping, ParameterDict)):
        params = [params[k] for k in sorted(params.keys())]
    if not isinstance(params, (list, tuple)):
        raise MXParamsValueError(
            f"First argument must be a list or dict of Parameters, got {type(params)}."
        )
    for p in params:
        if not isinstance(p, Parameter):
            raise MXParamsValueError(
                f"First argument must be a list or dict of Parameters, got list of {type(p)}."
            )
    return list(params)


class Trainer:
    """Applies an optimizer on a set of parameters (MXNet's ``gluon.Trainer``).

    Parameters
    ----------
    params : ParameterDict, dict or list of Parameter
    optimizer : str, mxparams.optimizer.Optimizer or a torch.optim.Optimizer class
    optimizer_params : dict
        Keyword arguments of the optimizer (``learning_rate``, ``wd``,
        ``momentum``, ``lr_scheduler``, ``multi_precision``, ...; for a
        torch class its own, e.g. ``lr``).
    kvstore : {'device', 'local', None, 'dist_sync', 'dist_device_sync'}
        ``dist_*`` syncs across the processes of the ``torch.distributed``
        group (which must be initialised); ``None`` sums nothing, so with
        several contexts each copy follows its own gradient (as in MXNet).
    compression_params : dict, optional
        ``{'type': 'fp16'}`` or ``{'type': 'bf16'}``: all-reduce the buckets
        in half precision (distributed only).
    update_on_kvstore : bool, optional
        Where MXNet would update with several contexts (default: in the
        kvstore, unless ``kvstore='local'`` holds an array over 16M
        elements); decides what ``ignore_stale_grad`` skips (see the module
        notes), the values are the same otherwise.
    group : torch.distributed.ProcessGroup, optional
        The process group for ``dist_*`` (default: the whole world).
    bucket_cap_mb : float
        Size of the gradient buckets for ``dist_*``.
    grad_sync : mxparams.distributed.OverlappedGradSync, optional
        Gradients synced during backward (``average=False``); ``step``
        waits for it instead of syncing.
    """

    def __init__(
        self,
        params: Any,
        optimizer: Any,
        optimizer_params: dict[str, Any] | None = None,
        kvstore: Any = "device",
        compression_params: dict[str, Any] | None = None,
        update_on_kvstore: bool | None = None,
        *,
        group: Any = None,
        bucket_cap_mb: float = 25.0,
        grad_sync: Any = None,
    ) -> None:
        self._params = _param_list(params)
        self._param2idx = {p.name: i for i, p in enumerate(self._params)}
        for p in self._params:
            p._set_trainer(self)
        self._contexts = self._check_contexts()
        if kvstore not in _DIST_KVSTORES + _LOCAL_KVSTORES:
            raise MXParamsValueError(f"unsupported kvstore {kvstore!r}")
        self._kvstore = kvstore
        self._distributed = kvstore in _DIST_KVSTORES
        self._group = group
        self._bucket_cap_mb = bucket_cap_mb
        self._compression = None
        if compression_params:
            kind = str(compression_params.get("type", "")).lower()
            if kind not in ("fp16", "bf16"):
                raise MXParamsValueError(f"unsupported gradient compression {compression_params!r}")
            self._compression = kind
        self._update_on_kvstore = update_on_kvstore
        self._states: dict[int, Any] = {}
        # Parameters whose copies were updated apart (stale on some contexts
        # under ignore_stale_grad): each copy then has its own optimizer state,
        # as MXNet's per-context updaters keep them; context position -> states.
        self._diverged: set[int] = set()
        self._ctx_states: dict[int, dict[int, Any]] = {}
        self._torch_opt: torch.optim.Optimizer | None = None
        self._sync: Any = grad_sync
        if grad_sync is not None:
            if not self._distributed:
                raise MXParamsValueError(
                    "grad_sync= needs kvstore='dist_sync' or 'dist_device_sync'"
                )
            if grad_sync.average:
                raise MXParamsValueError("the Trainer's grad_sync must sum (average=False)")
        self._cache: dict[tuple[int, int], tuple[int, torch.Tensor, torch.Tensor]] = {}
        self._plan_key: Any = None
        self._plan: _Plan | None = None
        self._world_size: int | None = None
        self._core: Any = None
        optimizer_params = dict(optimizer_params or {})
        param_dict = dict(enumerate(self._params))
        if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
            self._init_torch_optimizer(optimizer, optimizer_params)
            self._optimizer: Any = None
            self._scale = 1.0
        else:
            if isinstance(optimizer, _opt.Optimizer):
                if optimizer_params:
                    raise MXParamsValueError(
                        "optimizer_params must be None if optimizer is an instance of "
                        "Optimizer instead of str"
                    )
                self._optimizer = optimizer
                optimizer.param_dict = param_dict
            else:
                self._optimizer = _opt.create(optimizer, param_dict=param_dict, **optimizer_params)
            self._scale = float(self._optimizer.rescale_grad)

    # -- set-up ----------------------------------------------------------------

    def _check_contexts(self) -> list[Context] | None:
        contexts: list[Context] | None = None
        for p in self._params:
            if not p._is_initialized():
                continue
            ctx = p.list_ctx()
            if contexts is not None and contexts != ctx:
                raise MXParamsValueError(
                    "All Parameters must be initialized on the same set of contexts, but "
                    f"Parameter {p.name} is initialized on {ctx} while previous Parameters "
                    f"are initialized on {contexts}."
                )
            contexts = ctx
        return contexts

    def _init_torch_optimizer(self, klass: type[torch.optim.Optimizer], kw: dict[str, Any]) -> None:
        from . import torch as _mxtorch

        lr = float(kw.pop("lr", kw.pop("learning_rate", 0.01)))
        wd = float(kw.pop("weight_decay", kw.pop("wd", 0.0)))
        ctx0 = self._params[0].list_ctx()[0] if self._params else None
        groups = _mxtorch.param_groups(self._params, ctx0, lr=lr, weight_decay=wd)
        self._torch_lr = lr
        self._torch_opt = klass(groups, lr=lr, weight_decay=wd, **kw)  # type: ignore[call-arg]

    @property
    def learning_rate(self) -> float:
        """The current learning rate."""
        if self._torch_opt is not None:
            return self._torch_lr
        return self._optimizer.learning_rate  # type: ignore[no-any-return]

    @property
    def optimizer(self) -> Any:
        """The optimizer (an mxparams or a torch optimizer)."""
        return self._torch_opt if self._torch_opt is not None else self._optimizer

    def set_learning_rate(self, lr: float) -> None:
        """Sets a new learning rate (refused while a scheduler decides it)."""
        if self._torch_opt is not None:
            self._torch_lr = float(lr)
            for g in self._torch_opt.param_groups:
                g["lr"] = lr * g.get("lr_mult", 1.0)
            return
        self._optimizer.set_learning_rate(lr)

    # -- the loop ------------------------------------------------------------------

    def _active(self) -> list[Parameter]:
        return [p for p in self._params if p.grad_req != "null" and p._is_initialized()]

    def _views(self, p: Parameter, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, grad) torch views of ``p`` on ``ctx``, cached while the
        parameter keeps its buffers."""
        key = (id(p), hash(ctx))
        hit = self._cache.get(key)
        version = p._version
        if hit is not None and hit[0] == version:
            return hit[1], hit[2]
        w = _from_dlpack(p.data(ctx))
        g = _from_dlpack(p.grad(ctx))
        self._cache[key] = (version, w, g)
        return w, g

    def _current_plan(self) -> _Plan | None:
        """The cached :class:`_Plan`, rebuilt when a buffer was replaced
        (every such change, ``grad_req`` too, gives the parameter a new
        ``_version``)."""
        key = tuple(p._version for p in self._params)
        if key == self._plan_key:
            return self._plan
        self._contexts = self._check_contexts()
        plan = None
        if self._contexts is not None:
            ctx0 = self._contexts[0]
            active = self._active()
            by_dtype: dict[torch.dtype, tuple[list[int], list[torch.Tensor], list[torch.Tensor]]]
            by_dtype = {}
            for p in active:
                w, g = self._views(p, ctx0)
                entry = by_dtype.setdefault(w.dtype, ([], [], []))
                entry[0].append(self._param2idx[p.name])
                entry[1].append(w)
                entry[2].append(g)
            src = [self._views(p, ctx0)[0] for p in active]
            copies = [([self._views(p, c)[0] for p in active], src) for c in self._contexts[1:]]
            plan = _Plan(self._contexts, active, list(by_dtype.values()), copies)
            mxtorch = sys.modules.get("mxparams.torch")
            if mxtorch is not None:
                # Kept while the buffers stay, so that a forward pass calling
                # mxparams.torch.tensor() finds the same tensors (and hooks).
                plan.held = mxtorch._held_tensors(active)
        self._plan_key, self._plan = key, plan
        return plan

    def step(self, batch_size: float, ignore_stale_grad: bool = False) -> None:
        """Sums gradients (contexts, processes), then updates with
        gradients scaled by ``1/batch_size``.

        Raises :class:`~mxparams.StaleGradientError` when a gradient was not
        written by a backward pass since the last step, unless
        ``ignore_stale_grad`` (then stale copies are skipped where MXNet
        skips them; see the module notes)."""
        self._set_rescale(batch_size)
        self._update(ignore_stale_grad, self._allreduce_grads(), check_after_kvstore=True)

    def allreduce_grads(self) -> None:
        """Sums the gradients over contexts (and processes), without updating."""
        self._allreduce_grads()

    def update(self, batch_size: float, ignore_stale_grad: bool = False) -> None:
        """Updates with the gradients as they are, scaled by ``1/batch_size``
        (after :meth:`allreduce_grads`)."""
        self._set_rescale(batch_size)
        self._update(ignore_stale_grad, self._current_plan(), check_after_kvstore=False)

    def _world(self) -> int:
        if not self._distributed:
            return 1
        if self._world_size is not None:
            return self._world_size
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise MXParamsError(
                f"kvstore={self._kvstore!r} needs an initialised torch.distributed process "
                "group (e.g. launch with torchrun and call "
                "torch.distributed.init_process_group)"
            )
        self._world_size = int(dist.get_world_size(self._group))
        return self._world_size

    def _set_rescale(self, batch_size: float) -> None:
        scale = self._scale / float(batch_size) / self._world()
        if self._optimizer is not None:
            self._optimizer.rescale_grad = scale
        self._rescale = scale

    def _allreduce_grads(self) -> _Plan | None:
        """Sums the gradients; returns the update's plan, which across
        processes is gathered while the collectives are in flight."""
        if self._distributed:
            if self._sync is None:
                from .distributed import GradientSync

                self._sync = GradientSync(
                    self._params,
                    group=self._group,
                    average=False,
                    bucket_cap_mb=self._bucket_cap_mb,
                    compression=self._compression,
                )
            # Started first: the first start moves the gradients into the
            # buckets, which gives them new buffers (and the plan new views).
            self._sync.start()
            plan = self._current_plan()
            self._sync.wait()
            return plan
        plan = self._current_plan()
        if plan is None or len(plan.contexts) <= 1 or self._kvstore is None:
            # kvstore=None sums nothing, as MXNet without a kvstore.
            return plan
        if self._core is None:
            # One native call over the trainer's parameters (parallel, GIL released).
            core = _native.ParameterDictCore("")
            for i, p in enumerate(self._params):
                core[f"{i}"] = p
            self._core = core
        self._core.allreduce_grads()
        return plan

    # -- gradient freshness (see the module notes) ----------------------------------

    def _updates_on_kvstore(self, plan: _Plan) -> bool:
        """Whether MXNet 1.9.1 would update in its kvstore (every parameter,
        no flag cleared) rather than locally (fresh copies only)."""
        if self._distributed:
            return True
        if self._kvstore is None or len(plan.contexts) <= 1:
            return False  # MXNet makes no kvstore
        if self._update_on_kvstore is not None:
            return bool(self._update_on_kvstore)
        if self._kvstore == "local":
            # MXNet's _create_kvstore: a 'local' store with an array over
            # 16M elements updates locally.
            sizes = (int(math.prod(p.shape or ())) for p in self._params)
            return max(sizes, default=0) <= 1024 * 1024 * 16
        return True

    @staticmethod
    def _stale_error(p: Parameter, flags: list[bool]) -> StaleGradientError:
        ctx = p.list_ctx()[flags.index(False)]
        return StaleGradientError(
            f"Gradient of Parameter `{p.name}` on context {ctx} has not been updated "
            "by backward since last `step`. This could mean a bug in your "
            "model that made it only use a subset of the Parameters (Blocks) "
            "for this iteration. If you are intentionally only using a subset, "
            "call step with ignore_stale_grad=True to suppress this "
            "warning and skip updating of Parameters with stale gradient"
        )

    def _check_fresh(self, active: list[Parameter]) -> None:
        """Raises for the first parameter with a stale copy (flags kept)."""
        for p in active:
            flags = p._fresh_grads()
            if not all(flags):
                raise self._stale_error(p, flags)

    def _take_fresh(self, active: list[Parameter], ignore_stale_grad: bool) -> list[list[bool]]:
        """Each parameter's flags, cleared (a local update consumes them).
        Unless ``ignore_stale_grad``, the first parameter with a stale copy
        raises with its own flags kept and those before it cleared, as MXNet's
        loop leaves them."""
        out = []
        for p in active:
            flags = p._take_fresh_grads()
            if not ignore_stale_grad and not all(flags):
                for ctx, f in zip(p.list_ctx(), flags, strict=True):
                    if f:
                        p._set_fresh_grad(True, ctx)
                raise self._stale_error(p, flags)
            out.append(flags)
        return out

    def _update(
        self, ignore_stale_grad: bool, plan: _Plan | None, check_after_kvstore: bool
    ) -> None:
        if plan is None:
            return
        if self._updates_on_kvstore(plan):
            if not ignore_stale_grad and not check_after_kvstore:
                self._check_fresh(plan.active)
            self._apply(plan, None)
            if not ignore_stale_grad and check_after_kvstore:
                # MXNet's step updates in the kvstore while reducing, then checks.
                self._check_fresh(plan.active)
            return
        fresh = self._take_fresh(plan.active, ignore_stale_grad)
        if self._torch_opt is not None:
            keep = [any(f) for f in fresh]
            self._apply(plan, None if all(keep) else keep)
            return
        if self._kvstore is None and len(plan.contexts) > 1:
            # MXNet 1.9.1 without a kvstore: one updater per context, each
            # copy updated with its own gradient and its own state.
            for p, f in zip(plan.active, fresh, strict=True):
                self._diverge(plan, p)
                self._per_context_step(plan, p, f)
            return
        whole = [
            all(f) and self._param2idx[p.name] not in self._diverged
            for p, f in zip(plan.active, fresh, strict=True)
        ]
        if all(whole):
            self._apply(plan, None)
            return
        self._apply(plan, whole)
        apart = [
            (p, f)
            for p, f, w in zip(plan.active, fresh, whole, strict=True)
            if not w and (any(f) or self._param2idx[p.name] in self._diverged)
        ]
        for p, f in apart:
            if len(f) > 1 and not all(f):
                self._diverge(plan, p)
            self._per_context_step(plan, p, f)

    def _apply(self, plan: _Plan, keep: list[bool] | None) -> None:
        """The update of the first context's copies, copied to the other
        contexts; ``keep`` (one per ``plan.active``) limits it to some parameters."""
        if keep is not None:
            plan = self._subplan(plan, keep)
        if self._torch_opt is not None:
            self._torch_step(plan)
        else:
            self._fused_step(plan)
        if plan.copies and plan.active:
            with torch.no_grad():
                for dst, src in plan.copies:
                    torch._foreach_copy_(dst, src)

    def _subplan(self, plan: _Plan, keep: list[bool]) -> _Plan:
        kept = {self._param2idx[p.name] for p, k in zip(plan.active, keep, strict=True) if k}
        groups = []
        for indices, weights, grads in plan.groups:
            sel = [j for j, i in enumerate(indices) if i in kept]
            groups.append(
                ([indices[j] for j in sel], [weights[j] for j in sel], [grads[j] for j in sel])
            )
        pos = [j for j, k in enumerate(keep) if k]
        copies = [([dst[j] for j in pos], [src[j] for j in pos]) for dst, src in plan.copies]
        active = [plan.active[j] for j in pos]
        return _Plan(plan.contexts, active, groups, copies)

    def _diverge(self, plan: _Plan, p: Parameter) -> None:
        """Gives each further copy of ``p`` its own optimizer state and update
        count, equal to the first context's (the copies were identical until now)."""
        idx = self._param2idx[p.name]
        if idx in self._diverged:
            return
        self._diverged.add(idx)
        if self._optimizer is None:
            return
        counts = self._optimizer._all_index_update_counts
        dev0 = plan.contexts[0].device_id
        for pos, ctx in enumerate(plan.contexts[1:], start=1):
            if idx in self._states:
                w = self._views(p, ctx)[0]
                self._ctx_states.setdefault(pos, {})[idx] = _clone_state(self._states[idx], w)
            if ctx.device_id != dev0 and idx in counts.get(dev0, {}):
                counts.setdefault(ctx.device_id, {})[idx] = counts[dev0][idx]

    def _per_context_step(self, plan: _Plan, p: Parameter, fresh: list[bool]) -> None:
        """Updates the fresh copies of a diverged parameter, each with its own state."""
        opt = self._optimizer
        idx = self._param2idx[p.name]
        for pos, ctx in enumerate(plan.contexts):
            if not fresh[pos]:
                continue
            w, g = self._views(p, ctx)
            states = self._states if pos == 0 else self._ctx_states.setdefault(pos, {})
            if idx not in states:
                states[idx] = opt.create_state_multi_precision(idx, w)
            opt._set_current_context(ctx.device_id)
            opt.fused_update([idx], [w], [g], [states[idx]])

    def _fused_step(self, plan: _Plan) -> None:
        opt = self._optimizer
        opt._set_current_context(plan.contexts[0].device_id)
        states = self._states
        for indices, weights, grads in plan.groups:
            for idx, w in zip(indices, weights, strict=True):
                if idx not in states:
                    states[idx] = opt.create_state_multi_precision(idx, w)
            opt.fused_update(indices, weights, grads, [states[i] for i in indices])

    def _torch_step(self, plan: _Plan) -> None:
        if self._torch_opt is None:
            raise MXParamsError("this Trainer was made with an MXNet optimizer, not a torch one")
        grads = [g for group in plan.groups for g in group[2]]
        if grads and self._rescale != 1.0:
            with torch.no_grad():
                torch._foreach_mul_(grads, self._rescale)
        # torch optimizers skip tensors without .grad: hide the skipped ones.
        kept = {w.data_ptr() for group in plan.groups for w in group[1]}
        hidden = []
        for group in self._torch_opt.param_groups:
            for t in group["params"]:
                if t.grad is not None and t.data_ptr() not in kept:
                    hidden.append((t, t.grad))
                    t.grad = None
        try:
            self._torch_opt.step()
        finally:
            for t, g in hidden:
                t.grad = g

    # -- states ------------------------------------------------------------------------

    def save_states(self, fname: str | os.PathLike[str]) -> None:
        """Writes the optimizer and its states to ``fname`` (atomically)."""
        if self._torch_opt is not None:
            buf = io.BytesIO()
            torch.save({"torch_optimizer": self._torch_opt.state_dict()}, buf)
            write_bytes(fname, buf.getvalue(), fsync=True)
            return
        _states.dump_states(fname, self._optimizer, self._states)

    def load_states(self, fname: str | os.PathLike[str]) -> None:
        """Loads what :meth:`save_states` (ours or MXNet 1.9.1's) wrote."""
        device = torch.device("cpu")
        if self._contexts:
            device = self._views(self._params[0], self._contexts[0])[0].device
        if self._torch_opt is not None:
            blob = torch.load(fname, map_location=device, weights_only=True)
            self._torch_opt.load_state_dict(blob["torch_optimizer"])
            return
        optimizer, states = _states.load_states_file(fname, device)
        optimizer.param_dict = dict(enumerate(self._params))
        self._optimizer = optimizer
        self._states = states
        # As MXNet, every context's updater gets the loaded states.
        contexts = self._contexts or []
        for pos, pos_states in self._ctx_states.items():
            for idx in list(pos_states):
                if idx in states and pos < len(contexts):
                    w = self._views(self._params[idx], contexts[pos])[0]
                    pos_states[idx] = _clone_state(states[idx], w)
                else:
                    del pos_states[idx]


def _clone_state(state: Any, like: torch.Tensor | None) -> Any:
    """A deep copy of an optimizer state (tensors, tuples, lists, None), on
    ``like``'s device when given."""
    if isinstance(state, torch.Tensor):
        out = state.detach().clone()
        return out if like is None else out.to(like.device)
    if isinstance(state, (tuple, list)):
        return type(state)(_clone_state(s, like) for s in state)
    return state
