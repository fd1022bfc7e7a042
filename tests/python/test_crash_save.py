"""A save killed at any moment leaves the old file or the new one, never a mix."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from mxparams import nd

N_ARRAYS = 8
N_ELEMS = 200_000  # 8 x 800 KB per save

CHILD = textwrap.dedent(
    f"""
    import sys
    from mxparams import nd
    target = sys.argv[1]
    versions = [
        {{f"p{{i}}": nd.full(({N_ELEMS},), float(v), dtype="float32") for i in range({N_ARRAYS})}}
        for v in (1, 2)
    ]
    print("ready", flush=True)
    i = 0
    while True:
        nd.save(target, versions[i % 2])
        i += 1
    """
)


def which_version(path: Path) -> int:
    loaded = nd.load(path)
    assert isinstance(loaded, dict)
    assert list(loaded) == [f"p{i}" for i in range(N_ARRAYS)]
    values = {float(np.asarray(a)[0]) for a in loaded.values()}
    assert len(values) == 1, "arrays from two different saves in one file"
    (v,) = values
    for a in loaded.values():
        assert a.shape == (N_ELEMS,)
        assert (np.asarray(a) == v).all()
    return int(v)


def test_sigkill_during_save_leaves_a_complete_file(tmp_path: Path) -> None:
    target = tmp_path / "model.params"
    nd.save(target, {f"p{i}": nd.full((N_ELEMS,), 1.0) for i in range(N_ARRAYS)})
    rng = random.Random(1234)
    seen = set()
    for _ in range(30):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(target)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.08))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        seen.add(which_version(target))
    assert seen == {1, 2}
    # Kills that landed mid-write leave a temporary sibling behind (nothing can
    # clean up after SIGKILL); its existence shows the kills did hit saves.
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    assert leftovers
    assert all(p.name.startswith(".model.params.") for p in leftovers)
