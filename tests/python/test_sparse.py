"""Sparse arrays and gradients without the oracle: shared structure, classes,
the PyTorch adapter's sparse gradients (checked against MXNet's embedding in
test_sparse_mxnet.py), and the errors of unsupported assignments."""

from __future__ import annotations

from pathlib import Path

import mxparams as mp
import numpy as np
import pytest
from mxparams import nd


def test_sparse_classes_are_ndarray_subclasses() -> None:
    rs = nd.zeros((3, 2), stype="row_sparse")
    csr = nd.zeros((3, 2), stype="csr")
    dense = nd.zeros((3, 2))
    assert issubclass(nd.sparse.RowSparseNDArray, nd.NDArray)
    assert issubclass(nd.sparse.CSRNDArray, nd.sparse.BaseSparseNDArray)
    assert isinstance(rs, nd.sparse.RowSparseNDArray) and isinstance(rs, nd.NDArray)
    assert not isinstance(rs, nd.sparse.CSRNDArray)
    assert isinstance(csr, nd.sparse.CSRNDArray) and isinstance(csr, nd.sparse.BaseSparseNDArray)
    assert not isinstance(dense, nd.sparse.BaseSparseNDArray)


def test_assignment_is_seen_by_every_handle_of_a_gradient() -> None:
    pd = mp.ParameterDict()
    p = pd.get("w", shape=(4, 2), grad_stype="row_sparse")
    pd.initialize()
    g = p.grad()
    g[:] = np.array([[0, 0], [1, 2], [0, 0], [3, 4]], dtype=np.float32)
    assert p.list_grad()[0].indices.asnumpy().tolist() == [1, 3]
    assert g.data.asnumpy().tolist() == [[1, 2], [3, 4]]
    p.zero_grad()
    assert g.indices.asnumpy().tolist() == [] and g.asnumpy().sum() == 0


def test_sparse_destination_never_shares_memory_with_its_source() -> None:
    src = nd.array([[1, 2], [0, 0], [3, 4]]).tostype("row_sparse")
    dst = src.copyto(nd.zeros((3, 2), stype="row_sparse"))
    np.asarray(src.data)[0, 0] = 100
    assert dst.data.asnumpy()[0, 0] == 1


def test_partial_assignment_to_sparse_arrays_is_refused() -> None:
    rs = nd.zeros((3, 2), stype="row_sparse")
    with pytest.raises(ValueError, match="full-slice"):
        rs[1] = 2
    with pytest.raises(ValueError, match="shape"):
        rs[:] = nd.zeros((2, 2))


def test_sparse_parameter_save_load_round_trip(tmp_path: Path) -> None:
    pd = mp.ParameterDict()
    w = pd.get("w", shape=(4, 2), stype="row_sparse", init=mp.init.Constant(2))
    pd.initialize(ctx=[mp.cpu(0), mp.cpu(1)])
    pd.save(tmp_path / "p.params")
    back = nd.load(tmp_path / "p.params")
    assert isinstance(back, dict) and back["w"].stype == "row_sparse"
    assert back["w"].indices.asnumpy().tolist() == [0, 1, 2, 3]
    q = mp.ParameterDict()
    w2 = q.get("w", shape=(4, 2), stype="row_sparse")
    q.load(tmp_path / "p.params", ctx=[mp.cpu(0), mp.cpu(1)])
    for a, b in zip(
        w.list_row_sparse_data(nd.array([1, 3])),
        w2.list_row_sparse_data(nd.array([3, 1])),
        strict=True,
    ):
        assert a.stype == b.stype == "row_sparse" and a.context == b.context
        assert a.indices.asnumpy().tolist() == b.indices.asnumpy().tolist() == [1, 3]
        assert a.data.asnumpy().tolist() == b.data.asnumpy().tolist()


def test_row_sparse_data_leaves_the_local_copy_whole() -> None:
    pd = mp.ParameterDict()
    w = pd.get("w", shape=(4, 2), stype="row_sparse", init=mp.init.One())
    pd.initialize()
    assert w.row_sparse_data(nd.array([2])).indices.asnumpy().tolist() == [2]
    assert w._reduce().indices.asnumpy().tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="out of range"):
        w.row_sparse_data(nd.array([4]))
    with pytest.raises(RuntimeError, match="not initialized on context"):
        w.row_sparse_data(nd.array([1], ctx=mp.cpu(3)))


torch = pytest.importorskip("torch")


@pytest.mark.torch
def test_torch_embedding_gradient_lands_as_row_sparse() -> None:
    import mxparams.torch as mt

    pd = mp.ParameterDict()
    p = pd.get("emb", shape=(5, 3), grad_stype="row_sparse")
    pd.initialize(mp.init.One())
    t = mt.tensor(p)
    torch.nn.functional.embedding(torch.tensor([3, 1, 3]), t, sparse=True).sum().backward()
    g = p.grad()
    assert g.stype == "row_sparse"
    assert g.indices.asnumpy().tolist() == [1, 3]
    assert g.data.asnumpy().tolist() == [[1, 1, 1], [2, 2, 2]]
    # 'write' overwrites with the next pass's rows.
    torch.nn.functional.embedding(torch.tensor([0]), t, sparse=True).sum().backward()
    assert g.indices.asnumpy().tolist() == [0]


@pytest.mark.torch
def test_torch_sparse_gradients_accumulate_under_add() -> None:
    import mxparams.torch as mt

    pd = mp.ParameterDict()
    p = pd.get("emb", shape=(5, 3), grad_stype="row_sparse", grad_req="add")
    pd.initialize(mp.init.One())
    t = mt.tensor(p)
    torch.nn.functional.embedding(torch.tensor([0, 1]), t, sparse=True).sum().backward()
    torch.nn.functional.embedding(torch.tensor([1]), t, sparse=True).sum().backward()
    g = p.grad()
    assert g.indices.asnumpy().tolist() == [0, 1]
    assert g.data.asnumpy().tolist() == [[1, 1, 1], [2, 2, 2]]
    # A dense torch gradient into a row_sparse buffer keeps its non-zero rows.
    (t[4] * 3).sum().backward()
    assert g.indices.asnumpy().tolist() == [0, 1, 4]
    assert g.data.asnumpy()[2].tolist() == [3, 3, 3]
    p.zero_grad()
    assert g.indices.asnumpy().tolist() == []
    with mp.autograd.pause():
        torch.nn.functional.embedding(torch.tensor([2]), t, sparse=True).sum().backward()
    assert g.indices.asnumpy().tolist() == []


def test_memory_mapped_sparse_arrays_are_read_only(tmp_path: Path) -> None:
    f = tmp_path / "s.params"
    nd.save(f, [nd.array([[1, 2], [0, 0]]).tostype("row_sparse")])
    (m,) = nd.load(f, mmap=True)
    assert m.readonly and m.stype == "row_sparse"
    with pytest.raises(ValueError, match="read-only"):
        m[:] = 3
    copy = m.copyto(mp.cpu())
    assert not copy.readonly
    copy[:] = 3
    assert copy.indices.asnumpy().tolist() == [0, 1]
