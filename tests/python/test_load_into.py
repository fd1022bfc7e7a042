"""load_into: MXNet model-zoo checkpoints into torchvision models, checked
against MXNet's own output; state_dict back to .params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.torch, pytest.mark.mxnet, pytest.mark.slow]

torch = pytest.importorskip("torch")
tv = pytest.importorskip("torchvision")

# The six model-zoo networks whose torchvision architecture is Gluon's: auto
# mapping pairs them by structure. (Gluon's resnet_v2 is pre-activation and has
# no torchvision twin; Gluon's mobilenetv2 keeps the first bottleneck's 1x1
# expansion and ends in a bias-free 1x1 convolution: both are below.)
TORCHVISION = {
    "resnet18_v1": lambda: tv.models.resnet18(num_classes=1000),
    "alexnet": lambda: tv.models.alexnet(num_classes=1000),
    "vgg11_bn": lambda: tv.models.vgg11_bn(num_classes=1000),
    "squeezenet1.1": lambda: tv.models.squeezenet1_1(num_classes=1000),
    "densenet121": lambda: tv.models.densenet121(num_classes=1000),
    "inceptionv3": lambda: tv.models.inception_v3(
        num_classes=1000, aux_logits=False, transform_input=False, init_weights=False
    ),
}

nn = torch.nn


class _BottleneckV2(nn.Module):
    """Gluon's BottleneckV2: pre-activation, the shortcut taken after bn1."""

    def __init__(self, cin: int, cout: int, stride: int, downsample: bool) -> None:
        super().__init__()
        mid = cout // 4
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.downsample = nn.Conv2d(cin, cout, 1, stride, bias=False) if downsample else None

    def forward(self, x):  # type: ignore[no-untyped-def]
        residual = x
        x = torch.relu(self.bn1(x))
        if self.downsample is not None:
            residual = self.downsample(x)
        x = torch.relu(self.bn2(self.conv1(x)))
        x = torch.relu(self.bn3(self.conv2(x)))
        return self.conv3(x) + residual


class ResNet50V2(nn.Module):
    """Gluon's resnet50_v2, with Gluon's layer indices as names."""

    def __init__(self) -> None:
        super().__init__()
        channels = [64, 256, 512, 1024, 2048]
        layers: list[nn.Module] = [
            nn.BatchNorm2d(3),  # Gluon: scale=False, center=False (gamma 1, beta 0 here)
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        ]
        for i, n in enumerate([3, 4, 6, 3]):
            stride = 1 if i == 0 else 2
            blocks = [_BottleneckV2(channels[i], channels[i + 1], stride, True)]
            blocks += [
                _BottleneckV2(channels[i + 1], channels[i + 1], 1, False) for _ in range(n - 1)
            ]
            layers.append(nn.Sequential(*blocks))
        layers += [nn.BatchNorm2d(2048), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.output = nn.Linear(2048, 1000)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.output(self.features(x))


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class _LinearBottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, t: int, stride: int) -> None:
        super().__init__()
        self.shortcut = stride == 1 and cin == cout
        mid = cin * t
        self.out = nn.Sequential(
            *_conv_bn(cin, mid, 1),
            nn.ReLU6(),
            *_conv_bn(mid, mid, 3, stride, groups=mid),
            nn.ReLU6(),
            *_conv_bn(mid, cout, 1),
        )

    def forward(self, x):  # type: ignore[no-untyped-def]
        y = self.out(x)
        return x + y if self.shortcut else y


class MobileNetV2(nn.Module):
    """Gluon's mobilenetv2_1.0 (every bottleneck expands, even with t=1)."""

    def __init__(self) -> None:
        super().__init__()
        cin = [32, 16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160]
        cout = cin[1:] + [320]
        ts = [1] + [6] * 16
        strides = [1, 2] * 2 + [1, 1, 2] + [1] * 6 + [2] + [1] * 3
        layers: list[nn.Module] = [*_conv_bn(3, 32, 3, 2), nn.ReLU6()]
        layers += [_LinearBottleneck(*a) for a in zip(cin, cout, ts, strides, strict=True)]
        layers += [*_conv_bn(320, 1280, 1), nn.ReLU6(), nn.AdaptiveAvgPool2d(1)]
        self.features = nn.Sequential(*layers)
        self.output = nn.Sequential(nn.Conv2d(1280, 1000, 1, bias=False), nn.Flatten())

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.output(self.features(x))


REIMPLEMENTED = {"resnet50_v2": ResNet50V2, "mobilenetv2_1.0": MobileNetV2}


@pytest.mark.parametrize("kind", ["params", "export_params", "ckpt_params"])
@pytest.mark.parametrize("name", sorted(TORCHVISION) + sorted(REIMPLEMENTED))
def test_model_zoo_into_torchvision(name: str, kind: str) -> None:
    import mxparams.torch as mpt
    from mxnet_models import model_files

    files = model_files(name)
    net = {**TORCHVISION, **REIMPLEMENTED}[name]().eval()
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


_MXNET_READS_BACK = """
import numpy as np
from mxnet import gluon
from mxnet.gluon.model_zoo import vision
x = mx.nd.array(np.load(input_path))
outs = {}
net = vision.resnet18_v1()
net.load_parameters(gluon_params)
outs["load_parameters"] = net(x).asnumpy()
block = gluon.SymbolBlock.imports(symbol, ["data"], export_params)
outs["SymbolBlock.imports"] = block(x).asnumpy()
sym, args, auxs = mx.model.load_checkpoint(ckpt_prefix, 7)
mod = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
mod.bind(data_shapes=[("data", x.shape)], for_training=False)
mod.set_params(args, auxs)
mod.forward(mx.io.DataBatch([x]), is_train=False)
outs["load_checkpoint"] = mod.get_outputs()[0].asnumpy()
result = {k: v.tolist() for k, v in outs.items()}
"""


def test_state_dict_loads_in_mxnet(tmp_path: Path) -> None:
    """A torchvision model changed in PyTorch, written back with the names of
    each kind of MXNet file, loads in MXNet 1.9.1 with PyTorch's output."""
    import shutil

    import mxparams.torch as mpt
    from mxnet_models import model_files
    from mxnet_oracle import run_mxnet
    from mxparams import nd

    files = model_files("resnet18_v1")
    x = torch.from_numpy(np.load(files["input"]))
    net = tv.models.resnet18().eval()
    mpt.load_into(net, files["params"])
    with torch.no_grad():
        net.fc.weight.mul_(1.5)  # "fine-tuned": not the file it came from
        net.bn1.running_var.add_(0.25)
        want = net(x).numpy()
    ckpt_prefix = str(tmp_path / "tuned")
    shutil.copyfile(files["symbol"], ckpt_prefix + "-symbol.json")
    written = {
        "params": str(tmp_path / "tuned.params"),
        "export_params": str(tmp_path / "tuned-export.params"),
        "ckpt_params": ckpt_prefix + "-0007.params",
    }
    for kind, path in written.items():
        # The names of the file of that kind: load_into's pairing, inverted.
        report = mpt.load_into(tv.models.resnet18(), files[kind])
        back = {module_name: name for name, module_name in report.matched}
        nd.save(path, mpt.state_dict(net, mapping=back))
    got = run_mxnet(
        _MXNET_READS_BACK,
        input_path=str(files["input"]),
        gluon_params=written["params"],
        symbol=str(files["symbol"]),
        export_params=written["export_params"],
        ckpt_prefix=ckpt_prefix,
    )
    assert set(got) == {"load_parameters", "SymbolBlock.imports", "load_checkpoint"}
    for how, out in got.items():
        np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5, atol=1e-5, err_msg=how)
