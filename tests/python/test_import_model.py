"""import_model's contract beyond numerics: names, errors, zero-copy weights, and export
to torch.export, safetensors + generated code, and ONNX (checked by onnxruntime)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mxparams as mx  # noqa: E402
import mxparams.torch as mxt  # noqa: E402
from mxparams.symbol import SymbolFormatError  # noqa: E402

pytestmark = pytest.mark.torch


def _fc_symbol(weight: str = "fc_weight", bias: str = "fc_bias") -> str:
    return json.dumps(
        {
            "nodes": [
                {"op": "null", "name": "data", "inputs": []},
                {"op": "null", "name": weight, "attrs": {"__shape__": "(3, 0)"}, "inputs": []},
                {"op": "null", "name": bias, "attrs": {"__shape__": "(3,)"}, "inputs": []},
                {
                    "op": "FullyConnected",
                    "name": "fc",
                    "attrs": {"num_hidden": "3"},
                    "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]],
                },
                {
                    "op": "SliceChannel",
                    "name": "split",
                    "attrs": {"num_outputs": "3"},
                    "inputs": [[3, 0, 0]],
                },
            ],
            "arg_nodes": [0, 1, 2],
            "heads": [[4, 2, 0], [4, 0, 0], [3, 0, 0]],
            "attrs": {"mxnet_version": ["int", 10901]},
        }
    )


def _params(weight: str = "fc_weight", bias: str = "fc_bias") -> dict[str, mx.NDArray]:
    rng = np.random.default_rng(1)
    return {
        f"arg:{weight}": mx.nd.array(rng.standard_normal((3, 4))),
        f"arg:{bias}": mx.nd.array(rng.standard_normal(3)),
    }


def test_multiple_heads_and_outputs():
    params = _params()
    module = mxt.import_model(_fc_symbol(), params)
    x = torch.randn(2, 4)
    third, first, full = module(x)
    want = x @ torch.from_dlpack(params["arg:fc_weight"]).T + torch.from_dlpack(
        params["arg:fc_bias"]
    )
    torch.testing.assert_close(full, want)
    torch.testing.assert_close(first, want[:, :1])
    torch.testing.assert_close(third, want[:, 2:])


def test_weights_are_zero_copy_views():
    params = _params()
    module = mxt.import_model(_fc_symbol(), params)
    view = np.asarray(params["arg:fc_weight"])
    assert module.fc_weight.data_ptr() == view.ctypes.data
    with torch.no_grad():
        module.fc_weight.add_(1.0)
    assert view[0, 0] == pytest.approx(float(module.fc_weight.detach()[0, 0]))


def test_names_that_are_not_identifiers_round_trip(tmp_path):  # type: ignore[no-untyped-def]
    module = mxt.import_model(_fc_symbol("fc.weight", "training"), _params("fc.weight", "training"))
    assert set(module.mxnet_info["names"].values()) == {"fc.weight", "training"}
    out = tmp_path / "w.params"
    mxt.save_params(module, out)
    assert set(mx.nd.load(out)) == {"arg:fc.weight", "arg:training"}
    assert isinstance(module.training, bool)


def test_missing_parameter_is_named():
    params = _params()
    del params["arg:fc_bias"]
    with pytest.raises(mx.MXParamsError, match="fc_bias"):
        mxt.import_model(_fc_symbol(), params)


def test_shape_mismatch_is_named():
    params = _params()
    params["arg:fc_bias"] = mx.nd.zeros((4,))
    with pytest.raises(mx.MXParamsError, match=r"fc_bias.*\(4,\).*\(3,\)"):
        mxt.import_model(_fc_symbol(), params)


def test_unknown_input_name():
    with pytest.raises(mx.MXParamsError, match="nope"):
        mxt.import_model(_fc_symbol(), _params(), inputs=["nope"])


def test_bad_output_index_is_a_format_error():
    doc = json.loads(_fc_symbol())
    doc["heads"] = [[4, 3, 0]]
    with pytest.raises(SymbolFormatError, match="3 outputs"):
        mxt.import_model(json.dumps(doc), _params())


def test_prefix_and_epoch(tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "net-symbol.json").write_text(_fc_symbol())
    mx.nd.save(tmp_path / "net-0007.params", _params())
    module = mxt.import_model(str(tmp_path / "net"), epoch=7)
    assert len(module(torch.zeros(1, 4))) == 3
    module = mxt.import_model(tmp_path / "net-symbol.json", epoch=7)
    assert len(module(torch.zeros(1, 4))) == 3


def test_generated_code_is_readable():
    module = mxt.import_model(_fc_symbol(), _params())
    assert "fully_connected(data, fc_weight, fc_bias, flatten = True)" in module.code


@pytest.fixture(scope="module")
def squeezenet():  # type: ignore[no-untyped-def]
    from mxnet_models import model_files

    files = model_files("squeezenet1.1")
    x = torch.from_numpy(np.load(files["input"]))
    return files, x, np.load(files["output"])


def _rel(got, want):  # type: ignore[no-untyped-def]
    return float(np.abs(np.asarray(got) - want).max() / np.abs(want).max())


@pytest.mark.mxnet
def test_export_program_weights_and_code(squeezenet, tmp_path):  # type: ignore[no-untyped-def]
    files, x, want = squeezenet
    dst = tmp_path / "model.pt"
    dst.write_bytes(b"previous")
    paths = mxt.export_model(files["symbol"], files["export_params"], dst, input_shape=x.shape)
    assert paths == {
        "program": dst,
        "weights": tmp_path / "model.safetensors",
        "code": tmp_path / "model.py",
    }
    with open(dst, "rb") as f:
        program = torch.export.load(f).module()
    assert _rel(program(x).detach(), want) < 1e-5
    assert program(x.repeat(3, 1, 1, 1)).shape[0] == 3  # the batch dimension stays dynamic

    from safetensors.torch import load_file

    namespace: dict[str, object] = {}
    exec(compile(paths["code"].read_text(), str(paths["code"]), "exec"), namespace)
    rebuilt = namespace["Model"]()  # type: ignore[operator]
    rebuilt.load_state_dict(load_file(paths["weights"]))
    rebuilt.eval()
    with torch.no_grad():
        assert _rel(rebuilt(x), want) < 1e-5


def test_export_needs_input_shape(tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(mx.MXParamsError, match="input_shape"):
        mxt.export_model(_fc_symbol(), _params(), tmp_path / "m.pt")


def test_export_never_replaces_a_directory(tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "m.pt").mkdir()
    with pytest.raises(IsADirectoryError) as err:
        mxt.export_model(_fc_symbol(), _params(), tmp_path / "m.pt", input_shape=(2, 4))
    assert isinstance(err.value, mx.MXParamsError)
    assert err.value.filename == str(tmp_path / "m.pt")


@pytest.mark.mxnet
@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime(squeezenet, tmp_path):  # type: ignore[no-untyped-def]
    import contextlib
    import io

    ort = pytest.importorskip("onnxruntime")
    files, x, want = squeezenet
    module = mxt.import_model(files["symbol"], files["export_params"])
    path = tmp_path / "model.onnx"
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(module, (x,), str(path), dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert _rel(got, want) < 1e-5


def test_reading_symbols_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, mxparams, mxparams.symbol as s\n"
        's.loads(\'{"nodes": [{"op": "null", "name": "x"}], "heads": [[0, 0]]}\')\n'
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_infer_shapes_without_params():
    shapes = mxt.infer_shapes(_fc_symbol(), {"data": (5, 4)})
    assert shapes == {"data": (5, 4), "fc_weight": (3, 4), "fc_bias": (3,)}
    with pytest.raises(mx.MXParamsError, match="'data'"):
        mxt.infer_shapes(_fc_symbol(), {})


def _conv_bn_relu() -> tuple[str, dict[str, mx.NDArray]]:
    """Convolution -> BatchNorm -> ReLU whose 4-d result is the model's output."""
    names = ["data", "w", "gamma", "beta", "mean", "var"]
    nodes: list[dict[str, object]] = [{"op": "null", "name": n, "inputs": []} for n in names]
    nodes += [
        {
            "op": "Convolution",
            "name": "conv",
            "attrs": {"kernel": "(3, 3)", "pad": "(1, 1)", "num_filter": "4", "no_bias": "True"},
            "inputs": [[0, 0, 0], [1, 0, 0]],
        },
        {
            "op": "BatchNorm",
            "name": "bn",
            "attrs": {"fix_gamma": "False"},
            "inputs": [[6, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 1], [5, 0, 1]],
        },
        {"op": "Activation", "name": "relu", "attrs": {"act_type": "relu"}, "inputs": [[7, 0, 0]]},
    ]
    symbol = json.dumps(
        {
            "nodes": nodes,
            "arg_nodes": [0, 1, 2, 3, 4, 5],
            "heads": [[8, 0, 0]],
            "attrs": {"mxnet_version": ["int", 10901]},
        }
    )
    rng = np.random.default_rng(2)
    params = {
        "arg:w": mx.nd.array(rng.standard_normal((4, 3, 3, 3))),
        "arg:gamma": mx.nd.array(rng.uniform(0.5, 1.5, 4)),
        "arg:beta": mx.nd.array(rng.standard_normal(4)),
        "aux:mean": mx.nd.array(rng.standard_normal(4)),
        "aux:var": mx.nd.array(rng.uniform(0.5, 1.5, 4)),
    }
    return symbol, params


def test_fused_convolution_output_layout_and_gradients():
    """The fused step folds its weight into channels-last layout on the CPU; the
    model still returns a contiguous tensor, and in eval mode with autograd on it
    gives the unfused graph's values and weight gradient."""
    symbol, params = _conv_bn_relu()
    fused = mxt.import_model(symbol, params)
    plain = mxt.import_model(symbol, params, fuse=False)
    assert any(type(m).__name__ == "ConvBatchNorm" for m in fused.modules())
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        want = plain(x)
        got = fused(x)
    assert got.is_contiguous()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grads = []
    for module in (fused, plain):
        out = module(x)
        assert out.is_contiguous()
        torch.testing.assert_close(out.detach(), want, rtol=1e-5, atol=1e-5)
        out.square().sum().backward()
        grads.append(module.w.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)
