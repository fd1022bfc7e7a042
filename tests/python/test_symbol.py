"""Reading symbol JSON: current and old layouts, malformed and hostile files, op support."""

from __future__ import annotations

import json

import mxparams
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mxparams import ops_torch, symbol
from mxparams.symbol import SymbolFormatError

# A symbol as MXNet 0.8 wrote it, following the legacy layout MXNet's loader
# upgrades: ``param`` + ``attr`` instead of ``attrs``, two-element entries, bare
# ``lr_mult`` / ``ctx_group`` keys, an operator-level ``weight_lr_mult``, and no
# auxiliary-state variables for BatchNorm.
OLD_FORMAT = {
    "nodes": [
        {"op": "null", "param": {}, "name": "data", "inputs": [], "backward_source_id": -1},
        {"op": "null", "param": {}, "name": "fc1_weight", "inputs": [], "backward_source_id": -1},
        {
            "op": "null",
            "param": {},
            "name": "fc1_bias",
            "inputs": [],
            "backward_source_id": -1,
            "attr": {"lr_mult": "2.0"},
        },
        {
            "op": "FullyConnected",
            "param": {"no_bias": "False", "num_hidden": "3"},
            "name": "fc1",
            "inputs": [[0, 0], [1, 0], [2, 0]],
            "backward_source_id": -1,
            "attr": {"weight_lr_mult": "0.5"},
        },
        {"op": "null", "param": {}, "name": "bn1_gamma", "inputs": [], "backward_source_id": -1},
        {"op": "null", "param": {}, "name": "bn1_beta", "inputs": [], "backward_source_id": -1},
        {
            "op": "BatchNorm",
            "param": {
                "eps": "0.001",
                "fix_gamma": "False",
                "momentum": "0.9",
                "use_global_stats": "False",
            },
            "name": "bn1",
            "inputs": [[3, 0], [4, 0], [5, 0]],
            "backward_source_id": -1,
        },
        {
            "op": "Activation",
            "param": {"act_type": "relu"},
            "name": "relu1",
            "inputs": [[6, 0]],
            "backward_source_id": -1,
            "attr": {"ctx_group": "dev1"},
        },
    ],
    "arg_nodes": [0, 1, 2, 4, 5],
    "heads": [[7, 0]],
}


def test_old_format_upgraded():
    g = symbol.loads(json.dumps(OLD_FORMAT))
    names = [n.name for n in g.nodes]
    assert "bn1_moving_mean" in names and "bn1_moving_var" in names
    assert g.aux_names() == {"bn1_moving_mean", "bn1_moving_var"}
    by_name = {n.name: n for n in g.nodes}
    assert by_name["fc1_bias"].attrs["__lr_mult__"] == "2.0"
    assert by_name["fc1_weight"].attrs["__lr_mult__"] == "0.5"
    assert "weight_lr_mult" not in by_name["fc1"].attrs
    assert by_name["relu1"].attrs["__ctx_group__"] == "dev1"
    assert by_name["fc1"].attrs["num_hidden"] == "3"
    assert [g.nodes[i].name for i, _ in g.heads] == ["relu1"]


@pytest.mark.mxnet
def test_old_format_read_like_mxnet(mxnet):  # type: ignore[no-untyped-def]
    want = mxnet(
        """
sym = mx.sym.load_json(text)
result = {"args": sym.list_arguments(), "aux": sym.list_auxiliary_states(),
          "attrs": sym.attr_dict()}
""",
        text=json.dumps(OLD_FORMAT),
    )
    g = symbol.loads(json.dumps(OLD_FORMAT))
    aux = g.aux_names()
    assert [v.name for v in g.variables() if v.name not in aux] == want["args"]
    assert sorted(aux) == sorted(want["aux"])
    for name, attrs in want["attrs"].items():
        node = next(n for n in g.nodes if n.name == name)
        for k, v in attrs.items():
            if k.startswith("__"):
                assert node.attrs.get(k) == v, (name, k)


@pytest.mark.torch
def test_old_format_runs():
    torch = pytest.importorskip("torch")
    import mxparams.torch as mxt

    rng = np.random.default_rng(0)
    params = {
        "arg:fc1_weight": rng.standard_normal((3, 4)).astype("float32"),
        "arg:fc1_bias": rng.standard_normal(3).astype("float32"),
        "arg:bn1_gamma": rng.uniform(0.5, 1.5, 3).astype("float32"),
        "arg:bn1_beta": rng.standard_normal(3).astype("float32"),
        "aux:bn1_moving_mean": rng.standard_normal(3).astype("float32"),
        "aux:bn1_moving_var": rng.uniform(0.5, 1.5, 3).astype("float32"),
    }
    module = mxt.import_model(json.dumps(OLD_FORMAT), params)
    x = rng.standard_normal((5, 4)).astype("float32")
    y = x @ params["arg:fc1_weight"].T + params["arg:fc1_bias"]
    y = (y - params["aux:bn1_moving_mean"]) / np.sqrt(params["aux:bn1_moving_var"] + 1e-3)
    y = np.maximum(y * params["arg:bn1_gamma"] + params["arg:bn1_beta"], 0)
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-6)
    assert {n for n, _ in module.named_buffers()} == {"bn1_moving_mean", "bn1_moving_var"}


def _valid() -> dict:  # type: ignore[type-arg]
    return {
        "nodes": [
            {"op": "null", "name": "data", "inputs": []},
            {
                "op": "Activation",
                "name": "act",
                "attrs": {"act_type": "relu"},
                "inputs": [[0, 0, 0]],
            },
        ],
        "arg_nodes": [0],
        "node_row_ptr": [0, 1, 2],
        "heads": [[1, 0, 0]],
        "attrs": {"mxnet_version": ["int", 10901]},
    }


