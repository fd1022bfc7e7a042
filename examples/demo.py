"""mxparams end to end: Gluon-style parameters trained data-parallel with PyTorch.

1. Builds a small MLP whose weights live in a ``mxparams.ParameterDict``, with
   deferred shapes (each weight is ``(units, 0)`` until the first forward pass
   shows the input width), initialised with Xavier on two contexts,
   ``cpu(0)`` and ``cpu(1)`` (two independent copies).
2. Trains it on two interleaved spirals (generated here, fixed seed): every
   batch is split over the two contexts, each half runs forward/backward on
   its context's copy through ``mxparams.torch`` tensors (zero-copy), the
   gradients are summed across contexts in Rust (``allreduce_grads``) and
   ``torch.optim.Adam`` updates both copies, which stay identical.
3. Asserts the test accuracy (>= 95 % by default), saves the ``.params``
   checkpoint, reloads it zero-copy (``nd.load(mmap=True)``) and into a fresh
   ``ParameterDict``, checks the reloaded model gives the same predictions,
   and prints the checkpoint's table next to one written by real MXNet 1.9.1.

Usage: ``python examples/demo.py [--epochs N] [--out DIR]``
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import mxparams as mp
import mxparams.torch as mpt
import numpy as np
import torch
import torch.nn.functional as F
from mxparams import nd

HERE = Path(__file__).resolve().parent
MXNET_CHECKPOINT = HERE / "data" / "mxnet_net.params"
CONTEXTS = [mp.cpu(0), mp.cpu(1)]
T = TypeVar("T")


# -- data -------------------------------------------------------------------


def spirals(n: int, seed: int, noise: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals, ``n`` points per class: (x float32 (2n, 2), y int64)."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n)) * 3.0 * math.pi  # denser near the centre
    xs, ys = [], []
    for label in (0, 1):
        angle = t + label * math.pi
        pts = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) / (3.0 * math.pi)
        xs.append(pts + rng.normal(0.0, noise / (3.0 * math.pi) * 3, pts.shape))
        ys.append(np.full(n, label))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


# -- model ------------------------------------------------------------------


class MLP:
    """Dense layers with ReLU between them; parameters in a ParameterDict.

    Weights are declared ``(units, 0)``: the input width is filled in by the
    first forward pass, which then finishes the deferred initialisation.
    """

    def __init__(self, units: Iterable[int], prefix: str = "mlp_") -> None:
        self.params = mp.ParameterDict(prefix)
        self.layers = []
        for i, u in enumerate(units):
            w = self.params.get(f"dense{i}_weight", shape=(u, 0), allow_deferred_init=True)
            b = self.params.get(f"dense{i}_bias", shape=(u,), init="zeros")
            self.layers.append((w, b))

    def __call__(self, x: torch.Tensor, ctx: mp.Context) -> torch.Tensor:
        h = x
        for i, (w, b) in enumerate(self.layers):
            if 0 in w.shape:  # deferred: the input width is known now
                w.shape = (w.shape[0], h.shape[1])
                w.finish_deferred_init()
            h = F.linear(h, mpt.tensor(w, ctx), mpt.tensor(b, ctx))
            if i + 1 < len(self.layers):
                h = torch.relu(h)
        return h

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, ctx: mp.Context) -> float:
        with torch.no_grad():
            return float((self(x, ctx).argmax(1) == y).float().mean())


# -- progress bar -----------------------------------------------------------


def progress(items: Iterable[T], total: int, desc: str) -> Iterator[T]:
    """tqdm when it is installed, else a plain text bar on stderr."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _text_bar(items, total, desc)
    return iter(tqdm(items, total=total, desc=desc, leave=True, file=sys.stderr))


def _text_bar(items: Iterable[T], total: int, desc: str, width: int = 30) -> Iterator[T]:
    t0 = last = time.perf_counter()
    for i, item in enumerate(items, 1):
        yield item
        now = time.perf_counter()
        if now - last < 0.2 and i < total:
            continue  # redraw at most five times a second
        last = now
        filled = width * i // max(total, 1)
        sys.stderr.write(
            f"\r{desc} [{'#' * filled}{'.' * (width - filled)}] {i}/{total} "
            f"({i / max(now - t0, 1e-9):.0f} it/s)"
        )
        sys.stderr.flush()
    sys.stderr.write("\n")


# -- checkpoint table -------------------------------------------------------


def _alignment(offset: int) -> int:
    """The largest power of two (up to 64) dividing ``offset``."""
    a = 1
    while a < 64 and offset % (2 * a) == 0:
        a *= 2
    return a


def checkpoint_table(path: Path) -> str:
    """name, shape, dtype, bytes, data offset and its alignment, per array."""
    rows = [("name", "shape", "dtype", "bytes", "offset", "align")]
    for name, shape, dtype, _, offset, nbytes in mp._native.params_index(path):
        rows.append(
            (str(name), str(tuple(shape)), dtype, str(nbytes), str(offset), str(_alignment(offset)))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i < 3 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=False))
            )
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    size = path.stat().st_size
    lines.append(f"{len(rows) - 1} arrays, {size} bytes on disk")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------


