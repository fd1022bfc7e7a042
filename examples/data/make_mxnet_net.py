"""Writes the MXNet 1.9.1 reference files that examples/mxnet_forward.py checks against.

Run once with the MXNet oracle interpreter (``~/.cache/mxparams/venv-mxnet/bin/python
examples/data/make_mxnet_net.py``); its outputs are committed:

* ``mxnet_net.params``: ``HybridSequential.save_parameters`` of a small conv
  net (Conv2D, BatchNorm, Activation, MaxPool2D, Flatten, Dense, BatchNorm,
  Dense) whose BatchNorm running statistics were trained for a few steps;
* ``mxnet_net_io.params``: ``{'input': x, 'output': net(x)}`` in inference mode.
"""

import os

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

here = os.path.dirname(os.path.abspath(__file__))
mx.random.seed(7)
rng = np.random.RandomState(7)

net = gluon.nn.HybridSequential()
net.add(
    gluon.nn.Conv2D(8, kernel_size=3, padding=1, in_channels=3),
    gluon.nn.BatchNorm(in_channels=8),
    gluon.nn.Activation("relu"),
    gluon.nn.MaxPool2D(pool_size=2),
    gluon.nn.Flatten(),
    gluon.nn.Dense(32, in_units=8 * 4 * 4),
    gluon.nn.BatchNorm(in_channels=32),
    gluon.nn.Activation("tanh"),
    gluon.nn.Dense(10, in_units=32),
)
net.initialize(mx.init.Xavier())
for name, p in net.collect_params().items():
    if name.endswith(("gamma", "beta")):
        p.set_data(
            mx.nd.array(
                rng.uniform(0.5, 1.5, p.shape)
                if "gamma" in name
                else rng.uniform(-0.5, 0.5, p.shape)
            )
        )
# A few training-mode passes so the running statistics are not the defaults.
for _ in range(5):
    with autograd.record():
        net(mx.nd.array(rng.normal(0.3, 2.0, (16, 3, 8, 8)).astype(np.float32)))
x = mx.nd.array(rng.normal(0, 1, (4, 3, 8, 8)).astype(np.float32))
y = net(x)
net.save_parameters(os.path.join(here, "mxnet_net.params"))
mx.nd.save(os.path.join(here, "mxnet_net_io.params"), {"input": x, "output": y})
print(sorted(net.collect_params().keys()))
print(y.shape, float(y.abs().max().asscalar()))
