"""Sparse arrays and parameters beside MXNet 1.9.1 (issue 11).

The cases are one script, run under MXNet in the oracle venv and under
mxparams here; each case records the storage type, class, context, dtype,
indices, indptr, stored values and dense values of what it produced (or the
exception class it raised), and the two records must be equal. Random
initializers record the structure only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mxparams as mp
import numpy as np
import pytest
from mxparams import nd

pytestmark = pytest.mark.mxnet

CASES = """
def describe(a, values=True):
    d = {
        "stype": a.stype,
        "rs_class": isinstance(a, nd.sparse.RowSparseNDArray),
        "csr_class": isinstance(a, nd.sparse.CSRNDArray),
        "ndarray": isinstance(a, nd.NDArray),
        "ctx": str(a.context),
        "dtype": np.dtype(a.dtype).name,
        "shape": list(a.shape),
    }
    if a.stype != "default":
        d["indices"] = a.indices.asnumpy().tolist()
        d["data_shape"] = list(a.data.shape)
        if values:
            d["data"] = a.data.asnumpy().astype("float64").tolist()
    if a.stype == "csr":
        d["indptr"] = a.indptr.asnumpy().tolist()
    if values:
        d["dense"] = a.asnumpy().astype("float64").tolist()
    return d

def case(name, f, values=True):
    try:
        result[name] = describe(f(), values)
    except Exception as e:
        # The builtin type (mxparams' errors subclass MXParamsError and the builtin).
        builtin = next(c for c in type(e).__mro__ if c.__module__ == "builtins")
        result[name] = {"raises": builtin.__name__}

def assigned(a, v):
    a[:] = v
    return a

def initialized(ini, stype, name="weight"):
    a = nd.zeros((3, 2), stype=stype)
    ini(init.InitDesc(name), a)
    return a

result = {}
M = [[1, 2], [0, 0], [3, 4]]
d = nd.array(M)
rs = lambda: nd.zeros((3, 2), stype="row_sparse")
csr = lambda: nd.zeros((3, 2), stype="csr")

# 3. arr[:] = value
for kind, make in (("rs", rs), ("csr", csr)):
    case(f"{kind}[:]=2", lambda: assigned(make(), 2))
    case(f"{kind}[:]=0", lambda: assigned(make(), 0))
    case(f"{kind}[:]=np", lambda: assigned(make(), np.array(M, dtype="float32")))
    case(f"{kind}[:]=nd", lambda: assigned(make(), nd.array(M)))
    case(f"{kind}[:]=rs", lambda: assigned(make(), nd.array(M).tostype("row_sparse")))
    case(f"{kind}[:]=csr", lambda: assigned(make(), nd.array(M).tostype("csr")))

# 4. copyto into sparse destinations
case("dense->rs", lambda: d.copyto(rs()))
case("dense->csr", lambda: d.copyto(csr()))
case("rs->rs", lambda: assigned(rs(), d).copyto(rs()))
case("csr->csr", lambda: assigned(csr(), d).copyto(csr()))
case("rs->csr", lambda: assigned(rs(), d).copyto(csr()))
case("csr->rs", lambda: assigned(csr(), d).copyto(rs()))
case("rs->dense", lambda: assigned(rs(), d).copyto(nd.zeros((3, 2))))
rs64 = lambda: nd.zeros((3, 2), stype="row_sparse", dtype="float64")
case("rs->rs f64", lambda: assigned(rs(), d).copyto(rs64()))
case("rs overwritten", lambda: assigned(assigned(rs(), 7), d))
case("dense.tostype(rs)", lambda: d.tostype("row_sparse"))
case("dense.tostype(csr)", lambda: d.tostype("csr"))

# 5. copyto(ctx), as_in_context, nd.array keep the storage type
for kind, make in (("rs", rs), ("csr", csr)):
    case(f"{kind}.copyto(cpu1)", lambda: assigned(make(), d).copyto(mx_cpu(1)))
    case(f"{kind}.as_in_context(cpu1)", lambda: assigned(make(), d).as_in_context(mx_cpu(1)))
    case(f"nd.array({kind})", lambda: nd.array(assigned(make(), d)))
    case(f"nd.array({kind}, f64)", lambda: nd.array(assigned(make(), d), dtype="float64"))

