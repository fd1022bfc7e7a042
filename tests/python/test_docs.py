"""Every code block in README.md and docs/*.md runs, as written.

Blocks are collected from the Markdown files at test time, so a new page under
docs/ is covered without touching this file:

* ```` ```python ```` blocks of one file run in order in one namespace, in a
  temporary working directory of that file. Files a page names but cannot make
  itself (a checkpoint written by real MXNet) are copied in first: FIXTURES.
* ```` ```sh ```` (``bash``, ``shell``) blocks run under ``bash -e`` in the same
  directory, with the package on ``PYTHONPATH``, the test interpreter first on
  ``PATH`` and the ``[project.scripts]`` commands (``mxparams ...``) available.
* ```` ```rust ```` blocks are compiled and run by ``cargo test --doc``: a page
  with Rust blocks must be included into the crate's docs (``src/lib.rs``);
  ``test_rust_blocks_are_doctests`` checks that it is.
* Other fences (``text``, ``json``, none) are output or data, not code.

An HTML comment on the line before a block (blank lines between are allowed)
qualifies it: ``<!-- gpu -->`` runs it only where a GPU is present (skipped,
with that reason, elsewhere); ``<!-- skip: reason -->`` never runs it -- for
commands that cannot run inside the tests (``make test`` would run itself), not
for examples that should work.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mxparams
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_PARENT = Path(mxparams.__file__).resolve().parent.parent

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)[^\n]*$")
_MARKER = re.compile(r"^\s*<!--\s*(gpu|skip)\s*(?::\s*(.*?))?\s*-->\s*$")
_PYTHON = {"python", "py", "python3"}
_SHELL = {"sh", "bash", "shell"}


def _model_file(name: str, kind: str) -> Callable[[], Path]:
    def make() -> Path:
        from mxnet_models import model_files

        return model_files(name)[kind]

    return make


# File name a page uses -> how to get it (and the pytest marks that needs).
FIXTURES: dict[str, tuple[Callable[[], Path], tuple[str, ...]]] = {
    "resnet18_v1.params": (_model_file("resnet18_v1", "params"), ("mxnet",)),
    "resnet18_v1-symbol.json": (_model_file("resnet18_v1", "symbol"), ("mxnet",)),
    "resnet18_v1-0000.params": (_model_file("resnet18_v1", "export_params"), ("mxnet",)),
    "resnet18_v1.input.npy": (_model_file("resnet18_v1", "input"), ("mxnet",)),
    "resnet18_v1.output.npy": (_model_file("resnet18_v1", "output"), ("mxnet",)),
}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    source: str
    marker: tuple[str, str] | None  # ("gpu" | "skip", reason)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def parse_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the marker before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{path}:{start + 1}: unclosed code fence")
        i += 1
        marker = None
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0 and (mm := _MARKER.match(lines[j])):
            marker = (mm.group(1), mm.group(2) or "")
            if marker[0] == "skip" and not marker[1]:
                raise ValueError(f"{path}:{j + 1}: <!-- skip: ... --> needs a reason")
        blocks.append(Block(path, start + 1, lang, "\n".join(body) + "\n", marker))
    return blocks


def _runnable() -> list[Block]:
    return [b for p in doc_files() for b in parse_blocks(p) if b.lang in _PYTHON | _SHELL]


def _fixtures_for(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [name for name in FIXTURES if name in text]


def _params() -> list[Any]:
    out = []
    for block in _runnable():
        marks = [getattr(pytest.mark, m) for f in _fixtures_for(block.path) for m in FIXTURES[f][1]]
        if block.lang in _PYTHON and "torch" in block.path.read_text(encoding="utf-8"):
            marks.append(pytest.mark.torch)
        out.append(pytest.param(block, id=block.where, marks=marks))
    return out


@dataclass
class _Page:
    """One Markdown file's run: its directory, namespace and progress."""

    workdir: Path
    namespace: dict[str, Any] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    failed: str | None = None


