"""Pickling, copy.copy and copy.deepcopy of Parameter, Constant and ParameterDict,
checked against MXNet 1.9.1 (which copies them through their ``__dict__``)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import mxparams as mp
import numpy as np
import pytest

# Run as written under MXNet (G = mx.gluon, C = mx.cpu, I = mx.init) and
# under mxparams (G = mp, C = mp.cpu, I = mp.init); ``result`` is compared.
SCENARIO = """
import copy, pickle
ways = {
    'pickle': lambda x: pickle.loads(pickle.dumps(x)),
    'copy': copy.copy,
    'deepcopy': copy.deepcopy,
}
def values(arrays):
    return [a.asnumpy().tolist() for a in arrays]
def builtin(e):
    # mxparams' errors subclass MXParamsError and the builtin MXNet raises.
    return next(c for c in type(e).__mro__ if c.__module__ == "builtins").__name__

def describe(p):
    d = {'type': type(p).__name__, 'name': p.name, 'shape': list(p.shape or ()),
         'dtype': np.dtype(p.dtype).name, 'grad_req': p.grad_req, 'lr_mult': p.lr_mult,
         'wd_mult': p.wd_mult,
         'init': p.init.rsplit('_', 1)[0] if isinstance(p.init, str) else type(p.init).__name__}
    try:
        d['data'] = values(p.list_data())
        d['ctx'] = [str(c) for c in p.list_ctx()]
    except Exception as e:
        d['data'] = builtin(e)
    try:
        d['grad'] = values(p.list_grad())
    except Exception as e:
        d['grad'] = builtin(e)
    return d
out = {}
p = G.Parameter('w', shape=(2, 2), lr_mult=2.0, wd_mult=0.5, init='ones', grad_req='add')
for way, f in ways.items():
    out['uninit ' + way] = describe(f(p))
p.initialize(ctx=[C(0), C(1)])
p.list_grad()[0][:] = 3
p.list_data()[1][:] = 5
for way, f in ways.items():
    q = f(p)
    out['init ' + way] = describe(q)
    q.data(C(0))[:] = 7
    q.grad(C(0))[:] = 9
    q.lr_mult = 4.0
    q.grad_req = 'null'
    out['after ' + way] = describe(p)
    p.data(C(0))[:] = 1
    p.grad(C(0))[:] = 3
n = G.Parameter('n', shape=(3,), grad_req='null', dtype='float16')
n.initialize(init=I.Constant(2.0))
for way, f in ways.items():
    out['null ' + way] = describe(f(n))
d = G.Parameter('d', shape=(0, 3), allow_deferred_init=True)
d.initialize(init=I.Constant(4.0), ctx=C(0))
for way, f in ways.items():
    q = f(d)
    q.shape = (2, 3)
    q._finish_deferred_init()
    out['deferred ' + way] = [describe(q), describe(d), list(d.shape)]
c = G.Constant('c', [1.0, 2.0])
c.initialize()
for way, f in ways.items():
    q = f(c)
    out['const ' + way] = [describe(q), q.value.asnumpy().tolist(), q.init == c.init]
pd = G.ParameterDict('net_')
a = pd.get('a', shape=(2,))
pd.get('b', shape=(1,), init=I.Zero())
pd.initialize(I.One())
child = G.ParameterDict('net_', shared=pd)
child.get('a')
for way, f in ways.items():
    q = f(pd)
    r = f(child)
    both = f([pd, a])
    q.get('extra', shape=(1,))
    out['dict ' + way] = {
        'type': type(q).__name__, 'prefix': q.prefix, 'keys': list(q.keys()),
        'same params': q['net_a'] is a, 'original keys': list(pd.keys()),
        'values': [describe(v) for v in q.values()],
        'child keys': list(r.keys()), 'child shared keys': list(r._shared.keys()),
        'child shares a': r['net_a'] is r._shared['net_a'],
        'identity kept': both[0]['net_a'] is both[1],
    }
    if 'net_extra' in pd._params:
        del pd._params['net_extra']
result = out
"""


@pytest.mark.mxnet
def test_copies_match_mxnet(mxnet: Any) -> None:
    expected = mxnet("G = mx.gluon\nC = mx.cpu\nI = mx.init\n" + SCENARIO)
    ns: dict[str, Any] = {"G": mp, "C": mp.cpu, "I": mp.init, "np": np}
    exec(SCENARIO, ns)
    assert ns["result"] == expected


def test_deepcopy_and_pickle_keep_dtype_contexts_and_independence() -> None:
    p = mp.Parameter("w", shape=(2, 3), dtype="bfloat16")
    p.initialize(init=mp.init.Uniform(), ctx=[mp.cpu(0), mp.cpu(2)])
    for q in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert q.dtype == p.dtype and q.list_ctx() == p.list_ctx()
        np.testing.assert_array_equal(q.data(mp.cpu(2)).asnumpy(), p.data(mp.cpu(2)).asnumpy())
        q.data(mp.cpu(0))[:] = 0
        assert (p.data(mp.cpu(0)).asnumpy() != 0).any()
    shallow = copy.copy(p)
    assert shallow is not p and shallow.data() is not p.data()
    shallow.data()[:] = 0
    assert (p.data().asnumpy() == 0).all()


def test_copied_dict_is_usable() -> None:
    pd = mp.ParameterDict("n_")
    pd.get("w", shape=(2,))
    pd.initialize(mp.init.One())
    q = copy.deepcopy(pd)
    q.zero_grad()
    q.reset_ctx(mp.cpu(1))
    assert q.list_ctx() == [mp.cpu(1)] and pd.list_ctx() == [mp.cpu(0)]
    assert q.get("w") is q["n_w"] and q.get("w") is not pd.get("w")