# 6. empty with stype
case("empty rs", lambda: nd.empty((3, 2), stype="row_sparse"))
case("empty rs 1-d", lambda: nd.empty((4,), stype="row_sparse"))
case("empty csr", lambda: nd.empty((3, 2), stype="csr"))
case("empty default", lambda: nd.empty((3, 2), stype="default"), values=False)

# 2. initializers fill sparse arrays
for stype in ("row_sparse", "csr"):
    case(f"Constant(2) {stype}", lambda: initialized(init.Constant(2), stype))
    case(f"Zero {stype}", lambda: initialized(init.Zero(), stype))
    case(f"One {stype}", lambda: initialized(init.One(), stype))
    case(f"bias {stype}", lambda: initialized(init.Uniform(), stype, "bias"))
    case(f"Constant(array) {stype}", lambda: initialized(init.Constant(np.array(M)), stype))
    # Random draws that are all zero: row_sparse still stores every row.
    case(f"Uniform(0) {stype}", lambda: initialized(init.Uniform(0), stype))
    for ini in ("Uniform", "Normal", "Xavier", "Orthogonal", "MSRAPrelu"):
        case(f"{ini} {stype}", lambda: initialized(getattr(init, ini)(), stype), values=False)

# 1. grad_stype, 9. row_sparse_data, zero_grad
pd = new_param_dict()
w = pd.get("w", shape=(4, 2), stype="row_sparse", grad_stype="row_sparse", init=init.Constant(3))
g2 = pd.get("g2", shape=(4, 2), grad_stype="csr")
g3 = pd.get("g3", shape=(4, 2), grad_stype="row_sparse")
pd.initialize(ctx=[mx_cpu(0), mx_cpu(1)])
attach_trainer(pd)
case("w grad", lambda: w.grad(mx_cpu(0)))
case("w list_grad[1]", lambda: w.list_grad()[1])
case("g2 grad", lambda: g2.grad(mx_cpu(1)))
case("g3 grad", lambda: g3.grad(mx_cpu(0)))
case("g3 data", lambda: g3.data(mx_cpu(0)), values=False)
case("w data", lambda: w.data(mx_cpu(0)))
case("w row_sparse_data", lambda: w.row_sparse_data(nd.array([2, 0, 2], ctx=mx_cpu(1))))
case("w row_sparse_data int64", lambda: w.row_sparse_data(nd.array([3], dtype="int64")))
case("w list_row_sparse_data[1]", lambda: w.list_row_sparse_data(nd.array([1]))[1])
case("w row_sparse_data list", lambda: w.row_sparse_data([1]))
case("w list_row_sparse_data list", lambda: w.list_row_sparse_data([1]))
case("g3 row_sparse_data", lambda: g3.row_sparse_data(nd.array([1])))
result["list_row_sparse_data len"] = len(w.list_row_sparse_data(nd.array([1])))
case("w grad[:]=5", lambda: assigned(w.grad(mx_cpu(0)), 5))
w.zero_grad()
case("w grad zeroed", lambda: w.grad(mx_cpu(0)))

# 10. b[0] = np.array([x])
b = nd.zeros((3,))
case("b[0]=np.array([x])", lambda: assigned_at(b, 0, np.array([5.0])))
case("b[0]=np.array([[x]])", lambda: assigned_at(nd.zeros((3,)), 0, np.array([[6.0]])))
case("b[0]=nd.array([x])", lambda: assigned_at(nd.zeros((3,)), 0, nd.array([7.0])))
case("b2[0,1]=np.array([x])", lambda: assigned_at(nd.zeros((2, 3)), (0, 1), np.array([8.0])))
case("b2[0]=np.array([x])", lambda: assigned_at(nd.zeros((2, 3)), 0, np.array([9.0])))
case("b[0]=two values", lambda: assigned_at(nd.zeros((3,)), 0, np.array([1.0, 2.0])))
"""

PRELUDE_MXNET = """
from mxnet import nd, init, gluon
mx_cpu = mx.cpu
def new_param_dict():
    return gluon.ParameterDict()
