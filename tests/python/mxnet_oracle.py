"""Runs real MXNet 1.9.1 in its own virtualenv, in a subprocess, as the test oracle.

MXNet is never imported into the test process: it needs numpy < 1.24 and would
pollute the interpreter. A script runs in the oracle venv; whatever it assigns to
``result`` comes back as JSON. ``.ci/run`` creates the venv; its interpreter is
``$MXPARAMS_MXNET_PYTHON`` or ``~/.cache/mxparams/venv-mxnet/bin/python``.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

_MARK = "__MXNET_ORACLE_RESULT__"

_PRELUDE = """
import json, os, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
import mxnet as mx
"""

_EPILOGUE = """
print({mark!r} + json.dumps(result))
"""


def mxnet_python() -> str:
    """The oracle venv's interpreter; raises if it is not installed."""
    default = Path.home() / ".cache" / "mxparams" / "venv-mxnet" / "bin" / "python"
    path = os.environ.get("MXPARAMS_MXNET_PYTHON", str(default))
    if not Path(path).exists():
        raise RuntimeError(
            f"MXNet oracle interpreter not found at {path}; run .ci/run (or "
            "`python3 -m venv ~/.cache/mxparams/venv-mxnet && "
            "~/.cache/mxparams/venv-mxnet/bin/pip install mxnet==1.9.1 'numpy<1.24'`)"
        )
    return path


def run_mxnet(script: str, timeout: float = 600, **variables: Any) -> Any:
    """Runs ``script`` under MXNet 1.9.1 and returns the JSON value it left in ``result``.

    ``variables`` are JSON-encodable values bound as globals before the script runs
    (paths should be passed as strings).
    """
    naive = bool(variables.pop("_naive", False))
    extra_env: dict[str, str] = variables.pop("_env", None) or {}
    bindings = "".join(
        f"{k} = json.loads({json.dumps(json.dumps(v))})\n" for k, v in variables.items()
    )
    code = (
        _PRELUDE
        + bindings
        + "result = None\n"
        + textwrap.dedent(script)
        + _EPILOGUE.format(mark=_MARK)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["OMP_NUM_THREADS"] = "1"
    if naive:
        env["MXNET_ENGINE_TYPE"] = "NaiveEngine"
    env.update(extra_env)
    proc = subprocess.run(
        [mxnet_python(), "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        raise MXNetScriptError(proc.returncode, proc.stderr[-4000:])
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :])
    raise MXNetScriptError(proc.returncode, "no result printed\n" + proc.stdout[-2000:])


class MXNetScriptError(RuntimeError):
    """The oracle script failed; carries MXNet's stderr."""

    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(f"MXNet script exited with {returncode}:\n{stderr}")
        self.returncode = returncode
        self.stderr = stderr
