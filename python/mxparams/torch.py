"""PyTorch adapter: parameters as leaf ``torch.Tensor`` objects that share memory.

``import mxparams.torch`` (torch is an optional dependency; importing
``mxparams`` alone never imports it) offers

* :func:`tensor` -- ``tensor(param, ctx=None)``: a leaf tensor viewing the
  parameter's data on ``ctx`` (``torch.from_dlpack(param.data(ctx))``, no
  copy), with ``requires_grad`` exactly when ``param.grad_req != 'null'``.
  Repeated calls return the same tensor object.
* :func:`parameters` -- the tensors of a :class:`~mxparams.ParameterDict`, for
  ``torch.optim``.
* :func:`param_groups` -- the same as optimizer parameter groups whose ``lr``
  and ``weight_decay`` are scaled by each parameter's ``lr_mult``/``wd_mult``.

Gradient delivery
-----------------
``t.grad`` *is* a view of the parameter's gradient buffer
(``torch.from_dlpack(param.grad(ctx))``), so ``p.grad()``, ``t.grad`` and what
an optimizer reads are one piece of memory. Two hooks on each tensor apply
``grad_req`` around PyTorch's own accumulation (the pre-hook runs once per
backward with the summed gradient of the leaf, the post-accumulate hook right
after it is stored):

* ``'write'``: ``t.grad`` is cleared so PyTorch stores this pass's gradient
  without copying it; the post hook copies it into the buffer (one copy per
  parameter and step) and re-attaches the view: MXNet's overwrite;
* ``'add'``: PyTorch adds in place into the view (no copy); the buffer
  accumulates until ``param.zero_grad()`` / ``ParameterDict.zero_grad()``;
* ``'null'``: the tensor does not require grad and ``t.grad`` is None.

``optimizer.zero_grad()`` sets ``t.grad`` to None (PyTorch's default); under
``'add'`` the next backward treats that as a zeroed gradient (zeroing the
buffer first), so PyTorch's idiom works there too. Until that backward
``p.grad()`` still shows the old values; ``ParameterDict.zero_grad()`` or
``optimizer.zero_grad(set_to_none=False)`` zero both at once.

Each backward pass that delivers a copy's gradient marks it fresh
(``param.data(ctx)._fresh_grad``, read and cleared by
:class:`~mxparams.Trainer`, as MXNet's autograd does).

Inside :func:`mxparams.autograd.pause` nothing lands in the grad buffer (and
nothing is marked fresh). The
flag is read when ``backward()`` runs, in the thread running the hooks: the
calling thread for CPU tensors (PyTorch runs the hooks of CUDA tensors on its
device threads, where a ``pause()`` of the calling thread is not seen).
``backward(create_graph=True)`` works: the buffer gets the values and
``t.grad`` stays the graph-carrying tensor.

Sparse gradients (``grad_stype='row_sparse'`` or ``'csr'``) have no dense
buffer to view. For them ``t.grad`` is PyTorch's own gradient of the last
backward pass (``t.grad`` is cleared before each pass) and the post hook
delivers it into ``param.grad(ctx)`` with the parameter's ``grad_req``. A
sparse COO gradient with one sparse dimension (``nn.Embedding(sparse=True)``,
``F.embedding(..., sparse=True)``) lands as a row_sparse gradient holding
exactly the rows looked up (duplicates summed); any other gradient is taken
as dense values and keeps its non-zero rows (csr: elements), as MXNet's
dense-to-sparse copy does.

Changes of ``grad_req`` are honoured by tensors already handed out, through
the :class:`TorchAdapter` (registered as ``'torch'`` in
:mod:`mxparams.autograd` when the first tensor is handed out) and its
``on_grad_req_change``: ``requires_grad`` follows, and ``t.grad`` is
re-attached to the new (zeroed, as in MXNet) buffer or cleared. A change
between building a graph and calling ``backward()`` is honoured at backward.

When the data buffer itself is replaced (``initialize(force_reinit=True)``,
``reset_ctx``, ``cast``) old tensors are *stale*: :func:`tensor` returns a new
one, and a backward pass through a stale tensor raises
:class:`StaleTensorError` instead of updating memory the parameter no longer
uses. Updates that keep the buffer (``set_data``, ``ParameterDict.load`` into
initialised parameters, in-place torch ops, optimizer steps) are shared both
ways, so ``ParameterDict.save`` writes what the optimizer produced.

A tensor keeps its Parameter alive (through its hooks); the Parameter's
cache holds the tensor weakly, so the same tensor is returned for as long as
anyone holds it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.utils.dlpack import from_dlpack as _from_dlpack

from . import autograd as _autograd
from . import nd
from ._errors import MXParamsError, MXParamsTypeError
from .context import Context, cpu
from .parameter import Parameter, ParameterDict

__all__ = [
    "StaleTensorError",
    "TorchAdapter",
    "param_groups",
    "parameters",
    "tensor",
]

CtxArg = Context | Sequence[Context] | None

_CACHE_ATTR = "_mxparams_torch_tensors"
_LOCK = threading.RLock()


class StaleTensorError(MXParamsError):
    """A tensor from :func:`tensor` whose parameter no longer uses its memory."""


class _Entry:
    """The tensor handed out for one (parameter, context) and its grad view."""

    # The tensor holds its entry (through its hooks) and the entry holds the
    # parameter; the parameter's cache holds the tensor only weakly, so there
    # is no reference cycle through the tensor.
    __slots__ = ("ctx", "data_nd", "grad_nd", "grad_view", "hooked", "param", "stale", "t_ref")

    def __init__(self, param: Parameter, ctx: Context, data_nd: Any, t: torch.Tensor) -> None:
        self.param = param
        self.ctx = ctx
        self.data_nd = data_nd
        self.t_ref = weakref.ref(t)
        self.grad_nd: Any = None
        self.grad_view: torch.Tensor | None = None
        self.stale = False
        self.hooked = False

    @property
    def t(self) -> torch.Tensor:
        t = self.t_ref()
        if t is None:  # pragma: no cover - only reached through the tensor itself
            raise StaleTensorError("the tensor no longer exists")
        return t

    def _stale_error(self, why: str) -> StaleTensorError:
        self.stale = True
        return StaleTensorError(
            f"the torch tensor of Parameter '{self.param.name}' on {self.ctx} is stale: {why}. "
            "Call mxparams.torch.tensor(param) (or parameters()) again and give the new "
            "tensors to the optimizer."
        )

    def sync(self) -> Parameter:
        """Checks the parameter still uses this tensor's memory and refreshes
        the grad view after its buffers were re-created (e.g. grad_req changes)."""
        param = self.param
        if self.stale:
            raise self._stale_error("its data buffer was replaced")
        try:
            nd = param.data(self.ctx)
        except RuntimeError as err:
            raise self._stale_error(f"the parameter is no longer on that context ({err})") from err
        if nd is self.data_nd:
            return param
        fresh = _from_dlpack(nd)
        t = self.t
        if fresh.data_ptr() != t.data_ptr() or fresh.shape != t.shape or fresh.dtype != t.dtype:
            raise self._stale_error("its data buffer was replaced (re-initialised, moved or cast)")
        self.data_nd = nd
        self.attach_grad(param)
        return param

    def attach_grad(self, param: Parameter) -> None:
        """Points ``t.grad`` (and ``requires_grad``) at the parameter's current state."""
        t = self.t
        if param.grad_req == "null":
            self.grad_nd = None
            self.grad_view = None
            t.grad = None
            t.requires_grad_(False)
            return
        gnd = param.grad(self.ctx)
        if gnd.stype != "default":
            # No view of a sparse buffer: the post hook delivers into it.
            self.grad_nd = gnd
            self.grad_view = None
            t.requires_grad_(True)
            if not self.hooked:
                _make_hooks(self, t)
                self.hooked = True
            return
        if gnd is not self.grad_nd or self.grad_view is None:
            self.grad_nd = gnd
            self.grad_view = _from_dlpack(gnd)
        t.requires_grad_(True)
        t.grad = self.grad_view
        if not self.hooked:
            # PyTorch only takes hooks on tensors that require grad.
            _make_hooks(self, t)
            self.hooked = True

    def pre_accumulate(self, g: torch.Tensor) -> torch.Tensor | None:
        """Runs before PyTorch accumulates ``g`` into ``t.grad``."""
        param = self.sync()
        req = param.grad_req
        t = self.t
        if req == "null":
            return torch.zeros_like(g)  # cleared again after accumulation
        if self.grad_nd is not None and self.grad_nd.stype != "default":
            t.grad = None  # PyTorch stores this pass's gradient alone
            return torch.zeros_like(g) if _autograd.is_paused() else None
        view = self.grad_view
        if view is None:  # pragma: no cover - sync() attaches one for non-null
            raise self._stale_error("it has no gradient buffer")
        if _autograd.is_paused():
            if t.grad is not view:
                t.grad = view
            return torch.zeros_like(g)  # nothing lands
        if req == "write":
            # Let PyTorch take g as the new .grad without copying it; the
            # post-accumulate hook copies it into the buffer (one pass).
            if t.grad is not None:
                t.grad = None
        elif t.grad is not view:
            # None after optimizer.zero_grad(): PyTorch's "zero", for 'add' too.
            view.zero_()
            t.grad = view
        return None

    def post_accumulate(self) -> None:
        """Runs after accumulation: puts the result in the buffer and makes
        ``t.grad`` the buffer view again."""
        t = self.t
        if self.param.grad_req == "null":
            t.grad = None
            return
        if self.grad_nd is not None and self.grad_nd.stype != "default":
            if not _autograd.is_paused() and t.grad is not None:
                # Delivery marks the copy's gradient fresh (natively).
                _deliver_sparse(self.param, self.ctx, t.grad.detach())
            return
        view = self.grad_view
        grad = t.grad
        if not _autograd.is_paused():
            # This backward wrote the copy's gradient: fresh for Trainer.step.
            self.param._set_fresh_grad(True, self.ctx)
        if view is None or grad is view or grad is None:
            return
        with torch.no_grad():
            view.copy_(grad)
        if not grad.requires_grad:
            t.grad = view
        # else backward(create_graph=True): keep the graph-carrying tensor as
        # .grad; the buffer holds its values.


