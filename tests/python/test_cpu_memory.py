"""reuse_cpu_memory: freed large CPU blocks are reused instead of faulted in anew.

Each case runs in its own interpreter: the setting is process-wide and cannot
be undone, so it must not leak into the rest of the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

PYTHON_DIR = str(Path(__file__).resolve().parents[2] / "python")

_WORKLOAD = textwrap.dedent(
    """
    import resource, sys
    import torch
    import mxparams.torch as mxt

    took = mxt.reuse_cpu_memory() if sys.argv[1] == "on" else None

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    # A forward pass in miniature: outputs of several sizes, allocated and
    # freed on every call, with small Python allocations in between.
    steady = 0
    for step in range(8):
        before = faults()
        outs = []
        for mb in (16, 64, 5, 40):
            t = torch.empty(mb << 20, dtype=torch.uint8)
            t.fill_(1)
            outs.append(t)
            junk = [bytearray(1000 + i) for i in range(100)]
        del outs, junk
        if step >= 4:
            steady += faults() - before
    print(took, steady)
    """
)


def _run(code: str, *args: str) -> list[str]:
    """The words ``code`` prints, run in an interpreter of its own."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": PYTHON_DIR, "PATH": "/usr/bin:/bin"},
        timeout=120,
    ).stdout.split()


def _steady_faults(mode: str) -> tuple[str, int]:
    out = _run(_WORKLOAD, mode)
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt only")
def test_reused_blocks_take_no_new_page_faults() -> None:
    took, with_reuse = _steady_faults("on")
    _, without = _steady_faults("off")
    assert took == "True"
    # 125 MB per step: about 32,000 faults a step without reuse.
    assert without > 4 * 20_000
    assert with_reuse < without / 10


def test_reuse_cpu_memory_is_idempotent_and_exported() -> None:
    code = (
        "import mxparams.torch as mxt; "
        "print(mxt.reuse_cpu_memory() == mxt.reuse_cpu_memory(), "
        "'reuse_cpu_memory' in mxt.__all__)"
    )
    assert _run(code) == ["True", "True"]