_PAGES: dict[Path, _Page] = {}


def _gpu_present() -> bool:
    return mxparams.num_gpus() > 0


def _skip_reason(block: Block) -> str | None:
    if block.marker is None:
        return None
    kind, reason = block.marker
    if kind == "skip":
        return f"marked skip in the doc: {reason}"
    if not _gpu_present():
        return "needs a GPU (marked <!-- gpu --> in the doc); none present"
    return None


def _script_shims(bindir: Path) -> None:
    """The ``[project.scripts]`` commands, running this checkout's package."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("scripts", {})
    for name, target in scripts.items():
        module, _, func = target.partition(":")
        shim = bindir / name
        shim.write_text(
            f"#!/bin/sh\nexec {sys.executable} -c "
            f"'import sys; from {module} import {func} as f; sys.exit(f())' \"$@\"\n"
        )
        shim.chmod(0o755)


def _env(workdir: Path) -> dict[str, str]:
    bindir = workdir / ".bin"
    if not bindir.exists():
        bindir.mkdir()
        _script_shims(bindir)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_PARENT), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["PATH"] = os.pathsep.join([str(bindir), str(Path(sys.executable).parent), env["PATH"]])
    return env


def _run(block: Block, page: _Page) -> None:
    if block.lang in _PYTHON:
        code = compile(block.source, block.where, "exec")
        exec(code, page.namespace)
    else:
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.source],
            cwd=page.workdir,
            env=_env(page.workdir),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"{block.where}: exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )


@pytest.mark.parametrize("block", _params())
def test_doc_block(
    block: Block, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = _skip_reason(block)
    if reason:
        pytest.skip(reason)
    page = _PAGES.get(block.path)
    if page is None:
        workdir = tmp_path_factory.mktemp(block.path.stem)
        for name in _fixtures_for(block.path):
            shutil.copyfile(FIXTURES[name][0](), workdir / name)
        page = _PAGES[block.path] = _Page(workdir)
    if page.failed:
        pytest.fail(f"an earlier block of this page failed: {page.failed}")
    monkeypatch.chdir(page.workdir)
    # Python blocks of a page share a namespace: run the earlier ones first when this
    # block was selected on its own (pytest -k).
    for earlier in parse_blocks(block.path):
        if earlier.line >= block.line:
            break
        if earlier.lang in _PYTHON and earlier.line not in page.done:
            if _skip_reason(earlier) is None:
                _run(earlier, page)
            page.done.add(earlier.line)
    try:
        _run(block, page)
    except BaseException:
        page.failed = block.where
        raise
    page.done.add(block.line)


def test_rust_blocks_are_doctests() -> None:
    lib = (ROOT / "src" / "lib.rs").read_text(encoding="utf-8")
    for path in doc_files():
        if any(b.lang == "rust" for b in parse_blocks(path)):
            rel = path.relative_to(ROOT).as_posix()
            assert f'include_str!("../{rel}")' in lib, (
                f"{rel} has Rust blocks: include it in src/lib.rs for cargo test --doc"
            )


def test_parser_reads_markers_and_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- gpu -->\n```python\nx = 1\n```\n\n<!-- skip: recursive -->\n\n"
        "```sh\nmake test\n```\n\n<!-- an ordinary comment -->\n```rust\nfn main() {}\n```\n"
        "````text\n```\n````\n"
    )
    blocks = parse_blocks(page)
    assert [(b.lang, b.line, b.marker) for b in blocks] == [
        ("python", 4, ("gpu", "")),
        ("sh", 10, ("skip", "recursive")),
        ("rust", 15, None),
        ("text", 18, None),
    ]
    assert blocks[0].source == "x = 1\n" and blocks[3].source == "```\n"
    page.write_text("<!-- skip -->\n```sh\nls\n```\n")
    with pytest.raises(ValueError, match="needs a reason"):
        parse_blocks(page)
