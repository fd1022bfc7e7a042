"""``optimize_for_inference``: the frozen oneDNN copy of an imported module stays
within float32 rounding of MXNet 1.9.1 and leaves the module itself untouched."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mxparams.torch as mxt  # noqa: E402
from mxnet_models import model_files  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.mxnet]


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_optimized_resnet18_matches_mxnet() -> None:
    files = model_files("resnet18_v1")
    x = np.load(files["input"])
    want = np.load(files["output"])
    module = mxt.import_model(files["symbol"], files["export_params"])
    before = {k: v.clone() for k, v in module.state_dict().items()}
    module.train()
    fast = mxt.optimize_for_inference(module, torch.from_numpy(x))
    assert module.training  # its mode is restored, its weights untouched
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    module.eval()
    with torch.no_grad():
        exact = module(torch.from_numpy(x)).numpy()
        got = fast(torch.from_numpy(x)).numpy()
        # Any batch size: the trace keeps the batch dimension symbolic.
        three = fast(torch.from_numpy(np.concatenate([x, 2 * x, x]))).numpy()
        twice = module(torch.from_numpy(2 * x)).numpy()
    assert _rel(got, want) < 1e-5
    assert _rel(got, exact) < 1e-5
    assert _rel(three[0:1], exact) < 1e-5 and _rel(three[1:2], twice) < 1e-5
    # The optimized copy is a separate program: editing the module does not reach it.
    with torch.no_grad():
        next(module.parameters()).zero_()
    with torch.no_grad():
        assert _rel(fast(torch.from_numpy(x)).numpy(), got) == 0.0
