"""MXNet 1.9.1's learning-rate schedulers (``mx.lr_scheduler``).

A scheduler maps the optimizer's update count to a learning rate. The
attribute names are MXNet's, so schedulers pickled by MXNet (inside
``Trainer.save_states`` files) load into these classes unchanged; like
MXNet's, ``FactorScheduler`` and ``MultiFactorScheduler`` keep their position
(``count``) and must be called with non-decreasing update counts.
"""

from __future__ import annotations

import math

from ._errors import MXParamsNotImplementedError, MXParamsTypeError, MXParamsValueError

__all__ = [
    "CosineScheduler",
    "FactorScheduler",
    "LRScheduler",
    "MultiFactorScheduler",
    "PolyScheduler",
]


class LRScheduler:
    """Base class: a learning rate for each update count, with optional warm-up.

    Parameters
    ----------
    base_lr : float
        The learning rate after warm-up.
    warmup_steps : int
        Updates spent warming up.
    warmup_begin_lr : float
        Learning rate at the first warm-up update.
    warmup_mode : {'linear', 'constant'}
        Linear ramp to ``base_lr``, or ``warmup_begin_lr`` throughout.
    """

    def __init__(
        self,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ) -> None:
        if not isinstance(warmup_steps, int):
            raise MXParamsTypeError("warmup_steps must be an int")
        if warmup_begin_lr > base_lr:
            raise MXParamsValueError("Base lr has to be higher than warmup_begin_lr")
        if warmup_steps < 0:
            raise MXParamsValueError("Warmup steps has to be positive or 0")
        if warmup_mode not in ("linear", "constant"):
            raise MXParamsValueError("Supports only linear and constant modes of warmup")
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps
        self.warmup_final_lr = base_lr
        self.warmup_begin_lr = warmup_begin_lr
        self.warmup_mode = warmup_mode

    def get_warmup_lr(self, num_update: int) -> float:
        """The learning rate at update ``num_update`` (< ``warmup_steps``)."""
        if self.warmup_mode == "constant":
            return float(self.warmup_begin_lr)
        span = self.warmup_final_lr - self.warmup_begin_lr
        return float(self.warmup_begin_lr + span * float(num_update) / float(self.warmup_steps))

    def __call__(self, num_update: int) -> float:
        raise MXParamsNotImplementedError("a scheduler subclass defines __call__")


class FactorScheduler(LRScheduler):
    """Multiplies the rate by ``factor`` every ``step`` updates, down to
    ``stop_factor_lr``."""

    def __init__(
        self,
        step: int,
        factor: float = 1,
        stop_factor_lr: float = 1e-8,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if step < 1:
            raise MXParamsValueError("Schedule step must be greater or equal than 1 round")
        if factor > 1.0:
            raise MXParamsValueError("Factor must be no more than 1 to make lr reduce")
        self.step = step
        self.factor = factor
        self.stop_factor_lr = stop_factor_lr
        self.count = 0

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        while num_update > self.count + self.step:
            self.count += self.step
            self.base_lr = max(self.base_lr * self.factor, self.stop_factor_lr)
        return float(self.base_lr)


class MultiFactorScheduler(LRScheduler):
    """Multiplies the rate by ``factor`` after each update count in ``step``
    (an increasing list)."""

    def __init__(
        self,
        step: list[int],
        factor: float = 1,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if not isinstance(step, list) or not step:
            raise MXParamsValueError("step must be a non-empty list of update counts")
        for i, s in enumerate(step):
            if i and s <= step[i - 1]:
                raise MXParamsValueError("Schedule step must be an increasing integer list")
            if s < 1:
                raise MXParamsValueError("Schedule step must be greater or equal than 1 round")
        if factor > 1.0:
            raise MXParamsValueError("Factor must be no more than 1 to make lr reduce")
        self.step = step
        self.cur_step_ind = 0
        self.factor = factor
        self.count = 0

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        while self.cur_step_ind < len(self.step) and num_update > self.step[self.cur_step_ind]:
            self.count = self.step[self.cur_step_ind]
            self.cur_step_ind += 1
            self.base_lr *= self.factor
        return float(self.base_lr)


class PolyScheduler(LRScheduler):
    """Polynomial decay from ``base_lr`` to ``final_lr`` over ``max_update``
    updates (power ``pwr``)."""

    def __init__(
        self,
        max_update: int,
        base_lr: float = 0.01,
        pwr: float = 2,
        final_lr: float = 0,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if not isinstance(max_update, int) or max_update < 1:
            raise MXParamsValueError("maximum number of updates must be strictly positive")
        self.power = pwr
        self.base_lr_orig = self.base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        self.max_steps = self.max_update - self.warmup_steps

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        if num_update <= self.max_update:
            done = float(num_update - self.warmup_steps) / float(self.max_steps)
            self.base_lr = self.final_lr + (self.base_lr_orig - self.final_lr) * pow(
                1 - done, self.power
            )
        return float(self.base_lr)


class CosineScheduler(LRScheduler):
    """Cosine decay from ``base_lr`` to ``final_lr`` over ``max_update`` updates."""

    def __init__(
        self,
        max_update: int,
        base_lr: float = 0.01,
        final_lr: float = 0,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ) -> None:
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if not isinstance(max_update, int) or max_update < 1:
            raise MXParamsValueError("maximum number of updates must be strictly positive")
        self.base_lr_orig = base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        self.max_steps = self.max_update - self.warmup_steps

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        if num_update <= self.max_update:
            phase = math.pi * (num_update - self.warmup_steps) / self.max_steps
            self.base_lr = (
                self.final_lr + (self.base_lr_orig - self.final_lr) * (1 + math.cos(phase)) / 2
            )
        return float(self.base_lr)
