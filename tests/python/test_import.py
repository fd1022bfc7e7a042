"""What ``import mxparams`` costs and pulls in, and the shape of the package's import graph.

Not timed here (benches/python/bench_import.py measures the time): these tests check
the causes -- the heavy optional modules stay unimported until first used, and no
module of the package imports the package ``__init__`` back.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import mxparams

PACKAGE = Path(mxparams.__file__).resolve().parent


def _modules_after(code: str) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_leaves_ml_dtypes_and_torch_unloaded() -> None:
    loaded = _modules_after("import mxparams")
    assert "mxparams.nd" in loaded and "mxparams.parameter" in loaded
    assert "ml_dtypes" not in loaded
    assert "torch" not in loaded


def test_float_arrays_and_initializers_do_not_load_ml_dtypes() -> None:
    loaded = _modules_after(
        "import mxparams as mp\n"
        "pd = mp.ParameterDict('n_')\n"
        "pd.get('w', shape=(3, 4), dtype='float16')\n"
        "pd.get('b', shape=(4,), init='zeros')\n"
        "pd.initialize(mp.init.Xavier())\n"
        "mp.nd.zeros((2, 2), dtype='int8').asnumpy()\n"
    )
    assert "ml_dtypes" not in loaded


def test_first_bfloat16_use_loads_ml_dtypes() -> None:
    # Each entry point that meets bfloat16 gets numpy's bfloat16 dtype on demand.
    code = (
        "import numpy as np, mxparams as mp\n"
        "a = mp.nd.zeros((2, 3), dtype='bfloat16')\n"
        "assert np.asarray(a).dtype.name == 'bfloat16', np.asarray(a).dtype\n"
        "mp.random.uniform(0, 1, (4,), dtype='bfloat16')\n"
        "w = mp.Parameter('w', shape=(2, 2), dtype='bfloat16', init=mp.init.Uniform())\n"
        "w.initialize()\n"
        "assert w.data().dtype.name == 'bfloat16'\n"
    )
    assert "ml_dtypes" in _modules_after(code)


def _import_edges(module: str, tree: ast.Module) -> set[str]:
    """Modules of the package that ``module`` imports, as a source-only reader sees them.

    ``from .x import y`` and ``import mxparams.x`` name submodule ``x``; ``from . import x``
    names a submodule only when ``x.py`` exists, and otherwise (the compiled ``_native``
    among them) reads a name from the package ``__init__``.
    """
    sources = {p.stem for p in PACKAGE.glob("*.py")}
    edges: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level == 0:
                if name != "mxparams" and not name.startswith("mxparams."):
                    continue
                name = name.removeprefix("mxparams").lstrip(".")
            if name:
                edges.add(name.split(".")[0])
            else:
                edges.update(a.name if a.name in sources else "__init__" for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "mxparams":
                    edges.add(parts[1] if len(parts) > 1 else "__init__")
    edges.discard(module)
    return edges


def test_package_import_graph_has_no_cycle() -> None:
    graph = {
        path.stem: _import_edges(path.stem, ast.parse(path.read_text(), str(path)))
        for path in PACKAGE.glob("*.py")
    }
    # Depth-first search for a back edge; report the cycle it closes.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