def _with(path: str, value):  # type: ignore[no-untyped-def]
    doc = _valid()
    target = doc
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return json.dumps(doc)


MALFORMED = {
    "truncated": json.dumps(_valid())[:40],
    "not json": "nodes: []",
    "top-level list": "[1, 2]",
    "no nodes": _with("nodes", KeyError),
    "empty nodes": _with("nodes", []),
    "node not object": _with("nodes.0", 7),
    "op missing": _with("nodes.1.op", KeyError),
    "name not string": _with("nodes.1.name", 3),
    "forward reference": _with("nodes.1.inputs", [[1, 0, 0]]),
    "input out of range": _with("nodes.1.inputs", [[99, 0, 0]]),
    "negative output": _with("nodes.1.inputs", [[0, -1, 0]]),
    "entry too short": _with("nodes.1.inputs", [[0]]),
    "entry not ints": _with("nodes.1.inputs", [["0", 0, 0]]),
    "bool as int": _with("nodes.1.inputs", [[True, 0, 0]]),
    "attr not string": _with("nodes.1.attrs", {"act_type": ["relu"]}),
    "attrs not object": _with("nodes.1.attrs", "relu"),
    "variable with inputs": _with("nodes.0.inputs", [[0, 0, 0]]),
    "no heads": _with("heads", KeyError),
    "head out of range": _with("heads", [[5, 0, 0]]),
    "arg_nodes names an op": _with("arg_nodes", [1]),
    "arg_nodes out of range": _with("arg_nodes", [-1]),
    "row_ptr wrong length": _with("node_row_ptr", [0, 1]),
    "bad version": _with("attrs", {"mxnet_version": "1.9"}),
    "deep nesting": "[" * 100000 + "]" * 100000,
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_rejected(text):  # type: ignore[no-untyped-def]
    with pytest.raises(SymbolFormatError) as info:
        symbol.loads(text)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, mxparams.MXParamsError)


def test_syntax_error_names_byte_offset():
    text = '{"nodes": [{"op": "null", "name": "\u00e9\u00e9", "inputs": [}'
    with pytest.raises(SymbolFormatError, match=r"byte offset (\d+)") as info:
        symbol.loads(text)
    offset = int(info.value.args[0].split("byte offset ")[1].split(":")[0])
    assert text.encode()[offset : offset + 1] == b"}"


def test_not_utf8():
    with pytest.raises(SymbolFormatError, match="UTF-8"):
        symbol.loads(b'{"nodes": ["\xff"]}')


def test_size_limit(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(symbol, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big-symbol.json"
    path.write_text(json.dumps(_valid()) + " " * 200)
    with pytest.raises(SymbolFormatError, match="limit"):
        symbol.load(path)


def test_missing_file_names_path(tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(mxparams.MXParamsError, match="nope-symbol.json"):
        symbol.load(tmp_path / "nope-symbol.json")


def test_bad_attribute_value_names_node():
    text = _with("nodes.1.attrs", {"act_type": "relu", "__dtype__": "x"})
    g = symbol.loads(text)
    with pytest.raises(SymbolFormatError, match="'act'"):
        g.nodes[1].attr().integer("__dtype__")


def test_variable_attributes():
    doc = _valid()
    doc["nodes"][0]["attrs"] = {"__shape__": "(64, 0, 7, 7)", "__dtype__": "2", "__init__": "zeros"}
    g = symbol.loads(json.dumps(doc))
    assert g.nodes[0].shape == (64, 0, 7, 7)
    assert g.nodes[0].dtype == "float16"


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_json_never_crashes(data):  # type: ignore[no-untyped-def]
    raw = bytearray(json.dumps(_valid()).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.sampled_from(b'0123456789[]{},:"-ae \xff'))
    try:
        symbol.loads(bytes(raw))
    except SymbolFormatError:
        pass


@pytest.mark.torch
def test_op_support_and_unsupported_report():
    pytest.importorskip("torch")
    import mxparams.torch as mxt

    doc = _valid()
    doc["nodes"] += [
        {"op": "_contrib_box_nms", "name": "nms0", "inputs": [[1, 0, 0]]},
        {"op": "_contrib_box_nms", "name": "nms1", "inputs": [[2, 0, 0]]},
        {
            "op": "Pooling",
            "name": "pool0",
            "attrs": {"kernel": "(2, 2)", "layout": "NHWC"},
            "inputs": [[3, 0, 0]],
        },
    ]
    doc["heads"] = [[4, 0, 0]]
    del doc["node_row_ptr"]
    text = json.dumps(doc)
    rows = ops_torch.op_support(text)
    assert [(r["op"], r["count"], r["first_node"], r["supported"]) for r in rows] == [
        ("Activation", 1, "act", True),
        ("_contrib_box_nms", 2, "nms0", False),
        ("Pooling", 1, "pool0", False),
    ]
    with pytest.raises(symbol.UnsupportedOpError) as info:
        mxt.import_model(text, "/nonexistent/params-are-not-read-first.params")
    report = info.value.report
    assert [(r["op"], r["count"], r["first_node"]) for r in report] == [
        ("_contrib_box_nms", 2, "nms0"),
        ("Pooling", 1, "pool0"),
    ]
    assert "NHWC" in report[1]["reason"]
    assert isinstance(info.value, ValueError)
