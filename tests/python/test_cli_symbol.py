"""``mxparams inspect`` and ``mxparams convert --to`` on MXNet ``-symbol.json`` graphs:
golden output, the exported program against the importer and MXNet, one-line errors."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mxparams.torch as mxt  # noqa: E402
from cli_runner import run  # noqa: E402
from mxnet_models import model_files  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.mxnet]


_SMALL = {
    "nodes": [
        {"op": "null", "name": "data", "inputs": []},
        {"op": "null", "name": "fc_weight", "attrs": {"__shape__": "(3, 0)"}, "inputs": []},
        {"op": "null", "name": "fc_bias", "attrs": {"__shape__": "(3,)"}, "inputs": []},
        {
            "op": "FullyConnected",
            "name": "fc",
            "attrs": {"num_hidden": "3"},
            "inputs": [[0, 0, 0], [1, 0, 0], [2, 0, 0]],
        },
        {"op": "Activation", "name": "act", "attrs": {"act_type": "relu"}, "inputs": [[3, 0, 0]]},
    ],
    "arg_nodes": [0, 1, 2],
    "heads": [[4, 0, 0]],
}


@pytest.fixture
def small(tmp_path: Path) -> Path:
    p = tmp_path / "small-symbol.json"
    p.write_text(json.dumps(_SMALL))
    return p


@pytest.fixture
def unsupported(tmp_path: Path) -> Path:
    graph = json.loads(json.dumps(_SMALL))
    graph["nodes"][4] = {"op": "FrobnicateOp", "name": "frob", "inputs": [[3, 0, 0]]}
    p = tmp_path / "odd-symbol.json"
    p.write_text(json.dumps(graph))
    return p


def test_inspect_text_is_golden(small: Path) -> None:
    r = run("inspect", str(small))
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "op              count  first node  supported\n"
        "FullyConnected  1      fc          yes\n"
        "Activation      1      act         yes\n"
        "2 operators, 0 unsupported\n"
    )
    assert r.stderr == ""


def test_inspect_json_counts_every_operator() -> None:
    symbol = model_files("resnet18_v1")["symbol"]
    r = run("inspect", "--json", str(symbol))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["format"] == "mxnet-symbol"
    nodes = json.loads(symbol.read_text())["nodes"]
    want = Counter(n["op"] for n in nodes if n["op"] != "null")
    assert {o["op"]: o["count"] for o in got["ops"]} == dict(want)
    assert all(o["supported"] for o in got["ops"])
    first = {o["op"]: o["first_node"] for o in got["ops"]}
    assert first["Convolution"] == next(n["name"] for n in nodes if n["op"] == "Convolution")


def test_inspect_names_an_unsupported_op(unsupported: Path) -> None:
    r = run("inspect", str(unsupported))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[2].split() == ["FrobnicateOp", "1", "frob", "NO"]
    assert lines[3] == "2 operators, 1 unsupported"
    assert lines[4].startswith("  FrobnicateOp: ")


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_convert_to_program_round_trip(tmp_path: Path) -> None:
    files = model_files("resnet18_v1")
    dst = tmp_path / "model.pt"
    # The params file defaults to NAME-0000.params beside the symbol file.
    r = run("convert", str(files["symbol"]), "--to", str(dst), "--input-shape", "1,3,224,224")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        f"{files['symbol']} + {files['export_params']} -> {dst} (torch.export program), "
        f"{dst.with_suffix('.safetensors')} (weights, torch names), "
        f"{dst.with_suffix('.py')} (module code)\n"
    )
    program = torch.export.load(str(dst)).module()
    x = np.load(files["input"])
    got = program(torch.from_numpy(x)).detach().numpy()
    module = mxt.import_model(files["symbol"], files["export_params"])
    with torch.no_grad():
        imported = module(torch.from_numpy(x)).numpy()
    assert _rel(got, imported) < 1e-6
    assert _rel(got, np.load(files["output"])) < 1e-5
    # The batch dimension stays dynamic.
    two = program(torch.from_numpy(np.concatenate([x, x]))).detach().numpy()
    assert _rel(two[1:], imported) < 1e-6
    from safetensors.numpy import load_file

    weights = load_file(dst.with_suffix(".safetensors"))
    state = module.state_dict()
    assert weights.keys() == state.keys()
    assert all(np.array_equal(weights[k], state[k].numpy()) for k in weights)
    assert "class Model" in dst.with_suffix(".py").read_text()


def test_convert_to_with_explicit_params_and_epoch(small: Path, tmp_path: Path) -> None:
    from mxparams import nd

    rng = np.random.RandomState(0)
    w, b = rng.randn(3, 4).astype("float32"), rng.randn(3).astype("float32")
    params = tmp_path / "weights.params"
    nd.save(params, {"arg:fc_weight": nd.array(w), "arg:fc_bias": nd.array(b)})
    nd.save(
        tmp_path / "small-0007.params", {"arg:fc_weight": nd.array(w), "arg:fc_bias": nd.array(b)}
    )
    x = rng.randn(2, 4).astype("float32")
    want = np.maximum(x @ w.T + b, 0)
    for args in ([str(params)], ["--epoch", "7"]):
        dst = tmp_path / "small.pt"
        r = run("convert", str(small), *args, "--to", str(dst), "--input-shape", "2,4")
        assert r.returncode == 0, r.stderr
        got = torch.export.load(str(dst)).module()(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        dst.unlink()


def _one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("mxparams: error: ")
    return r.stderr


def test_convert_to_errors(small: Path, unsupported: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.pt"
    shape = ["--input-shape", "2,4"]
    err = _one_line_error(run("convert", str(unsupported), "--to", str(dst), *shape))
    assert "FrobnicateOp: 1 node(s), first 'frob'" in err
    err = _one_line_error(run("convert", str(small), "--to", str(dst), *shape))
    assert str(tmp_path / "small-0000.params") in err and "No such file" in err
    err = _one_line_error(run("convert", str(small), "--to", str(dst), "--input-shape", "2,x"))
    assert '--input-shape "2,x"' in err
    params = tmp_path / "x.params"
    params.write_bytes(b"")
    err = _one_line_error(run("convert", str(params), str(params), "--to", str(dst), *shape))
    assert "NAME-symbol.json" in err
    assert not dst.exists()
    # clap's usage errors: --to needs --input-shape; array options do not mix with --to.
    assert run("convert", str(small), "--to", str(dst)).returncode == 2
    assert (
        run("convert", str(small), "--to", str(dst), *shape, "--dtype", "float16").returncode == 2
    )
    # Without --to, a symbol file still is no array file.
    err = _one_line_error(run("convert", str(small), str(tmp_path / "x.safetensors")))
    assert "symbol graph holds no arrays" in err
