"""Shared fixtures: the golden corpus directory and the MXNet oracle."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mxnet_oracle import run_mxnet  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: golden files written by MXNet 1.9.1."""
    return DATA


@pytest.fixture(scope="session")
def mxnet():  # type: ignore[no-untyped-def]
    """``run_mxnet(script, **vars)``: run code under real MXNet 1.9.1, get ``result`` back."""
    return run_mxnet
