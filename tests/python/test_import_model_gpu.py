"""Imported MXNet models on CUDA (skipped without a CUDA device)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mxparams.torch as mxt  # noqa: E402
from mxnet_models import model_files  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.torch,
    pytest.mark.mxnet,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


@pytest.mark.parametrize("name", ["resnet18_v1", "mobilenetv2_1.0"])
def test_cuda_float32_and_float16(name):  # type: ignore[no-untyped-def]
    files = model_files(name)
    want = np.load(files["output"])
    x = torch.from_numpy(np.load(files["input"])).cuda()
    module = mxt.import_model(files["symbol"], files["export_params"], device="cuda")
    assert all(t.is_cuda for t in module.state_dict().values())
    with torch.no_grad():
        out = module(x).cpu().numpy()
        # cuDNN's convolution algorithms differ from MXNet's CPU ones in rounding.
        assert np.abs(out - want).max() / np.abs(want).max() < 1e-4
        half = module.half()(x.half()).float().cpu().numpy()
    assert np.abs(half - want).max() / np.abs(want).max() < 2e-2
    module.float().train()
    module(x.repeat(2, 1, 1, 1)).sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in module.parameters())
