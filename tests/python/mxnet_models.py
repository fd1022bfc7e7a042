"""Model-zoo networks written by real MXNet 1.9.1, generated once and cached.

Tests never download weights: MXNet builds each network with random weights
(a fixed seed), runs one forward pass on a fixed input, and writes every file
kind a user meets (``save_parameters``, ``export``, ``save_checkpoint``) plus the
input and MXNet's output. The cache lives outside the clone
(``$MXPARAMS_MODEL_CACHE`` or ``~/.cache/mxparams/models``) so CI reuses it;
a directory is complete only once its ``done.json`` exists (written last).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mxnet_oracle import run_mxnet

# Bump when the generator script changes, so stale caches are not reused.
_GENERATOR_VERSION = 1

# name -> (input shape, kwargs for get_model)
VISION_MODELS: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {
    "resnet18_v1": ((1, 3, 224, 224), {}),
    "resnet50_v2": ((1, 3, 224, 224), {}),
    "mobilenetv2_1.0": ((1, 3, 224, 224), {}),
    "densenet121": ((1, 3, 224, 224), {}),
    "vgg11_bn": ((1, 3, 224, 224), {}),
    "squeezenet1.1": ((1, 3, 224, 224), {}),
    "inceptionv3": ((1, 3, 299, 299), {}),
    "alexnet": ((1, 3, 224, 224), {}),
    "mobilenet1.0": ((1, 3, 224, 224), {}),
    "resnet18_v2": ((1, 3, 224, 224), {}),
    "squeezenet1.0": ((1, 3, 224, 224), {}),
}

_SCRIPT = """
import mxnet as mx
from mxnet.gluon.model_zoo import vision
mx.random.seed(seed)
np.random.seed(seed)
net = vision.get_model(name, pretrained=False, **kwargs)
net.initialize(mx.init.Xavier(magnitude=2.0))
net.hybridize()
x = mx.nd.array(np.random.uniform(-1, 1, shape).astype("float32"))
net(x)  # completes deferred initialisation
# Give BatchNorm statistics non-trivial values so their mapping is checked too.
for pname, p in net.collect_params().items():
    if pname.endswith("running_mean"):
        p.set_data(mx.nd.array(np.random.uniform(-0.1, 0.1, p.shape)))
    elif pname.endswith("running_var"):
        p.set_data(mx.nd.array(np.random.uniform(0.5, 1.5, p.shape)))
y = net(x)
out = os.path.join(outdir, name)
net.save_parameters(out + ".params")
net.export(out, epoch=0)
sym = net(mx.sym.var("data"))
args = {k: v.data() for k, v in net.collect_params().items()
        if k in sym.list_arguments()}
auxs = {k: v.data() for k, v in net.collect_params().items()
        if k in sym.list_auxiliary_states()}
mx.model.save_checkpoint(out + "-ckpt", 3, sym, args, auxs)
np.save(out + ".input.npy", x.asnumpy())
np.save(out + ".output.npy", y.asnumpy())
result = {"prefix": sym.name}
"""


def cache_dir() -> Path:
    """Where generated models live (outside the clone)."""
    default = Path.home() / ".cache" / "mxparams" / "models"
    return Path(os.environ.get("MXPARAMS_MODEL_CACHE", str(default))) / f"v{_GENERATOR_VERSION}"


def model_files(name: str, seed: int = 0) -> dict[str, Path]:
    """The files of model-zoo network ``name``, written by MXNet 1.9.1 (cached).

    Keys: ``params`` (``save_parameters``: structural names), ``symbol`` and
    ``export_params`` (``export``: ``NAME-symbol.json`` + ``NAME-0000.params`` with
    ``arg:``/``aux:`` prefixes), ``ckpt_symbol`` and ``ckpt_params``
    (``save_checkpoint`` at epoch 3), ``input`` and ``output`` (``.npy``: a fixed
    input and MXNet's output for it, in inference mode).
    """
    shape, kwargs = VISION_MODELS[name]
    outdir = cache_dir() / f"{name}-s{seed}"
    done = outdir / "done.json"
    if not done.exists():
        outdir.mkdir(parents=True, exist_ok=True)
        res = run_mxnet(
            _SCRIPT,
            timeout=1200,
            name=name,
            seed=seed,
            shape=list(shape),
            kwargs=kwargs,
            outdir=str(outdir),
        )
        done.write_text(json.dumps(res))
    base = outdir / name
    return {
        "params": base.with_name(name + ".params"),
        "symbol": base.with_name(name + "-symbol.json"),
        "export_params": base.with_name(name + "-0000.params"),
        "ckpt_symbol": base.with_name(name + "-ckpt-symbol.json"),
        "ckpt_params": base.with_name(name + "-ckpt-0003.params"),
        "input": base.with_name(name + ".input.npy"),
        "output": base.with_name(name + ".output.npy"),
    }
