"""Device contexts, as MXNet 1.x's ``mx.context`` names them."""

from __future__ import annotations

from ._native import (
    Context,
    cpu,
    cpu_pinned,
    cpu_shared,
    current_context,
    gpu,
    num_gpus,
)

__all__ = [
    "Context",
    "cpu",
    "cpu_pinned",
    "cpu_shared",
    "current_context",
    "gpu",
    "num_gpus",
]