def _deliver_sparse(param: Parameter, ctx: Context, grad: torch.Tensor) -> None:
    """Delivers PyTorch's gradient into a sparse gradient buffer (see the module notes)."""
    shape = tuple(grad.shape)
    if grad.is_sparse and grad.sparse_dim() == 1 and param.grad(ctx).stype == "row_sparse":
        g = grad.coalesce()
        rows = g.indices()[0].cpu().numpy()
        values = g.values().cpu().numpy()
        delivered = nd.sparse.row_sparse_array((values, rows), shape, cpu(), values.dtype)
    else:
        dense = grad.to_dense() if grad.is_sparse else grad
        delivered = nd.array(dense.cpu().numpy(), cpu(), dense.cpu().numpy().dtype)
    param._deliver_grad(delivered, ctx)


def _entries(param: Parameter) -> dict[Context, _Entry]:
    cache: dict[Context, _Entry] | None = param.__dict__.get(_CACHE_ATTR)
    if cache is None:
        cache = {}
        setattr(param, _CACHE_ATTR, cache)
    return cache


def _make_hooks(entry: _Entry, t: torch.Tensor) -> None:
    def pre(g: torch.Tensor) -> torch.Tensor | None:
        return entry.pre_accumulate(g)

    def post(_: torch.Tensor) -> None:
        entry.post_accumulate()

    t.register_hook(pre)  # type: ignore[no-untyped-call]
    t.register_post_accumulate_grad_hook(post)  # type: ignore[no-untyped-call]