def batches(n: int, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch] for i in range(0, n, batch)]


def train(args: argparse.Namespace) -> tuple[MLP, float, dict[str, Any]]:
    mp.random.seed(args.seed)
    torch.manual_seed(args.seed)
    x_np, y_np = spirals(args.points, seed=args.seed)
    xt_np, yt_np = spirals(args.points // 2, seed=args.seed + 1)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    x_test, y_test = torch.from_numpy(xt_np), torch.from_numpy(yt_np)

    net = MLP([args.hidden, args.hidden, 2])
    net.params.initialize(mp.init.Xavier(), ctx=CONTEXTS)
    with torch.no_grad():
        net(x[:1], CONTEXTS[0])  # shape inference finishes the deferred init
    shapes = {k: p.shape for k, p in net.params.items()}
    print("parameters:", ", ".join(f"{k} {s}" for k, s in shapes.items()))

    # One optimizer over both copies: identical gradients after the all-reduce
    # give identical updates, so the copies stay equal.
    opt = torch.optim.Adam(mpt.param_groups(net.params, CONTEXTS, lr=args.lr), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    steps = [(e, idx) for e in range(args.epochs) for idx in batches(len(x), args.batch, rng)]
    t0 = time.perf_counter()
    for _, idx in progress(steps, len(steps), f"training on {CONTEXTS}"):
        xb, yb = x[idx], y[idx]
        for ctx, part in zip(
            CONTEXTS, np.array_split(np.arange(len(idx)), len(CONTEXTS)), strict=False
        ):
            out = net(xb[part], ctx)
            # Sum over the shard / full batch size: the all-reduced sum is the
            # gradient of the mean loss over the whole batch.
            loss = F.cross_entropy(out, yb[part], reduction="sum") / len(idx)
            loss.backward()  # grad_req='write': lands in this context's grad buffer
        net.params.allreduce_grads()
        opt.step()
    secs = time.perf_counter() - t0

    for k, p in net.params.items():
        a, b = (p.data(c).asnumpy() for c in CONTEXTS)
        if not np.array_equal(a, b):
            raise SystemExit(f"FAIL: copies of {k} diverged")
    acc = net.accuracy(x_test, y_test, CONTEXTS[1])
    stats = {"steps": len(steps), "seconds": secs, "train_acc": net.accuracy(x, y, CONTEXTS[0])}
    return net, acc, {"x_test": x_test, "y_test": y_test, **stats}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30, help="passes over the data (default 30)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the checkpoint (default: a new temporary folder)",
    )
    ap.add_argument("--min-acc", type=float, default=0.95, help="required test accuracy")
    ap.add_argument("--points", type=int, default=1000, help="training points per class")
    ap.add_argument("--hidden", type=int, default=64, help="hidden units per layer")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # the model is tiny: threads would only contend
    out = args.out or Path(tempfile.mkdtemp(prefix="mxparams-demo-"))
    out.mkdir(parents=True, exist_ok=True)

    net, acc, info = train(args)
    print(
        f"{info['steps']} steps in {info['seconds']:.1f} s; train accuracy "
        f"{info['train_acc']:.3f}, test accuracy {acc:.3f} (copies on {CONTEXTS} identical)"
    )
    if acc < args.min_acc:
        print(f"FAIL: test accuracy {acc:.3f} < {args.min_acc}", file=sys.stderr)
        return 1

    path = out / "spiral_mlp.params"
    net.params.save(path)
    print(f"\nsaved {path}")

    # Zero-copy reload: read-only arrays viewing the memory-mapped file.
    mapped = nd.load(path, mmap=True)
    assert isinstance(mapped, dict)
    for k, p in net.params.items():
        view = np.asarray(mapped[k])
        if view.flags.writeable or not np.array_equal(view, p.data(CONTEXTS[0]).asnumpy()):
            raise SystemExit(f"FAIL: mmap view of {k} is not a read-only copy of the value")
    # And into a fresh model: shapes come from the file.
    net2 = MLP([args.hidden, args.hidden, 2])
    net2.params.load(path, ctx=mp.cpu(0))
    x_test, y_test = info["x_test"], info["y_test"]
    with torch.no_grad():
        same = torch.equal(net(x_test, CONTEXTS[0]), net2(x_test, mp.cpu(0)))
    acc2 = net2.accuracy(x_test, y_test, mp.cpu(0))
    if not same:
        raise SystemExit("FAIL: the reloaded model predicts differently")
    print(
        f"reloaded ({len(mapped)} arrays memory-mapped; fresh ParameterDict.load): "
        f"test accuracy {acc2:.3f}, outputs identical\n"
    )

    print(f"checkpoint written by mxparams: {path.name}")
    print(checkpoint_table(path))
    print(
        f"\ncheckpoint written by MXNet 1.9.1 (Gluon save_parameters): "
        f"{MXNET_CHECKPOINT.relative_to(HERE.parent)}"
    )
    print(checkpoint_table(MXNET_CHECKPOINT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
