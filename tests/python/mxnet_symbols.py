"""Small symbol graphs run by MXNet 1.9.1's executor, generated once and cached.

Each case is a snippet of MXNet code that builds ``out`` from ``V(name)``
(``mx.sym.var``) and a dict of input shapes. The oracle infers every argument
and auxiliary shape, fills them with random values (a fixed seed; variances
positive), runs the executor in inference mode -- and, for cases marked
``train``, once more in training mode, recording the updated auxiliary states --
then writes ``NAME-symbol.json``, ``NAME-0000.params`` (``arg:``/``aux:``, the
data inputs left out), the inputs and the outputs. The cache lives outside the
clone, keyed by a hash of the cases, so a changed case regenerates.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mxnet_oracle import run_mxnet


@dataclass(frozen=True)
class Case:
    name: str
    code: str  # assigns ``out``; ``V`` is mx.sym.var, ``data`` is V("data")
    shapes: dict[str, tuple[int, ...]] = field(default_factory=lambda: {"data": (2, 4, 7, 7)})
    # input name -> (low, high, integer?) for inputs that need a special range
    ranges: dict[str, tuple[float, float, bool]] = field(default_factory=dict)
    train: bool = False


_SCRIPT = r"""
import hashlib
V = mx.sym.var
out_info = {}
for case in cases:
    name = case["name"]
    rng = np.random.RandomState(int(hashlib.md5(name.encode()).hexdigest()[:8], 16))
    scope = {"mx": mx, "V": V, "data": V("data"), "np": np}
    try:
        exec(case["code"], scope)
        sym = scope["out"]
        shapes = {k: tuple(v) for k, v in case["shapes"].items()}
        arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
        args = {}
        for n, s in zip(sym.list_arguments(), arg_shapes):
            lo, hi, integer = case["ranges"].get(n, (-1.0, 1.0, False))
            a = rng.uniform(lo, hi, s)
            args[n] = mx.nd.array(np.floor(a) if integer else a)
        aux = {}
        for n, s in zip(sym.list_auxiliary_states(), aux_shapes):
            lo, hi = (0.5, 1.5) if n.endswith("var") else (-0.2, 0.2)
            aux[n] = mx.nd.array(rng.uniform(lo, hi, s))
        prefix = os.path.join(outdir, name)
        sym.save(prefix + "-symbol.json")
        saved = {"arg:" + k: v for k, v in args.items() if k not in shapes}
        saved.update({"aux:" + k: v.copy() for k, v in aux.items()})
        mx.nd.save(prefix + "-0000.params", saved)
        exe = sym.bind(mx.cpu(), {k: v.copy() for k, v in args.items()},
                       args_grad={k: mx.nd.zeros(v.shape) for k, v in args.items()},
                       aux_states={k: v.copy() for k, v in aux.items()}, grad_req="write")
        outs = exe.forward(is_train=False)
        arrays = {"in_" + k: args[k].asnumpy() for k in shapes}
        arrays.update({"out%d" % i: o.asnumpy() for i, o in enumerate(outs)})
        if case["train"]:
            # MXNet updates BatchNorm's running statistics in the backward pass.
            outs = exe.forward(is_train=True)
            arrays.update({"train_out%d" % i: o.asnumpy() for i, o in enumerate(outs)})
            exe.backward([mx.nd.ones(o.shape) for o in outs])
            mx.nd.waitall()
            arrays.update({"train_aux_" + k: v.asnumpy() for k, v in exe.aux_dict.items()})
        np.savez(prefix + ".npz", **arrays)
        # list_arguments repeats a name used by several variable nodes
        names = [n for n in sym.list_arguments() if n in shapes]
        out_info[name] = {"inputs": list(dict.fromkeys(names)), "outputs": len(outs)}
    except Exception as e:  # an MXNet rejection is reported, not hidden
        out_info[name] = {"error": "%s: %s" % (type(e).__name__, str(e)[:300])}
result = out_info
"""


def cache_root() -> Path:
    default = Path.home() / ".cache" / "mxparams" / "symbols"
    return Path(os.environ.get("MXPARAMS_SYMBOL_CACHE", str(default)))


def generate(cases: list[Case], *, onednn: bool = True) -> tuple[Path, dict[str, Any]]:
    """Runs all ``cases`` under MXNet (once; cached) and returns (directory, info by name).

    ``onednn=False`` runs MXNet's own CPU kernels (``MXNET_MKLDNN_ENABLED=0``),
    for attributes its oneDNN path cannot execute (Deconvolution's
    ``target_shape``)."""
    payload = [
        {
            "name": c.name,
            "code": c.code,
            "shapes": {k: list(v) for k, v in c.shapes.items()},
            "ranges": {k: list(v) for k, v in c.ranges.items()},
            "train": c.train,
        }
        for c in cases
    ]
    env = {} if onednn else {"MXNET_MKLDNN_ENABLED": "0"}
    # Without extra environment the key is what it always was (caches stay valid).
    keyed: Any = [payload, env] if env else payload
    key_text = json.dumps(keyed, sort_keys=True)
    key = hashlib.sha256((key_text + _SCRIPT).encode()).hexdigest()[:16]
    outdir = cache_root() / key
    done = outdir / "done.json"
    if not done.exists():
        outdir.mkdir(parents=True, exist_ok=True)
        info = run_mxnet(_SCRIPT, timeout=900, cases=payload, outdir=str(outdir), _env=env)
        done.write_text(json.dumps(info))
    return outdir, json.loads(done.read_text())
