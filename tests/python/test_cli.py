"""The ``mxparams`` command: golden output, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run
from mxparams import nd


@pytest.fixture
def small(tmp_path: Path) -> Path:
    p = tmp_path / "small.params"
    nd.save(
        p,
        {
            "w": nd.array(np.arange(6).reshape(2, 3), dtype="float32"),
            "h": nd.array([1, 2], dtype="float16"),
            "i": nd.array([7], dtype="int64"),
        },
    )
    return p


def test_inspect_table_golden(small: Path) -> None:
    r = run("inspect", str(small))
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        f"{small}: params V2, 3 arrays, 36 B\n"
        "name  shape   dtype    stype    bytes  offset\n"
        "w     (2, 3)  float32  default     24      64\n"
        "h     (2,)    float16  default      4     120\n"
        "i     (1,)    int64    default      8     156\n"
    )


def test_inspect_json_and_stats(small: Path) -> None:
    r = run("inspect", "--json", "--stats", str(small))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["format"] == "params" and doc["version"] == "V2" and doc["nbytes"] == 36
    w = doc["arrays"][0]
    assert {k: w[k] for k in ("name", "shape", "dtype", "stype", "nbytes", "offset")} == {
        "name": "w",
        "shape": [2, 3],
        "dtype": "float32",
        "stype": "default",
        "nbytes": 24,
        "offset": 64,
    }
    s = w["stats"]
    assert (s["min"], s["max"], s["mean"], s["nan"], s["inf"]) == (0.0, 5.0, 2.5, 0, 0)
    assert s["std"] == pytest.approx(np.arange(6).std())


@pytest.mark.parametrize("ext", ["safetensors", "params", "npz"])
def test_convert_round_trip_and_diff(small: Path, tmp_path: Path, ext: str) -> None:
    dst = tmp_path / f"out.{ext}"
    r = run("convert", str(small), str(dst))
    assert r.returncode == 0, r.stderr
    assert "read back and identical" in r.stdout
    r = run("diff", str(small), str(dst))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("equal: 3 common")


def test_diff_reports_changes_with_exit_1(small: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.safetensors"
    nd.save(
        other,
        {
            "w": nd.array(np.arange(6).reshape(2, 3) + 0.5, dtype="float32"),
            "h": nd.array([1, 2, 3], dtype="float16"),
            "j": nd.array([0], dtype="int64"),
        },
    )
    r = run("diff", str(small), str(other))
    assert r.returncode == 1
    assert r.stdout == (
        "only in A: i\n"
        "only in B: j\n"
        "name  change              max_abs  max_rel\n"
        "w     values                  0.5        1\n"
        "h     shape (2,) -> (3,)      nan      nan\n"
        "different: 2 common, 2 differ, 1 only in A, 1 only in B (rtol=0.00001, atol=0.00000001)\n"
    )
    doc = json.loads(run("diff", "--json", "--atol", "1", str(small), str(other)).stdout)
    assert doc["only_a"] == ["i"] and doc["only_b"] == ["j"] and doc["equal"] is False
    assert [t["equal"] for t in doc["tensors"]] == [True, False]


def test_verify_reports_nonfinite(tmp_path: Path) -> None:
    p = tmp_path / "nan.params"
    nd.save(p, {"a": nd.array([1.0, np.nan, np.inf, np.inf])})
    r = run("verify", str(p))
    assert r.returncode == 0, r.stderr
    assert "structure OK" in r.stdout and "non-finite: a: 1 NaN, 2 Inf" in r.stdout
    doc = json.loads(run("verify", "--json", str(p)).stdout)
    assert doc["nonfinite"] == [{"name": "a", "nan": 1, "inf": 2}]


def test_renaming_and_collisions(small: Path, tmp_path: Path) -> None:
    dst = tmp_path / "r.safetensors"
    r = run("convert", str(small), str(dst), "--add-prefix", "net.", "--names", "h=half")
    assert r.returncode == 0, r.stderr
    assert sorted(nd.load(dst)) == ["net.half", "net.i", "net.w"]
    r = run("convert", str(small), str(tmp_path / "c.params"), "--names", "w|h=x")
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == (
        'mxparams: error: name collision after renaming: "w" and "h" both become "x"\n'
    )


def test_bad_inputs_give_one_line(tmp_path: Path, small: Path) -> None:
    txt = tmp_path / "notes.params"
    txt.write_text("hello, this is not a checkpoint\n")
    r = run("inspect", str(txt))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"mxparams: error: {txt}: malformed .params data at byte offset 0")
    cut = tmp_path / "cut.params"
    cut.write_bytes(small.read_bytes()[:100])
    r = run("verify", str(cut))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "byte offset" in r.stderr
    r = run("inspect", str(tmp_path / "missing.params"))
    assert r.returncode == 2 and "No such file" in r.stderr
    r = run("convert", str(small), str(tmp_path / "x.unknown"))
    assert r.returncode == 2 and "--format" in r.stderr
    r = run("inspect", str(tmp_path / "model-symbol.json"))
    assert r.returncode == 2 and "symbol" in r.stderr
    assert run("frobnicate").returncode == 2


@pytest.mark.torch
def test_torch_files(small: Path, tmp_path: Path) -> None:
    import torch

    pt = tmp_path / "m.pt"
    assert run("convert", str(small), str(pt)).returncode == 0
    sd = torch.load(pt, weights_only=True)
    assert sd["h"].dtype == torch.float16 and sd["i"].dtype == torch.int64
    back = tmp_path / "back.params"
    assert run("convert", str(pt), str(back)).returncode == 0
    assert small.read_bytes() == back.read_bytes()
