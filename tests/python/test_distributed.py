"""mxparams.distributed, the Trainer across processes and sharded checkpoints.

Several processes on Gloo over loopback: torchrun (one launcher, and two
launchers as two "nodes"), and plain subprocesses for the failure cases
(torchrun would tear the survivors down before they can report).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mxparams as mx  # noqa: E402
from mxparams import dist_checkpoint  # noqa: E402

pytestmark = [pytest.mark.torch]

HERE = Path(__file__).resolve().parent
WORKER = str(HERE / "dist_worker.py")
PYTHONPATH = str(HERE.parents[1] / "python")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHONPATH + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def _torchrun(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=HERE,
    )


def _read(out: Path, scenario: str, rank: int) -> Any:
    return json.loads((out / f"{scenario}-rank{rank}.json").read_text())


def _close(final: dict[str, Any], ref: dict[str, Any]) -> None:
    for name, copies in final.items():
        tol = 2e-3 if name == "l2_weight" else 2e-4  # l2_weight is float16
        for c in copies:
            np.testing.assert_allclose(np.asarray(c), np.asarray(ref[name]), atol=tol, err_msg=name)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    port = _port()
    proc = _torchrun(
        [
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
            WORKER,
            "train",
            str(out),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.mark.parametrize("opt", ["sgd", "adam", "sgd_overlap"])
def test_two_processes_two_contexts_equal_one_big_batch(trained: Path, opt: str) -> None:
    """W=2 processes x C=2 contexts x B=3 = one process, one context, batch 12
    (write/add/null grad_req, lr_mult/wd_mult, a float16 parameter)."""
    for rank in (0, 1):
        res = _read(trained, "train", rank)[opt]
        _close(res["final"], res["ref"])


def test_overlap_starts_collectives_during_backward(trained: Path) -> None:
    timeline = _read(trained, "train", 0)["sgd_overlap"]["timeline"]
    first_step = timeline[: next(i for i, e in enumerate(timeline) if e[0] == "done")]
    launches = [t for kind, _, t in first_step if kind == "launch"]
    landed = [t for kind, _, t in first_step if kind == "landed"]
    assert launches and landed
    # A bucket went out while gradients of another were still to come.
    assert min(launches) < max(landed)
    # Only the latest of the steps is kept: each bucket finished once.
    done = [bucket for kind, bucket, _ in timeline if kind == "done"]
    assert done and len(done) == len(set(done))


def test_no_sync_accumulates_then_syncs_once(trained: Path) -> None:
    from dist_worker import build, data, loss_on

    res0 = _read(trained, "train", 0)["no_sync"]
    res1 = _read(trained, "train", 1)["no_sync"]
    assert res0["launched_inside"] == 0
    pd = build([mx.cpu(0)], seed=0)
    pd.setattr("grad_req", "add")
    x, y = data(4, 0)
    loss_on(pd, mx.cpu(0), x, y).backward()
    want = pd["l1_weight"].grad().asnumpy() / 2  # the average over the two ranks
    np.testing.assert_allclose(np.asarray(res0["grad"]), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(res1["grad"]), want, rtol=1e-5, atol=1e-6)


def test_mismatch_is_a_named_error_on_every_rank(trained: Path) -> None:
    for rank in (0, 1):
        msg = _read(trained, "train", rank)["mismatch"]
        assert "Parameter 'w'" in msg and "rank 1" in msg


def test_sharded_checkpoint_loads_in_one_process(trained: Path) -> None:
    from dist_worker import build

    index = trained / "ckpt.params.index.json"
    assert len(set(json.loads(index.read_text())["weight_map"].values())) == 2
    pd = build([mx.cpu(0)], seed=99)
    dist_checkpoint.load_sharded(pd, index)
    whole = mx.nd.load(trained / "whole.params")
    via_nd = mx.nd.load(index)
    assert isinstance(whole, dict) and isinstance(via_nd, dict)
    assert set(via_nd) == set(whole)
    for k, p in pd.items():
        np.testing.assert_array_equal(p.data().asnumpy(), whole[k].asnumpy())
        np.testing.assert_array_equal(via_nd[k].asnumpy(), whole[k].asnumpy())


def test_sharded_checkpoint_loads_with_three_processes(trained: Path) -> None:
    proc = _torchrun(
        [
            "--nproc_per_node=3",
            "--master_addr=127.0.0.1",
            f"--master_port={_port()}",
            WORKER,
            "load",
            str(trained),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    whole = mx.nd.load(trained / "whole.params")
    assert isinstance(whole, dict)
    for rank in range(3):
        got = _read(trained, "load", rank)
        for k, v in got.items():
            np.testing.assert_array_equal(np.asarray(v), whole[k].asnumpy().astype("f4"))


@pytest.mark.slow
def test_two_nodes_on_loopback(tmp_path: Path) -> None:
    port = _port()
    common = [
        "--nnodes=2",
        "--nproc_per_node=1",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
    ]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                *common,
                f"--node_rank={n}",
                WORKER,
                "nodes",
                str(tmp_path),
            ],
            env=_env(),
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-4000:]
    for rank in range(2):
        res = _read(tmp_path, "nodes", rank)
        _close(res["final"], res["ref"])


def _plain_ranks(scenario: str, out: Path, timeout_s: int) -> list[subprocess.Popen[str]]:
    port = _port()
    return [
        subprocess.Popen(
            [sys.executable, WORKER, scenario, str(out)],
            env=_env(
                RANK=str(r),
                WORLD_SIZE="2",
                LOCAL_RANK=str(r),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
                MXP_TEST_PG_TIMEOUT=str(timeout_s),
            ),
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]


def test_sigkill_during_sharded_save_keeps_previous_checkpoint(tmp_path: Path) -> None:
    procs = _plain_ranks("kill", tmp_path, 30)
    for p in procs:
        p.communicate(timeout=120)
    assert procs[1].returncode == -9
    res = _read(tmp_path, "kill", 0)
    assert res["error"] is not None and res["seconds"] < 60, res
    index = tmp_path / "ckpt.params.index.json"
    names = set(json.loads(index.read_text())["weight_map"].values())
    assert all((tmp_path / n).exists() for n in names)
    loaded = mx.nd.load(index)
    assert isinstance(loaded, dict)
    # The previous (non-zero) values, not the zeros of the interrupted save.
    assert any(np.abs(v.asnumpy()).sum() > 0 for v in loaded.values())


def test_rank_exiting_before_collective_fails_the_others(tmp_path: Path) -> None:
    procs = _plain_ranks("exit", tmp_path, 30)
    for p in procs:
        p.communicate(timeout=120)
    res = _read(tmp_path, "exit", 0)
    assert res["error"] is not None and res["seconds"] < 60, res


def test_trainer_without_process_group_refuses_dist() -> None:
    pd = mx.ParameterDict()
    pd.get("w", shape=(2,)).initialize()
    tr = mx.Trainer(pd, "sgd", kvstore="dist_sync")
    with pytest.raises(RuntimeError, match="torch.distributed"):
        tr.step(1)
