"""The ``mxparams`` command (``python -m mxparams``): inspect, convert, diff
and verify checkpoints. The command itself lives in the Rust core, which the
Rust binary shares; this module hands it the formats only Python can read or
write (PyTorch files, numpy ``.npz``/``.npy`` output, symbol graphs)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import mxparams._native as _native


class _Hooks:
    """Readers and writers the core calls for formats it leaves to Python.
    Each returns None (or False) for a format it does not handle."""

    def read(self, path: str, fmt: str) -> tuple[list[str] | None, list[Any]] | None:
        if fmt == "torch":
            from ._torch_io import read_torch

            return read_torch(path)
        return None

    def write(self, path: str, fmt: str, names: list[str], arrays: list[Any]) -> bool:
        if fmt == "torch":
            from ._torch_io import write_torch

            write_torch(path, names, arrays)
            return True
        if fmt in ("npz", "npy"):
            from ._torch_io import write_numpy

            write_numpy(path, fmt, names, arrays)
            return True
        return False

    def symbol(self, path: str, json: bool) -> str | None:
        try:
            from . import ops_torch
        except ImportError:  # torch is not installed
            return None
        report = ops_torch.op_support(path)
        if json:
            import json as _json

            return _json.dumps({"format": "mxnet-symbol", "ops": report}) + "\n"
        rows = [("op", "count", "first node", "supported")]
        rows += [
            (r["op"], str(r["count"]), r["first_node"], "yes" if r["supported"] else "NO")
            for r in report
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        missing = [r for r in report if not r["supported"]]
        lines.append(
            f"{len(report)} operators, {len(missing)} unsupported"
            + "".join(f"\n  {r['op']}: {r.get('reason', '')}" for r in missing)
        )
        return "\n".join(lines) + "\n"

    def export_model(
        self, symbol: str, params: str, dst: str, input_shapes: list[list[int]]
    ) -> str | None:
        try:
            from ._import_model import export_model
        except ImportError:  # torch is not installed
            return None
        written = export_model(symbol, params, dst, input_shape=input_shapes)
        return (
            f"{symbol} + {params} -> {written['program']} (torch.export program), "
            f"{written['weights']} (weights, torch names), {written['code']} (module code)\n"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    sys.stdout.flush()
    return _native._cli_main(args, _Hooks())
