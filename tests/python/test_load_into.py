"""load_into: MXNet model-zoo checkpoints into torchvision models, checked
against MXNet's own output; state_dict back to .params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.torch, pytest.mark.mxnet, pytest.mark.slow]

torch = pytest.importorskip("torch")
tv = pytest.importorskip("torchvision")

# Networks whose torchvision architecture is MXNet's (the others differ:
# Gluon's resnet50_v2 is pre-activation, mobilenetv2 / densenet / inception
# layouts differ in layer order or in padding).
TORCHVISION = {
    "resnet18_v1": lambda: tv.models.resnet18(num_classes=1000),
    "alexnet": lambda: tv.models.alexnet(num_classes=1000),
    "vgg11_bn": lambda: tv.models.vgg11_bn(num_classes=1000),
    "squeezenet1.1": lambda: tv.models.squeezenet1_1(num_classes=1000),
}


@pytest.mark.parametrize("kind", ["params", "export_params", "ckpt_params"])
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_model_zoo_into_torchvision(name: str, kind: str) -> None:
    import mxparams.torch as mpt
    from mxnet_models import model_files

    files = model_files(name)
    net = TORCHVISION[name]().eval()
    report = mpt.load_into(net, files[kind])
    assert not report.missing and not report.unexpected
    x = torch.from_numpy(np.load(files["input"]))
    with torch.no_grad():
        y = net(x).numpy()
    want = np.load(files["output"])
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_state_dict_back_to_params(tmp_path: Path) -> None:
    import mxparams.torch as mpt
    from mxnet_models import model_files
    from mxparams import nd

    files = model_files("resnet18_v1")
    net = tv.models.resnet18().eval()
    mpt.load_into(net, files["params"])
    out = tmp_path / "back.params"
    arrays = mpt.state_dict(net)
    assert "bn1.gamma" in arrays and "bn1.running_var" in arrays
    nd.save(out, arrays)
    net2 = tv.models.resnet18().eval()
    mpt.load_into(net2, out)
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_shape_mismatch_fails_loudly() -> None:
    import mxparams.torch as mpt
    from mxparams import nd

    net = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="shape mismatch"):
        mpt.load_into(net, {"weight": nd.zeros((3, 2)), "bias": nd.zeros((2,))})
