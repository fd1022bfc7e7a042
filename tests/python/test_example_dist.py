"""examples/train_dist.py: two processes (torchrun, Gloo on loopback) and one
process print the same accuracies after a sharded checkpoint and resume."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

pytestmark = [pytest.mark.torch]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "train_dist.py")
ACCURACY = re.compile(r"train accuracy (\d\.\d+), test accuracy (\d\.\d+)")
ARGS = ["--epochs", "8"]  # enough to pass 0.9; the full default is 20


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], out: Path) -> tuple[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "python") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, *cmd, EXAMPLE, *ARGS, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = ACCURACY.search(proc.stdout)
    assert m is not None, proc.stdout
    assert float(m.group(2)) >= 0.9, proc.stdout
    return m.group(1), m.group(2)


def test_two_processes_print_the_single_process_accuracy(tmp_path: Path) -> None:
    one = _run([], tmp_path / "one")
    launcher = [
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_port()}",
    ]
    two = _run(launcher, tmp_path / "two")
    assert two == one
    shards = sorted(p.name for p in (tmp_path / "two").glob("spiral_mlp-*.params"))
    assert shards == ["spiral_mlp-00000-of-00002.params", "spiral_mlp-00001-of-00002.params"]
    assert (tmp_path / "two" / "spiral_mlp.params.index.json").is_file()