def tensor(param: Parameter, ctx: Context | None = None) -> torch.Tensor:
    """The leaf tensor sharing memory with ``param``'s data on ``ctx``.

    Parameters
    ----------
    param : Parameter
        An initialised parameter.
    ctx : Context, default None
        Which copy (``None``: the only copy, or the current context's).

    Returns
    -------
    torch.Tensor
        A leaf with ``requires_grad = (param.grad_req != 'null')`` whose
        ``.grad`` is a view of ``param.grad(ctx)``. The same object is returned
        until the parameter's data buffer is replaced.
    """
    if not isinstance(param, Parameter):
        raise MXParamsTypeError(f"expected an mxparams Parameter, got {type(param).__name__}")
    nd = param.data(ctx)
    key = nd.context
    with _LOCK:
        _ensure_adapter()
        cache = _entries(param)
        entry = cache.get(key)
        alive = entry.t_ref() if entry is not None else None
        if entry is not None and alive is not None:
            if entry.data_nd is nd and not entry.stale:
                return alive
            try:
                entry.sync()
                return alive
            except StaleTensorError:
                pass  # replaced below
        t = _from_dlpack(nd)
        if t.requires_grad or not t.is_leaf:  # pragma: no cover - from_dlpack makes leaves
            t = t.detach()
        entry = _Entry(param, key, nd, t)
        entry.attach_grad(param)
        cache[key] = entry
        return t


