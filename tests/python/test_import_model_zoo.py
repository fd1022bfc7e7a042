"""Gluon model-zoo networks exported by MXNet 1.9.1, imported into torch without MXNet.

The files come from ``mxnet_models`` (random weights, cached); MXNet's own
output for a fixed input is the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mxparams as mx  # noqa: E402
import mxparams.torch as mxt  # noqa: E402
from mxnet_models import VISION_MODELS, model_files  # noqa: E402

pytestmark = [pytest.mark.mxnet, pytest.mark.torch]

# The four with the most weights (vgg, alexnet) or layers run as ``slow``.
_SLOW = {"vgg11_bn", "alexnet", "inceptionv3", "densenet121"}
MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in VISION_MODELS]
# float16 against MXNet's float32 output: max error relative to the output's range.
FP16_TOLERANCE = 2e-2


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


@pytest.fixture(scope="module", params=MODELS)
def zoo(request):  # type: ignore[no-untyped-def]
    files = model_files(request.param)
    module = mxt.import_model(files["symbol"], files["export_params"])
    x = torch.from_numpy(np.load(files["input"]))
    return request.param, files, module, x


def test_output_matches_mxnet(zoo):  # type: ignore[no-untyped-def]
    _, files, module, x = zoo
    assert not module.training
    with torch.no_grad():
        out = module(x).numpy()
    want = np.load(files["output"])
    assert out.shape == want.shape
    assert _rel_err(out, want) < 1e-5


def test_batch_sizes(zoo):  # type: ignore[no-untyped-def]
    _, files, module, x = zoo
    batch = torch.cat([x, torch.flip(x, dims=[3]), x])
    with torch.no_grad():
        out = module(batch).numpy()
        single = module(x).numpy()
    assert out.shape[0] == 3
    np.testing.assert_allclose(out[2:], single, rtol=1e-4, atol=1e-5 * np.abs(single).max())
    np.testing.assert_allclose(out[:1], single, rtol=1e-4, atol=1e-5 * np.abs(single).max())


def test_state_dict_round_trips_to_params(zoo, tmp_path):  # type: ignore[no-untyped-def]
    _, files, module, _ = zoo
    original = mx.nd.load(files["export_params"])
    assert isinstance(original, dict)
    state = module.state_dict()
    assert {k.split(":", 1)[1] for k in original} == set(state)
    buffers = {n for n, _ in module.named_buffers()}
    assert buffers == {k[4:] for k in original if k.startswith("aux:")}
    for key, arr in original.items():
        np.testing.assert_array_equal(state[key[4:]].numpy(), np.asarray(arr))
    out = tmp_path / "roundtrip.params"
    mxt.save_params(module, out)
    again = mx.nd.load(out)
    assert isinstance(again, dict) and set(again) == set(original)
    for key, arr in original.items():
        np.testing.assert_array_equal(np.asarray(again[key]), np.asarray(arr))


@pytest.mark.parametrize("name", ["resnet18_v1", "mobilenetv2_1.0", "squeezenet1.1"])
def test_float16(name):  # type: ignore[no-untyped-def]
    files = model_files(name)
    x = torch.from_numpy(np.load(files["input"]))
    half = mxt.import_model(files["symbol"], files["export_params"], dtype=torch.float16)
    assert all(t.dtype == torch.float16 for t in half.state_dict().values())
    with torch.no_grad():
        out = half(x.half()).float().numpy()
    assert _rel_err(out, np.load(files["output"])) < FP16_TOLERANCE


def test_unfused_graph_matches_mxnet():
    """``fuse=False`` (one node per MXNet operator) gives the same output."""
    files = model_files("mobilenetv2_1.0")
    module = mxt.import_model(files["symbol"], files["export_params"], fuse=False)
    assert not any(type(m).__name__ == "ConvBatchNorm" for m in module.modules())
    x = torch.from_numpy(np.load(files["input"]))
    with torch.no_grad():
        out = module(x).numpy()
    assert _rel_err(out, np.load(files["output"])) < 1e-5


def test_fused_chains_train_like_unfused():
    """Training mode through fused Convolution-BatchNorm steps: same output, gradients
    and running statistics as the operator-by-operator graph."""
    files = model_files("mobilenetv2_1.0")
    fused = mxt.import_model(files["symbol"], files["export_params"])
    plain = mxt.import_model(files["symbol"], files["export_params"], fuse=False)
    plain.load_state_dict({k: v.clone() for k, v in fused.state_dict().items()})
    assert any(type(m).__name__ == "ConvBatchNorm" for m in fused.modules())
    x = torch.from_numpy(np.load(files["input"])).repeat(2, 1, 1, 1)
    x[1] = x[1].flip(2)
    outs = []
    for module in (fused, plain):
        module.train()
        out = module(x)
        out.square().sum().backward()
        outs.append(out.detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    for (name, p), (_, q) in zip(fused.named_parameters(), plain.named_parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5, msg=name)
    for (name, a), (_, b) in zip(fused.named_buffers(), plain.named_buffers(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_checkpoint_prefix_and_epoch():  # type: ignore[no-untyped-def]
    files = model_files("resnet18_v1")
    prefix = str(files["ckpt_symbol"])[: -len("-symbol.json")]
    module = mxt.import_model(prefix, epoch=3)
    x = torch.from_numpy(np.load(files["input"]))
    with torch.no_grad():
        out = module(x).numpy()
    assert _rel_err(out, np.load(files["output"])) < 1e-5


def test_train_mode_switches_batchnorm_and_dropout():  # type: ignore[no-untyped-def]
    files = model_files("resnet18_v1")
    module = mxt.import_model(files["symbol"], files["export_params"])
    x = torch.from_numpy(np.load(files["input"])).repeat(2, 1, 1, 1)
    x[1] = -x[1]
    before = module.state_dict()["resnetv10_batchnorm0_running_mean"].clone()
    module.train()
    with torch.no_grad():
        train_out = module(x)
    after = module.state_dict()["resnetv10_batchnorm0_running_mean"]
    assert not torch.equal(before, after)
    module.eval()
    with torch.no_grad():
        eval_out = module(x)
    assert not torch.allclose(train_out, eval_out)


@pytest.mark.parametrize("name", ["resnet18_v1", "mobilenetv2_1.0", "inceptionv3"])
def test_infer_shapes_from_the_symbol_alone(name):  # type: ignore[no-untyped-def]
    files = model_files(name)
    shape = VISION_MODELS[name][0]
    inferred = mxt.infer_shapes(files["symbol"], {"data": shape})
    stored = mx.nd.load(files["export_params"])
    assert isinstance(stored, dict)
    want = {k[4:]: tuple(v.shape) for k, v in stored.items()}
    want["data"] = shape
    assert inferred == want
