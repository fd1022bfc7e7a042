"""Type stubs for the ``mxparams._native`` extension module."""

from typing import Any

__version__: str

# --- random fills (src/python/random.rs) ---------------------------------------------------

def fill_uniform(out: Any, low: float, high: float, seed: int, stream: int) -> None: ...
def fill_normal(out: Any, mean: float, std: float, seed: int, stream: int) -> None: ...

# --- end random fills ------------------------------------------------------------------------