def _held_tensors(params: Iterable[Parameter]) -> list[torch.Tensor]:
    """The tensors of every (parameter, context) :func:`tensor` was asked
    for, re-created where they died.

    For a holder such as the Trainer: a model that calls :func:`tensor` in
    each forward pass otherwise drops the tensor with the graph and gets a
    new one (and new hooks) every step, since the cache holds it weakly.
    """
    out = []
    for p in params:
        cache: dict[Context, _Entry] | None = p.__dict__.get(_CACHE_ATTR)
        for ctx in list(cache or ()):
            try:
                out.append(tensor(p, ctx))
            except RuntimeError:  # no longer on that context
                continue
    return out


def _ctx_list(ctx: CtxArg) -> list[Context | None]:
    if ctx is None or isinstance(ctx, Context):
        return [ctx]
    return list(ctx)


def parameters(pdict: ParameterDict | Iterable[Parameter], ctx: CtxArg = None) -> list[Any]:
    """The tensors (see :func:`tensor`) of every parameter, for ``torch.optim``.

    ``pdict`` is a ParameterDict (or an iterable of Parameters); ``ctx`` a
    Context or a list of them (then the copies on each context, context by
    context, so one optimizer updates every data-parallel copy). Parameters
    with ``grad_req='null'`` are included: their tensors have no ``.grad``,
    which optimizers skip, and they start training if ``grad_req`` changes.
    """
    params = list(pdict.values()) if isinstance(pdict, ParameterDict) else list(pdict)
    return [tensor(p, c) for c in _ctx_list(ctx) for p in params]


def param_groups(
    pdict: ParameterDict | Iterable[Parameter],
    ctx: CtxArg = None,
    *,
    lr: float,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups honouring ``lr_mult`` and ``wd_mult``.

    Parameters sharing (``lr_mult``, ``wd_mult``) share a group (fewer groups,
    same result as one group per parameter); each group has ``params``,
    ``lr = lr * lr_mult``, ``weight_decay = weight_decay * wd_mult``, and
    records ``lr_mult``, ``wd_mult`` and ``param_names``. The multipliers are
    read now: rebuild the groups after changing them.

    Examples
    --------
    >>> opt = torch.optim.SGD(mxparams.torch.param_groups(params, lr=0.1), lr=0.1)
    """
    params = list(pdict.values()) if isinstance(pdict, ParameterDict) else list(pdict)
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for c in _ctx_list(ctx):
        for p in params:
            lm, wm = float(p.lr_mult), float(p.wd_mult)
            group = groups.get((lm, wm))
            if group is None:
                group = {
                    "params": [],
                    "param_names": [],
                    "lr": lr * lm,
                    "weight_decay": weight_decay * wm,
                    "lr_mult": lm,
                    "wd_mult": wm,
                }
                groups[(lm, wm)] = group
            group["params"].append(tensor(p, c))
            group["param_names"].append(p.name if c is None else f"{p.name}@{c}")
    return list(groups.values())


class TorchAdapter(_autograd.AutogradAdapter):
    """The registry's hook: tensors already handed out follow ``grad_req`` changes."""

    def on_grad_req_change(self, param: Any, old: str, new: str) -> None:
        cache = param.__dict__.get(_CACHE_ATTR) if hasattr(param, "__dict__") else None
        if not cache:
            return
        with _LOCK:
            for entry in list(cache.values()):
                if entry.t_ref() is None:
                    continue
                try:
                    entry.sync()
                except StaleTensorError:
                    continue
                entry.attach_grad(param)


_ADAPTER: TorchAdapter | None = None


def _ensure_adapter() -> None:
    """Registers the adapter when the first tensor is handed out (importing
    this module changes no global state)."""
    global _ADAPTER
    if _ADAPTER is None:
        _ADAPTER = TorchAdapter()
        _autograd.register_adapter("torch", _ADAPTER)


# Checkpoints into and out of torch modules (imported lazily with torch).
from ._torch_io import LoadReport, load_into, state_dict  # noqa: E402

__all__ += ["LoadReport", "load_into", "state_dict"]

# The MXNet-model importer (symbol JSON + .params -> nn.Module): its __all__.
from . import _import_model  # noqa: E402
from ._import_model import *  # noqa: E402, F403

__all__ += _import_model.__all__

from ._cpu_memory import reuse_cpu_memory  # noqa: E402

__all__ += ["reuse_cpu_memory"]
