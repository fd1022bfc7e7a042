"""MXNet 1.9.1's optimizers (``mx.optimizer``), updating torch views of the parameters.

Each optimizer keeps MXNet's bookkeeping (``lr``, ``wd``, ``lr_scheduler``,
per-index update counts, ``rescale_grad``, ``clip_gradient``,
``multi_precision``, the ``lr_mult``/``wd_mult`` lookup through
``param_dict``) under MXNet's attribute names, so an optimizer pickled by
MXNet's ``Trainer.save_states`` restores into these classes. The state of
each parameter has MXNet's layout (e.g. SGD keeps ``lr``-scaled, negated
momentum; multi-precision states are ``(state, weight32)`` for SGD/NAG and
``(weight32, state)`` for the others).

The update rules are MXNet's kernels (``sgd_mom_update``, ``adam_update``,
...), not ``torch.optim``'s: they differ, e.g. MXNet's SGD momentum holds
``lr * grad`` so a learning-rate change does not rescale past steps. One
:meth:`Optimizer.fused_update` call updates a whole dtype group with
``torch._foreach_*`` kernels instead of a Python loop over parameters.

torch is needed (``import mxparams.optimizer`` imports it).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from . import lr_scheduler as _lrs
from ._errors import MXParamsNotImplementedError, MXParamsValueError

__all__ = [
    "LAMB",
    "NAG",
    "SGD",
    "AdaDelta",
    "AdaGrad",
    "Adam",
    "Ftrl",
    "Optimizer",
    "RMSProp",
    "Signum",
    "create",
    "register",
]

Tensors = list[torch.Tensor]
State = Any

_REGISTRY: dict[str, type[Optimizer]] = {}


def register(klass: type[Optimizer]) -> type[Optimizer]:
    """Registers an optimizer class under its lower-cased class name."""
    _REGISTRY[klass.__name__.lower()] = klass
    return klass


def create(name: str, **kwargs: Any) -> Optimizer:
    """An optimizer from its registered name (``'sgd'``, ``'adam'``, ...)."""
    klass = _REGISTRY.get(name.lower())
    if klass is None:
        raise MXParamsValueError(f"Cannot find optimizer {name}")
    return klass(**kwargs)


def _zeros(weight: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.zeros(weight.shape, dtype=dtype or weight.dtype, device=weight.device)


def _clip(g: Tensors, bound: float | None) -> None:
    """MXNet clips when ``clip_gradient >= 0`` (the Python wrappers pass it
    only when it is truthy)."""
    if bound and bound >= 0:
        torch._foreach_clamp_min_(g, -bound)
        torch._foreach_clamp_max_(g, bound)


def _scaled(t: Tensors, scalars: Sequence[float]) -> Tensors:
    return list(torch._foreach_mul(t, list(scalars)))


class Optimizer:
    """Base class: MXNet's bookkeeping; subclasses define the states and rule.

    Parameters are MXNet's: ``rescale_grad``, ``param_idx2name``, ``wd``,
    ``clip_gradient``, ``learning_rate``, ``lr_scheduler``, ``sym`` (unused),
    ``begin_num_update``, ``multi_precision``, ``param_dict``.
    """

    # 'own': state = (weight32, state); 'sgd': state = (state, weight32).
    _mp_layout = "own"

    def __init__(
        self,
        rescale_grad: float = 1.0,
        param_idx2name: dict[int, str] | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        learning_rate: float | None = None,
        lr_scheduler: _lrs.LRScheduler | None = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict[int, Any] | None = None,
    ) -> None:
        self.rescale_grad = rescale_grad
        self.lr_scheduler = lr_scheduler
        if lr_scheduler is None and learning_rate is None:
            learning_rate = 0.01
        self.lr = learning_rate
        if lr_scheduler is not None and learning_rate is not None:
            # As MXNet: an explicit learning_rate overrides the scheduler's base.
            lr_scheduler.base_lr = learning_rate
        self.wd = wd
        self.lr_mult: dict[Any, float] = {}
        self.wd_mult: dict[Any, float] = {}
        self.begin_num_update = begin_num_update
        self.num_update = begin_num_update
        self._all_index_update_counts: dict[int, dict[int, int]] = {0: {}}
        self._index_update_count = self._all_index_update_counts[0]
        self.clip_gradient = clip_gradient
        self.multi_precision = multi_precision
        self.aggregate_num = 0
        self.idx2name = dict(param_idx2name or {})
        self.sym_info: Any = ()
        self.param_dict: dict[int, Any] = param_dict if param_dict else {}
        self.allow_np_array = False
        self.set_lr_mult({})
        self.set_wd_mult({})

    # -- MXNet's bookkeeping ------------------------------------------------

    @property
    def learning_rate(self) -> float:
        """The current learning rate (the scheduler's, if there is one)."""
        if self.lr_scheduler is not None:
            return float(self.lr_scheduler(self.num_update))
        return float(self.lr)  # type: ignore[arg-type]

    def set_learning_rate(self, lr: float) -> None:
        """Sets the learning rate (refused when a scheduler decides it)."""
        if self.lr_scheduler is not None:
            raise UserWarning(
                "LRScheduler of the optimizer has already been defined. Note that "
                "set_learning_rate can mutate the value of the learning rate of the "
                "optimizer only when the LRScheduler of the optimizer is undefined."
            )
        self.lr = lr

    def set_lr_mult(self, args_lr_mult: dict[Any, float]) -> None:
        """Per-index (or per-name) learning-rate multipliers."""
        self.lr_mult = dict(args_lr_mult)

    def set_wd_mult(self, args_wd_mult: dict[Any, float]) -> None:
        """Per-index (or per-name) weight-decay multipliers; as MXNet, names
        given in ``param_idx2name`` that do not end in ``_weight``/``_gamma``
        get no weight decay."""
        self.wd_mult = {
            n: 0.0 for n in self.idx2name.values() if not n.endswith(("_weight", "_gamma"))
        }
        self.wd_mult.update(args_wd_mult)

    def _set_current_context(self, device_id: int) -> None:
        if device_id not in self._all_index_update_counts:
            self._all_index_update_counts[device_id] = {}
        self._index_update_count = self._all_index_update_counts[device_id]

    def _update_count(self, indices: Sequence[int]) -> None:
        for idx in indices:
            count = self._index_update_count.get(idx, self.begin_num_update) + 1
            self._index_update_count[idx] = count
            self.num_update = max(count, self.num_update)

    def _get_lrs(self, indices: Sequence[int]) -> list[float]:
        lr = self.learning_rate
        return [lr * self._mult(i, self.lr_mult, "lr_mult") for i in indices]

    def _get_wds(self, indices: Sequence[int]) -> list[float]:
        return [self.wd * self._mult(i, self.wd_mult, "wd_mult") for i in indices]

    def _mult(self, index: int, table: dict[Any, float], attr: str) -> float:
        if index in self.param_dict:
            return float(getattr(self.param_dict[index], attr))
        if index in table:
            return float(table[index])
        if index in self.idx2name:
            return float(table.get(self.idx2name[index], 1.0))
        return 1.0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("param_dict", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__ = state
        self.param_dict = {}

    # -- states -------------------------------------------------------------

    def create_state(self, index: int, weight: torch.Tensor) -> State:
        """The state of one weight (None when the rule keeps none)."""
        return None

    def _uses_mp(self, weight: torch.Tensor) -> bool:
        return bool(self.multi_precision) and weight.dtype == torch.float16

    def create_state_multi_precision(self, index: int, weight: torch.Tensor) -> State:
        """The state, with a float32 master copy of float16 weights under
        ``multi_precision``."""
        if self._uses_mp(weight):
            w32 = weight.detach().to(torch.float32)
            inner = self.create_state(index, w32)
            return (inner, w32) if self._mp_layout == "sgd" else (w32, inner)
        if weight.dtype == torch.float16:
            warnings.warn(
                "Accumulating with float16 in optimizer can lead to poor accuracy or slow "
                "convergence. Consider using multi_precision=True option of the optimizer",
                stacklevel=3,
            )
        return self.create_state(index, weight)

    # -- the update -----------------------------------------------------------

    def fused_update(
        self,
        indices: Sequence[int],
        weights: Tensors,
        grads: Tensors,
        states: list[State],
    ) -> None:
        """Updates ``weights`` (one dtype) in place from ``grads``, as MXNet's
        updater does for these indices in one step."""
        if not indices:
            return
        self._update_count(indices)
        lrs = self._get_lrs(indices)
        wds = self._get_wds(indices)
        ts = [self._index_update_count[i] for i in indices]
        with torch.no_grad():
            if self._uses_mp(weights[0]):
                if self._mp_layout == "sgd":
                    masters = [s[1] for s in states]
                    inner = [s[0] for s in states]
                else:
                    masters = [s[0] for s in states]
                    inner = [s[1] for s in states]
                g32 = [g.to(torch.float32) for g in grads]
                self._rule(lrs, wds, ts, masters, g32, inner, fresh=True)
                torch._foreach_copy_(weights, masters)
            else:
                self._rule(lrs, wds, ts, weights, grads, states, fresh=False)

    def _rule(
        self,
        lrs: list[float],
        wds: list[float],
        ts: list[int],
        weights: Tensors,
        grads: Tensors,
        states: list[State],
        fresh: bool,
    ) -> None:
        """Applies the update rule; ``fresh`` says ``grads`` may be modified."""
        raise MXParamsNotImplementedError(f"{type(self).__name__} defines no update rule")

    def _rescaled(self, grads: Tensors, fresh: bool) -> Tensors:
        if fresh:
            torch._foreach_mul_(grads, self.rescale_grad)
            return grads
        return list(torch._foreach_mul(grads, self.rescale_grad))


def _sgd_step(
    momentum: float,
    lrs: list[float],
    wds: list[float],
    weights: Tensors,
    g: Tensors,
    moms: list[torch.Tensor | None],
) -> None:
    """MXNet's (multi_)sgd(_mom)_update: mom = momentum*mom - lr*wd*w - lr*g; w += mom."""
    decay = _scaled(weights, [-lr * wd for lr, wd in zip(lrs, wds, strict=True)])
    torch._foreach_mul_(g, [-lr for lr in lrs])
    torch._foreach_add_(decay, g)
    if momentum > 0:
        mom = [m for m in moms if m is not None]
        if len(mom) != len(weights):
            raise MXParamsValueError("momentum states are missing for some weights")
        torch._foreach_mul_(mom, momentum)
        torch._foreach_add_(mom, decay)
        torch._foreach_add_(weights, mom)
    else:
        torch._foreach_add_(weights, decay)


@register
class SGD(Optimizer):
    """SGD with momentum and weight decay (MXNet's rule)."""

    _mp_layout = "sgd"

    def __init__(self, momentum: float = 0.0, lazy_update: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lazy_update = lazy_update
        self.aggregate_num = 4

    def create_state(self, index: int, weight: torch.Tensor) -> State:
        return _zeros(weight) if self.momentum != 0.0 else None

    def _rule(self, lrs, wds, ts, weights, grads, states, fresh):  # type: ignore[no-untyped-def]
        g = self._rescaled(grads, fresh)
        _clip(g, self.clip_gradient)
        _sgd_step(self.momentum, lrs, wds, weights, g, states)


@register
class NAG(Optimizer):
    """Nesterov accelerated gradient (MXNet's ``nag_mom_update``)."""

    _mp_layout = "sgd"

    def __init__(self, momentum: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.momentum = momentum

    def create_state(self, index: int, weight: torch.Tensor) -> State:
        return _zeros(weight) if self.momentum != 0.0 else None

    def _rule(self, lrs, wds, ts, weights, grads, states, fresh):  # type: ignore[no-untyped-def]
        g = self._rescaled(grads, fresh)
        _clip(g, self.clip_gradient)
        if self.momentum <= 0:
            _sgd_step(0.0, lrs, wds, weights, g, states)
            return
        # MXNet 1.9.1's nag_mom_update (out aliasing the weight): with
        # d = -lr*g and e(w) = -lr*wd*w,
        #   w' = w + momentum*(momentum*mom + e(w) + d) + e(w) + d
        #   mom' = momentum*mom + d + e(w')   (the decay of the *updated* weight)
        neg_lr = [-lr for lr in lrs]
        decay = [-lr * wd for lr, wd in zip(lrs, wds, strict=True)]
        torch._foreach_mul_(g, neg_lr)
        e_old = _scaled(weights, decay)
        torch._foreach_mul_(states, self.momentum)
        step = list(torch._foreach_add(states, e_old))
        torch._foreach_add_(step, g)
        torch._foreach_mul_(step, self.momentum)
        torch._foreach_add_(step, e_old)
        torch._foreach_add_(step, g)
        torch._foreach_add_(weights, step)
        torch._foreach_add_(states, g)
        torch._foreach_add_(states, _scaled(weights, decay))


@register
class Adam(Optimizer):
    """Adam; as MXNet, bias correction scales the learning rate and weight
    decay joins the gradient before clipping."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        lazy_update: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lazy_update = lazy_update

    def create_state(self, index: int, weight: torch.Tensor) -> State:
        return (_zeros(weight), _zeros(weight))

    def _rule(self, lrs, wds, ts, weights, grads, states, fresh):  # type: ignore[no-untyped-def]
        b1, b2 = self.beta1, self.beta2
        steps = [
            -lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t) for lr, t in zip(lrs, ts, strict=True)
        ]
        g = self._rescaled(grads, fresh)
        torch._foreach_add_(g, _scaled(weights, wds))
        _clip(g, self.clip_gradient)
        mean = [s[0] for s in states]
        var = [s[1] for s in states]
        torch._foreach_mul_(mean, b1)
        torch._foreach_add_(mean, g, alpha=1.0 - b1)
        torch._foreach_mul_(var, b2)
        torch._foreach_addcmul_(var, g, g, value=1.0 - b2)
        denom = list(torch._foreach_sqrt(var))
        torch._foreach_add_(denom, self.epsilon)
        torch._foreach_addcdiv_(weights, mean, denom, steps)


@register
class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton), or Graves's centered version."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        gamma1: float = 0.9,
        gamma2: float = 0.9,
        epsilon: float = 1e-8,
        centered: bool = False,
        clip_weights: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.centered = centered
        self.epsilon = epsilon
        self.clip_weights = clip_weights

    def create_state(self, index: int, weight: torch.Tensor) -> State:
        # MXNet makes these float32 whatever the weight's dtype.
        if self.centered:
            return tuple(_zeros(weight, torch.float32) for _ in range(3))
        return (_zeros(weight, torch.float32),)

    def _rule(self, lrs, wds, ts, weights, grads, states, fresh):  # type: ignore[no-untyped-def]
        g1 = self.gamma1
        g = self._rescaled(grads, fresh)
        torch._foreach_add_(g, _scaled(weights, wds))
        _clip(g, self.clip_gradient)
        n = [s[0] for s in states]
        torch._foreach_mul_(n, g1)
        torch._foreach_addcmul_(n, g, g, value=1.0 - g1)
        if not self.centered:
            denom = list(torch._foreach_add(n, self.epsilon))
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(weights, g, denom, [-lr for lr in lrs])
        else:
            mean = [s[1] for s in states]
            delta = [s[2] for s in states]
            torch._foreach_mul_(mean, g1)
            torch._foreach_add_(mean, g, alpha=1.0 - g1)
            denom = list(torch._foreach_mul(mean, mean))
            torch._foreach_neg_(denom)
            torch._foreach_add_(denom, n)
            torch._foreach_add_(denom, self.epsilon)
            torch._foreach_sqrt_(denom)
            torch._foreach_mul_(delta, self.gamma2)
            torch._foreach_addcdiv_(delta, g, denom, [-lr for lr in lrs])
            torch._foreach_add_(weights, delta)
        if self.clip_weights:
            torch._foreach_clamp_min_(weights, -self.clip_weights)
            torch._foreach_clamp_max_(weights, self.clip_weights)


@register
class AdaGrad(Optimizer):
    """AdaGrad (MXNet's dense rule: weight decay outside the adaptive term)."""

    def __init__(self, eps: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index: int, weight: torch.Tensor) -> State:
        return _zeros(weight, torch.float32)

    def _rule(self, lrs, wds, ts, weights, grads, states, fresh):  # type: ignore[no-untyped-def]
        g = self._rescaled(grads, fresh)
        if self.clip_gradient is not None:
            torch._foreach_clamp_min_(g, -self.clip_gradient)
            torch._foreach_clamp_max_(g, self.clip_gradient)
        torch._foreach_addcmul_(states, g, g)
        denom = list(torch._foreach_add(states, self.float_stable_eps))
        torch._foreach_sqrt_(denom)
        torch._foreach_div_(g, denom)
        torch._foreach_add_(g, _scaled(weights, wds))
        torch._foreach_mul_(g, [-lr for lr in lrs])
        torch._foreach_add_(weights, g)


@register
class AdaDelta(Optimizer):
    """AdaDelta (no learning rate; weight decay applied directly)."""

    def __init__(self, rho: float = 0.90, epsilon: float = 1e-5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def create_state(self, index: int, weight: torch.Tensor) -> State:
        return (_zeros(weight, torch.float32), _zeros(weight, torch.float32))

    def _rule(self, lrs, wds, ts, weights, grads, states, fresh):  # type: ignore[no-untyped-def]
        rho, eps = self.rho, self.epsilon
        g = self._rescaled(grads, fresh)
        if self.clip_gradient is not None:
            torch._foreach_clamp_min_(g, -self.clip_gradient)
            torch._foreach_clamp_max_(g, self.clip_gradient)
        acc_g = [s[0] for s in states]
        acc_delta = [s[1] for s in states]
        torch._foreach_mul_(acc_g, rho)
        torch._foreach_addcmul_(acc_g, g, g, value=1.0 - rho)
        num = list(torch._foreach_add(acc_delta, eps))
        torch._foreach_sqrt_(num)
        den = list(torch._foreach_add(acc_g, eps))
        torch._foreach_sqrt_(den)
        torch._foreach_div_(num, den)
        torch._foreach_mul_(num, g)  # the step, "current_delta"
        torch._foreach_mul_(acc_delta, rho)
        torch._foreach_addcmul_(acc_delta, num, num, value=1.0 - rho)
        torch._foreach_add_(num, _scaled(weights, wds))
        torch._foreach_sub_(weights, num)


@register
class Signum(Optimizer):
    """signSGD / Signum (sign of the momentum), with decoupled ``wd_lh``."""

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.9, wd_lh: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = momentum
        self.wd_lh = wd_lh

    def create_state(self, index: int, weight: torch.Tensor) -> State:
        return _zeros(weight) if self.momentum != 0.0 else None

    def _rule(self, lrs, wds, ts, weights, grads, states, fresh):  # type: ignore[no-untyped-def]
        m = self.momentum
        if m > 0:
            g = self._rescaled(grads, fresh)
            _clip(g, self.clip_gradient)
            torch._foreach_mul_(states, m)
            torch._foreach_add_(g, _scaled(weights, wds))
            torch._foreach_add_(states, g, alpha=-(1.0 - m))
            direction = list(torch._foreach_sign(states))
            torch._foreach_mul_(direction, lrs)
            if self.wd_lh:
                torch._foreach_mul_(weights, [1.0 - lr * self.wd_lh for lr in lrs])
            torch._foreach_add_(weights, direction)
        else:
            direction = list(torch._foreach_sign(grads))
            torch._foreach_mul_(direction, [-lr for lr in lrs])
            torch._foreach_mul_(weights, [1.0 - lr * wd for lr, wd in zip(lrs, wds, strict=True)])
            torch._foreach_add_(weights, direction)


@register
class Ftrl(Optimizer):
    """FTRL-Proximal (MXNet's ``ftrl_update``)."""

    def __init__(
        self, lamda1: float = 0.01, learning_rate: float = 0.1, beta: float = 1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.lamda1 = lamda1
        self.beta = beta
        self.lr = learning_rate

    def create_state(self, index: int, weight: torch.Tensor) -> State:
        return (_zeros(weight, torch.float32), _zeros(weight, torch.float32))

    def _rule(self, lrs, wds, ts, weights, grads, states, fresh):  # type: ignore[no-untyped-def]
        g = self._rescaled(grads, fresh)
        _clip(g, self.clip_gradient)
        z = [s[0] for s in states]
        n = [s[1] for s in states]
        sqrt_old = list(torch._foreach_sqrt(n))
        torch._foreach_addcmul_(n, g, g)
        sqrt_new = list(torch._foreach_sqrt(n))
        torch._foreach_sub_(sqrt_new, sqrt_old)
        torch._foreach_mul_(sqrt_new, weights)
        torch._foreach_div_(sqrt_new, lrs)
        torch._foreach_add_(z, g)
        torch._foreach_sub_(z, sqrt_new)
        # w = (sign(z)*lamda1 - z) / ((beta + sqrt(n))/lr + wd) where |z| > lamda1, else 0
        num = list(torch._foreach_sign(z))
        torch._foreach_mul_(num, self.lamda1)
        torch._foreach_sub_(num, z)
        den = list(torch._foreach_sqrt(n))
        torch._foreach_add_(den, self.beta)
        torch._foreach_div_(den, lrs)
        torch._foreach_add_(den, wds)
        torch._foreach_div_(num, den)
        masks = [zi.abs() > self.lamda1 for zi in z]
        torch._foreach_mul_(num, masks)
        torch._foreach_copy_(weights, num)


@register
class LAMB(Optimizer):
    """LAMB (layer-wise adaptive moments), MXNet's two-phase rule."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-6,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        bias_correction: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.bias_correction = bias_correction
        self.aggregate_num = 45

    def create_state(self, index: int, weight: torch.Tensor) -> State:
        return (_zeros(weight), _zeros(weight))

    def _rule(self, lrs, wds, ts, weights, grads, states, fresh):  # type: ignore[no-untyped-def]
        b1, b2 = self.beta1, self.beta2
        g = self._rescaled(grads, fresh)
        _clip(g, self.clip_gradient)
        mean = [s[0] for s in states]
        var = [s[1] for s in states]
        torch._foreach_mul_(mean, b1)
        torch._foreach_add_(mean, g, alpha=1.0 - b1)
        torch._foreach_mul_(var, b2)
        torch._foreach_addcmul_(var, g, g, value=1.0 - b2)
        if self.bias_correction:
            m_hat = _scaled(mean, [1.0 / (1.0 - b1**t) for t in ts])
            v_hat = _scaled(var, [1.0 / (1.0 - b2**t) for t in ts])
        else:
            m_hat = [m.clone() for m in mean]
            v_hat = var
        denom = list(torch._foreach_sqrt(v_hat))
        torch._foreach_add_(denom, self.epsilon)
        torch._foreach_div_(m_hat, denom)
        torch._foreach_add_(m_hat, _scaled(weights, wds))  # m_hat is now "g" of phase 1
        r1 = torch.stack(list(torch._foreach_norm(weights))).to(torch.float32)
        r2 = torch.stack(list(torch._foreach_norm(m_hat))).to(torch.float32)
        if self.lower_bound:
            r1 = r1.clamp_min(self.lower_bound)
        if self.upper_bound:
            r1 = r1.clamp_max(self.upper_bound)
        ratio = torch.where((r1 == 0) | (r2 == 0), torch.ones_like(r1), r1 / r2)
        steps = [-lr * float(r) for lr, r in zip(lrs, ratio.tolist(), strict=True)]
        torch._foreach_mul_(m_hat, steps)
        torch._foreach_add_(weights, m_hat)
