"""Runs the ``mxparams`` command of this checkout in a subprocess (CLI tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m mxparams ARGS`` with this checkout's package and a minimal PATH."""
    env = {"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "mxparams", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
