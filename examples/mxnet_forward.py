"""Runs a network trained and saved by real MXNet 1.9.1 in PyTorch, through mxparams.

``examples/data/mxnet_net.params`` is what ``HybridSequential.save_parameters``
wrote for a small conv net (see ``examples/data/make_mxnet_net.py``), and
``examples/data/mxnet_net_io.params`` holds an input batch and MXNet's output
for it. This script loads the checkpoint into a ``ParameterDict`` (shapes come
from the file), runs the same forward pass with ``torch.nn.functional`` on
``mxparams.torch`` tensors (zero-copy views of the parameters), and checks the
result against MXNet's.

Usage: ``python examples/mxnet_forward.py [--data DIR] [--tol 1e-5]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mxparams as mp
import mxparams.torch as mpt
import numpy as np
import torch
import torch.nn.functional as F

DATA = Path(__file__).resolve().parent / "data"

# MXNet Gluon's BatchNorm default.
BN_EPS = 1e-5


def load_params(path: Path) -> mp.ParameterDict:
    """A ParameterDict holding the checkpoint: the names as save_parameters
    wrote them; running statistics take no gradient, as in Gluon."""
    pdict = mp.ParameterDict()
    for name in mp.nd.load(path, mmap=True):
        grad_req = "null" if "running_" in name else "write"
        pdict.get(name, grad_req=grad_req)
    pdict.load(path, ctx=mp.cpu(0))
    return pdict


def forward(pdict: mp.ParameterDict, x: torch.Tensor) -> torch.Tensor:
    """The net of make_mxnet_net.py in inference mode."""

    def p(name: str) -> torch.Tensor:
        return mpt.tensor(pdict[name])

    def batch_norm(h: torch.Tensor, i: int) -> torch.Tensor:
        return F.batch_norm(
            h,
            p(f"{i}.running_mean"),
            p(f"{i}.running_var"),
            p(f"{i}.gamma"),
            p(f"{i}.beta"),
            training=False,
            eps=BN_EPS,
        )

    h = F.conv2d(x, p("0.weight"), p("0.bias"), padding=1)
    h = torch.relu(batch_norm(h, 1))
    h = F.max_pool2d(h, 2)
    h = torch.flatten(h, 1)
    h = F.linear(h, p("5.weight"), p("5.bias"))
    h = torch.tanh(batch_norm(h, 6))
    return F.linear(h, p("8.weight"), p("8.bias"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder with the MXNet files")
    ap.add_argument("--tol", type=float, default=1e-5, help="max abs error allowed")
    args = ap.parse_args(argv)

    pdict = load_params(args.data / "mxnet_net.params")
    io = mp.nd.load(args.data / "mxnet_net_io.params")
    assert isinstance(io, dict)
    x = torch.from_dlpack(io["input"])
    want = io["output"].asnumpy()

    with torch.no_grad():
        got = forward(pdict, x).numpy()
    err = float(np.abs(got - want).max())
    n = sum(int(np.prod(v.shape)) for v in pdict.values())
    print(f"loaded {len(pdict)} arrays ({n} values) written by MXNet 1.9.1")
    print(f"input {tuple(x.shape)} -> output {got.shape}; max abs err vs MXNet: {err:.3g}")
    if not err < args.tol:
        print(f"FAIL: error {err:.3g} is not below {args.tol:g}", file=sys.stderr)
        return 1
    print(f"OK (< {args.tol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