def attach_trainer(pd):
    # MXNet's row_sparse_data pulls through a Trainer's kvstore.
    gluon.Trainer(pd, "sgd")
def assigned_at(a, key, v):
    a[key] = v
    return a
"""


def _mxparams_globals() -> dict[str, Any]:
    def assigned_at(a: Any, key: Any, v: Any) -> Any:
        a[key] = v
        return a

    return {
        "np": np,
        "nd": nd,
        "init": mp.init,
        "mx_cpu": mp.cpu,
        "new_param_dict": mp.ParameterDict,
        "attach_trainer": lambda pd: None,
        "assigned_at": assigned_at,
    }


@pytest.fixture(scope="module")
def expected(mxnet: Any) -> dict[str, Any]:
    out: dict[str, Any] = mxnet(PRELUDE_MXNET + CASES)
    return out


@pytest.fixture(scope="module")
def ours() -> dict[str, Any]:
    scope = _mxparams_globals()
    exec(CASES, scope)  # the same script MXNet ran
    # JSON round trip: the oracle's results come back through JSON too.
    out: dict[str, Any] = json.loads(json.dumps(scope["result"]))
    return out


def _check(expected: dict[str, Any], ours: dict[str, Any], names: list[str]) -> None:
    assert names
    for name in names:
        assert ours[name] == expected[name], name


def test_setitem_on_sparse_arrays(expected: dict[str, Any], ours: dict[str, Any]) -> None:
    _check(expected, ours, [k for k in ours if "[:]=" in k])


def test_copyto_into_sparse_destinations(expected: dict[str, Any], ours: dict[str, Any]) -> None:
    _check(expected, ours, [k for k in ours if "->" in k or "tostype" in k] + ["rs overwritten"])


def test_copies_keep_storage_type(expected: dict[str, Any], ours: dict[str, Any]) -> None:
    _check(
        expected,
        ours,
        [k for k in ours if ".copyto(cpu1)" in k or "as_in_context" in k or "nd.array(" in k],
    )


def test_empty_with_stype(expected: dict[str, Any], ours: dict[str, Any]) -> None:
    _check(expected, ours, [k for k in ours if k.startswith("empty")])


def test_initializers_fill_sparse_arrays(expected: dict[str, Any], ours: dict[str, Any]) -> None:
    inits = ("Constant", "Zero", "One", "bias", "Uniform", "Normal", "Xavier", "Orthogonal", "MSRA")
    _check(expected, ours, [k for k in ours if k.startswith(inits)])
    assert ours["Constant(2) row_sparse"]["indices"] == [0, 1, 2]


def test_grad_stype_and_row_sparse_data(expected: dict[str, Any], ours: dict[str, Any]) -> None:
    names = [k for k in ours if k.split(" ")[0] in ("w", "g2", "g3", "list_row_sparse_data")]
    _check(expected, ours, names)
    assert ours["w grad"]["stype"] == "row_sparse" and ours["g2 grad"]["stype"] == "csr"


def test_setitem_of_size_one_arrays(expected: dict[str, Any], ours: dict[str, Any]) -> None:
    _check(expected, ours, [k for k in ours if k.startswith(("b[", "b2["))])


SAVE_MXNET = """
from mxnet import gluon, init
pd = gluon.ParameterDict()
w = pd.get("w", shape=(4, 2), stype="row_sparse", init=init.Constant(3))
pd.get("b", shape=(2,), init=init.One())
pd.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
gluon.Trainer(pd, "sgd")  # MXNet's _reduce of a row_sparse parameter needs one
pd.save(mine)
back = mx.nd.load(ours)
q = gluon.ParameterDict()
q.get("w", shape=(4, 2), stype="row_sparse")
q.get("b", shape=(2,))
q.load(ours, ctx=mx.cpu())
gluon.Trainer(q, "sgd")
r = q["w"].row_sparse_data(mx.nd.arange(4))
result = {
    "stype": back["w"].stype,
    "indices": back["w"].indices.asnumpy().tolist(),
    "data": back["w"].data.asnumpy().tolist(),
    "param_stype": q["w"]._data[0].stype,
    "param_rows": r.data.asnumpy().tolist(),
}
"""


def _param_dict() -> mp.ParameterDict:
    pd = mp.ParameterDict()
    pd.get("w", shape=(4, 2), stype="row_sparse", init=mp.init.Constant(3))
    pd.get("b", shape=(2,), init=mp.init.One())
    pd.initialize(ctx=[mp.cpu(0), mp.cpu(1)])
    return pd


def test_param_dict_save_writes_row_sparse(tmp_path: Path, mxnet: Any) -> None:
    mine, ours = tmp_path / "mxnet.params", tmp_path / "ours.params"
    _param_dict().save(ours)
    got = mxnet(SAVE_MXNET, mine=str(mine), ours=str(ours))
    assert got == {
        "stype": "row_sparse",
        "indices": [0, 1, 2, 3],
        "data": [[3.0, 3.0]] * 4,
        "param_stype": "row_sparse",
        "param_rows": [[3.0, 3.0]] * 4,
    }
    a, b = bytearray(mine.read_bytes()), bytearray(ours.read_bytes())
    # MXNet records a stale storage shape, (0, 2) (docs/params-format.md); the
    # real one, (4, 2), is the only difference. Its first dim is at 0x24.
    assert a[0x1C:0x20] == b[0x1C:0x20] == (1).to_bytes(4, "little")  # row_sparse
    assert int.from_bytes(b[0x24:0x2C], "little") == 4
    a[0x24:0x2C] = b[0x24:0x2C]
    assert a == b
    # Loading MXNet's file restores the storage type.
    q = mp.ParameterDict()
    w = q.get("w", shape=(4, 2), stype="row_sparse")
    q.get("b", shape=(2,))
    q.load(mine, ctx=mp.cpu())
    rows = w.row_sparse_data(nd.array([0, 1, 2, 3]))
    assert rows.stype == "row_sparse" and rows.indices.asnumpy().tolist() == [0, 1, 2, 3]
    assert rows.data.asnumpy().tolist() == [[3.0, 3.0]] * 4
    loaded = nd.load(mine)
    assert isinstance(loaded, dict) and loaded["w"].stype == "row_sparse"
    # A dense parameter loading the row_sparse record gets the dense values, as in MXNet.
    dense = mp.ParameterDict()
    dw = dense.get("w", shape=(4, 2))
    dense.get("b", shape=(2,))
    dense.load(mine, ctx=mp.cpu())
    assert dw.data().stype == "default" and dw.data().asnumpy().tolist() == [[3.0, 3.0]] * 4


def test_both_sides_ran_the_same_cases(expected: dict[str, Any], ours: dict[str, Any]) -> None:
    assert sorted(ours) == sorted(expected)


EMBEDDING_MXNET = """
from mxnet import gluon, autograd
emb = gluon.nn.Embedding(5, 3, sparse_grad=True)
emb.initialize(mx.init.One())
with autograd.record():
    out = emb(mx.nd.array([3, 1, 3])).sum()
out.backward()
g = emb.weight.grad()
result = {
    "grad_stype": emb.weight._grad_stype,
    "stype": g.stype,
    "indices": g.indices.asnumpy().tolist(),
    "data": g.data.asnumpy().tolist(),
}
"""


@pytest.mark.torch
def test_torch_embedding_gradient_matches_mxnet_embedding(mxnet: Any) -> None:
    torch = pytest.importorskip("torch")
    import mxparams.torch as mt

    pd = mp.ParameterDict()
    p = pd.get("weight", shape=(5, 3), grad_stype="row_sparse")
    pd.initialize(mp.init.One())
    t = mt.tensor(p)
    torch.nn.functional.embedding(torch.tensor([3, 1, 3]), t, sparse=True).sum().backward()
    g = p.grad()
    ours = {
        "grad_stype": p._grad_stype,
        "stype": g.stype,
        "indices": g.indices.asnumpy().tolist(),
        "data": g.data.asnumpy().tolist(),
    }
    assert ours == mxnet(EMBEDDING_MXNET)
