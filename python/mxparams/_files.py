"""Writing files that Python libraries serialise (torch, numpy, pickle, JSON).

Every file the package writes follows the rules of ``nd.save``, which live in
the native core: a regular file is replaced atomically (the previous one stays
intact on any error), a symlink's target likewise, a FIFO or character device
is written through, and anything else (a directory, a socket) is refused with
an ``OSError`` naming the path.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import IO

import mxparams._native as _native

__all__ = ["write_bytes", "write_with"]


def write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> None:
    """Writes ``data`` to ``path`` under the save rules; ``fsync`` makes it durable."""
    _native._write_file(path, data, fsync)


def write_with(
    path: str | os.PathLike[str], serialise: Callable[[IO[bytes]], object], *, fsync: bool = False
) -> None:
    """Runs ``serialise(stream)`` into memory, then writes the bytes under the
    save rules (a serialiser that fails leaves ``path`` untouched)."""
    buf = io.BytesIO()
    serialise(buf)
    write_bytes(path, buf.getvalue(), fsync=fsync)
