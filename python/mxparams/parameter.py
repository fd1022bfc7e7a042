"""Gluon's ``Parameter``, ``Constant`` and ``ParameterDict`` (MXNet 1.9.1 semantics).

The state (per-context copies, gradients, the ``grad_req`` state machine, the
context map, deferred initialisation) lives in Rust (``_native.ParameterBase``);
``data()``/``grad()`` are answered there from a cache. A ``ParameterDict``'s
name -> parameter map, its lookup rules (``shared``, the attribute and shape
merge of ``get``, ``get_constant``'s comparison) and its bulk operations
(``initialize`` with built-in fills, ``zero_grad``, ``reset_ctx``, ``save``,
``load``) live in Rust too (``_native.ParameterDictCore``). This module adds
MXNet's loose signatures, the initializer calls, the attributes only Python
can hold (initializers, ``var()``) and copying/pickling.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from os import PathLike
from typing import Any, Union, cast

import numpy as np

import mxparams._native as _native

from . import autograd as _autograd
from . import init as _initmod
from . import nd as _nd
from . import random as _random
from ._errors import (
    DeferredInitializationError,
    MXParamsError,
    MXParamsTypeError,
    MXParamsValueError,
)
from ._native import NDArray
from .context import Context, current_context

__all__ = [
    "Constant",
    "DeferredInitializationError",
    "Parameter",
    "ParameterDict",
    "Variable",
]

CtxLike = Union[Context, "list[Context]", "tuple[Context, ...]", None]


def _norm_shape(shape: Any) -> tuple[int, ...] | None:
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    # -1 is MXNet's numpy-mode spelling of an unknown dim; 0 is ours.
    return tuple(0 if d == -1 else d for d in map(_nd._dim, shape))


def _brief_print_list(lst: Any, limit: int = 7) -> str:
    lst = list(lst)
    if len(lst) > limit:
        return (
            _brief_print_list(lst[: limit // 2], limit)
            + ", ..., "
            + _brief_print_list(lst[-limit // 2 :], limit)
        )
    return ", ".join(f"'{i}'" for i in lst)


def _indent(s: str, num_spaces: int) -> str:
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return "\n".join([lines[0]] + [(num_spaces * " ") + line for line in lines[1:]])


def _warn_initialized(name: str, stacklevel: int) -> None:
    """MXNet's warning for initializing an initialized parameter again."""
    warnings.warn(
        f"Parameter '{name}' is already initialized, ignoring. "
        "Set force_reinit=True to re-initialize.",
        stacklevel=stacklevel,
    )


class Variable:
    """A symbolic variable standing for a parameter (what ``Parameter.var()`` returns).

    ``attr(key)`` gives MXNet 1.9.1's string attributes (``'__shape__'``,
    ``'__dtype__'`` as the type flag, ``'__lr_mult__'``, ``'__wd_mult__'``,
    ``'__init__'``, ``'__storage_type__'``) and ``tojson()`` the symbol JSON
    MXNet writes for ``mx.sym.var``.
    """

    def __init__(
        self,
        name: str,
        shape: tuple[int, ...] | None,
        dtype: np.dtype[Any],
        lr_mult: Any,
        wd_mult: Any,
        init: Any,
        stype: str,
    ) -> None:
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.lr_mult = lr_mult
        self.wd_mult = wd_mult
        self.init = init
        self.stype = stype

    def list_attr(self) -> dict[str, str]:
        """The variable's attributes, as MXNet's ``Symbol.list_attr()``."""
        attrs: dict[str, str] = {}
        if self.shape is not None:
            attrs["__shape__"] = str(tuple(self.shape))
        attrs["__dtype__"] = str(_native.ParameterBase._dtype_flag(self.dtype))
        attrs["__lr_mult__"] = str(self.lr_mult)
        attrs["__wd_mult__"] = str(self.wd_mult)
        if self.init is not None:
            init = self.init
            attrs["__init__"] = init if isinstance(init, str) else init.dumps()
        attrs["__storage_type__"] = str({"default": 0, "row_sparse": 1, "csr": 2}[self.stype])
        attrs["lr_mult"] = attrs["__lr_mult__"]
        attrs["wd_mult"] = attrs["__wd_mult__"]
        return attrs

    def attr(self, key: str) -> str | None:
        """One string attribute, or None."""
        return self.list_attr().get(key)

    def tojson(self) -> str:
        """MXNet's symbol JSON for this variable (as ``mx.sym.var(...).tojson()`` writes it)."""
        attrs = {k: v for k, v in self.list_attr().items() if k.startswith("__")}
        body = ", \n".join(
            f"        {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(attrs.items())
        )
        return (
            "{\n"
            '  "nodes": [\n'
            "    {\n"
            '      "op": "null", \n'
            f'      "name": {json.dumps(self.name)}, \n'
            '      "attrs": {\n'
            f"{body}\n"
            "      }, \n"
            '      "inputs": []\n'
            "    }\n"
            "  ], \n"
            '  "arg_nodes": [0], \n'
            '  "node_row_ptr": [0, 1], \n'
            '  "heads": [[0, 0, 0]], \n'
            '  "attrs": {"mxnet_version": ["int", 10901]}\n'
            "}"
        )

    def __repr__(self) -> str:
        return f"<Symbol {self.name}>"


class Parameter(_native.ParameterBase):
    """A container holding a parameter (weight) with a copy per context.

    Parameters
    ----------
    name : str
        Name of this parameter.
    grad_req : {'write', 'add', 'null'}, default 'write'
        How gradients are written: overwrite, accumulate, or none (no buffers).
    shape : int or tuple of int, default None
        Shape; 0 marks a dimension that is not known yet.
    dtype : numpy.dtype or str, default 'float32'
        Data type.
    lr_mult, wd_mult : float, default 1.0
        Learning-rate and weight-decay multipliers.
    init : Initializer or str, default None
        This parameter's initializer (overrides a ``ParameterDict.initialize``
        default).
    allow_deferred_init : bool, default False
        Whether ``initialize`` may wait until the shape is known.
    differentiable : bool, default True
        False pins ``grad_req`` to ``'null'``.
    stype, grad_stype : {'default', 'row_sparse', 'csr'}
        Storage types of data and gradient.
    """

    def __init__(
        self,
        name: str,
        grad_req: str = "write",
        shape: int | tuple[int, ...] | None = None,
        dtype: Any = "float32",
        lr_mult: float = 1.0,
        wd_mult: float = 1.0,
        init: Any = None,
        allow_deferred_init: bool = False,
        differentiable: bool = True,
        stype: str = "default",
        grad_stype: str = "default",
    ) -> None:
        self._configure(
            grad_req=grad_req,
            shape=_norm_shape(shape),
            dtype="float32" if dtype is None else dtype,
            lr_mult=float(lr_mult),
            wd_mult=float(wd_mult),
            allow_deferred_init=allow_deferred_init,
            differentiable=differentiable,
            stype=stype,
            grad_stype=grad_stype,
        )
        self._lr_mult_obj = lr_mult
        self._wd_mult_obj = wd_mult
        self.init = init
        self._var: Variable | None = None
        self._trainer: Any = None

    def __repr__(self) -> str:
        return f"Parameter {self.name} (shape={self.shape}, dtype={self.dtype})"

    # -- copy, deepcopy, pickle ---------------------------------------------
    # As MXNet, whose Parameter is copied through its __dict__: a shallow copy
    # shares the data and gradient arrays, a deep copy or a pickle copies
    # them; every attribute (contexts, grad_req, a pending deferred
    # initialisation with its initializers, ...) is carried. The native state
    # travels as NDArray handles, so the copy module decides sharing.

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_parameter, (type(self), self.name), self.__getstate__())

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_native_state"] = self._native_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self._set_native_state(state.pop("_native_state"))
        self.__dict__.update(state)

    # -- attributes ---------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...] | None:
        """The shape; 0 marks an unknown dimension. Settable: unknown dims may
        be filled in, known ones never change (ValueError)."""
        return self._shape

    @shape.setter
    def shape(self, new_shape: Any) -> None:
        s = _norm_shape(new_shape)
        if s is None:
            raise MXParamsValueError(f"Cannot set the shape of Parameter '{self.name}' to None")
        self._set_shape(s)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The data type (a numpy dtype); setting it casts the values."""
        return self._np_dtype

    @dtype.setter
    def dtype(self, dtype: Any) -> None:
        self.cast(dtype)

    @property
    def grad_req(self) -> str:
        """``'write'``, ``'add'`` or ``'null'``. Entering 'null' frees the
        gradient buffers; leaving it allocates zeroed ones."""
        return self._get_grad_req

    @grad_req.setter
    def grad_req(self, req: str) -> None:
        old = self._get_grad_req
        self._set_grad_req(req)
        new = self._get_grad_req
        if old != new and _autograd.active_adapters():
            _autograd.notify_grad_req_change(self, old, new)
            _mark([self])

    @property
    def lr_mult(self) -> Any:
        """Learning-rate multiplier."""
        return self._lr_mult_obj

    @lr_mult.setter
    def lr_mult(self, value: Any) -> None:
        _native.ParameterBase.lr_mult.__set__(self, float(value))  # type: ignore[attr-defined]
        self._lr_mult_obj = value

    @property
    def wd_mult(self) -> Any:
        """Weight-decay multiplier."""
        return self._wd_mult_obj

    @wd_mult.setter
    def wd_mult(self, value: Any) -> None:
        _native.ParameterBase.wd_mult.__set__(self, float(value))  # type: ignore[attr-defined]
        self._wd_mult_obj = value

    # MXNet's private views, for code that peeks at them.
    @property
    def _data(self) -> list[NDArray] | None:
        return self.list_data() if self._is_initialized() else None

    @property
    def _grad(self) -> list[NDArray] | None:
        if not self._is_initialized() or self.grad_req == "null":
            return None
        return self.list_grad()

    @property
    def _ctx_list(self) -> list[Context] | None:
        return self.list_ctx() if self._is_initialized() else None

    # -- initialisation -----------------------------------------------------

    def initialize(
        self,
        init: Any = None,
        ctx: CtxLike = None,
        default_init: Any = _initmod.Uniform(),  # noqa: B008 - MXNet's signature
        force_reinit: bool = False,
    ) -> None:
        """Initializes data (and gradient) arrays on ``ctx``.

        Parameters
        ----------
        init : Initializer or str
            Overrides :py:attr:`Parameter.init` and ``default_init``.
        ctx : Context or list of Context, default current_context()
            One independent copy is made per context.
        default_init : Initializer
            Used when both ``init`` and ``Parameter.init`` are None.
        force_reinit : bool, default False
            Re-initialize an already initialised parameter.
        """
        self._initialize(init, ctx, default_init, force_reinit, True)
        _mark([self])

    def _initialize(
        self, init: Any, ctx: CtxLike, default_init: Any, force_reinit: bool, pause: bool
    ) -> None:
        if init is None:
            init = default_init if self.init is None else self.init
        spec = _initmod._fill_spec(init, default_init)
        if spec is not None and self._fast_init(ctx, init, default_init, force_reinit, spec):
            return
        state, arr = self._init_start(ctx, (init, default_init), force_reinit)
        if state == "initialized":
            _warn_initialized(self.name, stacklevel=4)
            return
        if arr is None:
            return  # deferred until the shape is known
        try:
            if pause:
                with _autograd.pause():
                    _fill(self.name, init, default_init, arr)
            else:
                _fill(self.name, init, default_init, arr)
            self._init_finish(arr)
        except BaseException:
            # As MXNet: a failed initialisation leaves the parameter
            # uninitialised, not deferred.
            self._take_deferred()
            raise

    def _fast_init(
        self,
        ctx: CtxLike,
        init: Any,
        default_init: Any,
        force_reinit: bool,
        spec: _native.FillSpec,
    ) -> bool:
        """Initializes through one native call for a built-in fill (see
        ``init._fill_spec``); False when the fill does not suit the parameter
        and the general path must run."""
        token = (init, default_init)
        try:
            state = _random._GENERATOR.draw_block(
                lambda seed, stream: self._init_fill(ctx, token, force_reinit, spec, (seed, stream))
            )
        except BaseException:
            if self._is_deferred() and self._shape is not None and 0 not in self._shape:
                self._take_deferred()  # failed after the request: uninitialised, as MXNet
            raise
        if state == "unsupported":
            return False
        if state == "initialized":
            _warn_initialized(self.name, stacklevel=5)
        return True

    def finish_deferred_init(self) -> None:
        """Completes a deferred initialisation once the shape is fully known
        (ValueError while it is not; a no-op when nothing is deferred)."""
        record = self._take_deferred()
        if record is None:
            return
        ctxs, data, token = record
        if data is None:
            try:
                data = self._zeros_host()
                init, default_init = token if token is not None else (None, _initmod.Uniform())
                with _autograd.pause():
                    _fill(self.name, init, default_init, data)
            except BaseException:
                self._restore_deferred(ctxs, None, token)
                raise
        self._init_impl(data, ctxs)
        _mark([self])

    _finish_deferred_init = finish_deferred_init

    def reset_ctx(self, ctx: CtxLike) -> None:
        """Re-assigns the parameter to other contexts, keeping its value."""
        self._reset_ctx(ctx)
        _mark([self])

    def set_data(self, data: Any) -> None:
        """Sets this parameter's value on all contexts."""
        if not isinstance(data, NDArray) and not (
            type(data) is np.ndarray and data.flags.c_contiguous
        ):
            data = _nd.array(data, dtype=self.dtype)
        self._set_data(data)

    def cast(self, dtype: Any) -> None:
        """Casts data and gradients to ``dtype``."""
        self._cast(dtype)
        _mark([self])

    def allreduce_grads(self) -> None:
        """Replaces the gradient on every context with the sum over all contexts
        (what a Trainer does before updating data-parallel copies)."""
        self._allreduce_grads()

    def var(self) -> Variable:
        """A symbolic variable for this parameter (cached)."""
        if self._var is None:
            self._var = Variable(
                self.name,
                self.shape,
                self.dtype,
                self.lr_mult,
                self.wd_mult,
                self.init,
                self._stype,
            )
        return self._var

    # Gluon calls this when a Trainer takes the parameter.
    def _set_trainer(self, trainer: Any) -> None:
        self._trainer = trainer

    # --- row_sparse parameters (see docs/api.md, "Sparse arrays") ---
    def row_sparse_data(self, row_id: NDArray) -> NDArray:
        """The rows ``row_id`` of the copy on ``row_id.context``, as a row_sparse
        array there. MXNet pulls them from its Trainer's kvstore into that copy;
        here they come from the local copy, which is left whole."""
        _check_row_sparse(self)
        ctx = row_id.context  # MXNet reads it before checking row_id's type
        return self._row_sparse_data(_row_ids(self, row_id), ctx)

    def list_row_sparse_data(self, row_id: NDArray) -> list[NDArray]:
        """``row_sparse_data`` for every context, in the order of ``list_ctx()``."""
        return self._list_row_sparse_data(_row_ids(self, row_id))


def _check_row_sparse(param: Parameter) -> None:
    if param._stype != "row_sparse":
        raise MXParamsError(
            f"Cannot return a copy of Parameter {param.name} via row_sparse_data() because "
            f"its storage type is {param._stype}. Please use data() instead."
        )


def _row_ids(param: Parameter, row_id: Any) -> list[int]:
    # MXNet checks the storage type first, then the argument's type.
    _check_row_sparse(param)
    if not isinstance(row_id, NDArray):
        raise MXParamsTypeError(f"row_id must have NDArray type, but {type(row_id)} is given")
    ids: list[int] = np.asarray(row_id).astype(np.int64).ravel().tolist()
    return ids


def _rebuild_parameter(cls: type[Parameter], name: str) -> Parameter:
    """An empty ``cls`` named ``name``, for ``__setstate__`` to fill (unpickling, copies)."""
    return cls.__new__(cls, name)


def _rebuild_dict(cls: type[ParameterDict]) -> ParameterDict:
    """An empty ``cls``, for ``__setstate__`` to fill (unpickling, deep copies)."""
    return cls.__new__(cls)


def _mark(params: Any) -> None:
    """Tells active autograd adapters about (re)allocated gradient buffers,
    as MXNet's ``_init_grad`` calls ``autograd.mark_variables``."""
    if not _autograd.active_adapters():
        return
    for p in params:
        # Sparse-stype data has no dense copies for adapters to view.
        if p._is_initialized() and p.grad_req != "null" and p._stype == "default":
            _autograd.mark_variables(p.list_data(), p.list_grad(), p.grad_req)


def _as_ndarray(data: Any) -> NDArray:
    return data if isinstance(data, NDArray) else _nd.array(data)


def _fill(name: str, init: Any, default_init: Any, arr: NDArray) -> None:
    """Runs MXNet's initializer protocol on ``arr``: the default initializer is
    called with ``InitDesc(name, {'__init__': init})``, so ``init`` decides.
    Plain callables (``init.Mixed``, ``init.Load``) get a bare ``InitDesc(name)``
    and apply their own rules."""
    if init is not None and not isinstance(init, (str, _initmod.Initializer)) and callable(init):
        init(_initmod.InitDesc(name), arr)
        return
    desc = _initmod.InitDesc(name, {"__init__": init})
    if isinstance(default_init, _initmod.Initializer):
        default_init(desc, arr)
    else:
        _initmod.create(init if default_init is None else default_init)(desc, arr)


class _ConstantInit(_initmod.Initializer):
    """Copies a Constant's value (what MXNet registers as ``Constant_<name>_<id>``)."""

    def __init__(self, value: NDArray) -> None:
        super().__init__()
        self._value = value

    def _init_weight(self, _: Any, arr: Any) -> None:
        arr[:] = self._value

    def _init_default(self, name: Any, arr: Any) -> None:
        self._init_weight(name, arr)

    def __call__(self, desc: Any, arr: Any) -> None:
        self._init_weight(desc, arr)


class Constant(Parameter):
    """A parameter with ``grad_req='null'`` holding a fixed value.

    Parameters
    ----------
    name : str
        Name of the parameter.
    value : array-like
        Initial value.
    """

    def __init__(self, name: str, value: Any) -> None:
        if not isinstance(value, NDArray):
            value = _nd.array(value)
        self.value = value
        # As MXNet: ``init`` is the name of an initializer registered for this
        # constant, so that ``init.create(c.init)`` and ``var()`` see a string.
        init_name = f"Constant_{name}_{id(self)}"
        klass = type(
            init_name,
            (_ConstantInit,),
            {"__init__": lambda obj: _ConstantInit.__init__(obj, value)},
        )
        _initmod._REGISTRY[init_name.lower()] = klass
        super().__init__(
            name,
            grad_req="null",
            shape=value.shape,
            dtype=value.dtype,
            init=init_name,
            differentiable=False,
        )
        self._configure_constant(value)

    def __repr__(self) -> str:
        return f"Constant {self.name} (shape={self.shape}, dtype={self.dtype})"

    @property
    def grad_req(self) -> str:
        """Always ``'null'``."""
        return "null"

    @grad_req.setter
    def grad_req(self, req: str) -> None:
        if req != "null":
            warnings.warn(
                f'Constant parameter "{self.name}" does not support grad_req other than '
                f'"null", and new value "{req}" is ignored.',
                stacklevel=2,
            )


# ``ParameterDict.get`` attributes merged natively (the others are Python's).
_NATIVE_ATTRS = ("shape", "dtype", "grad_req", "lr_mult", "wd_mult")


class _Members(Mapping[str, "Parameter"]):
    """A read-only Mapping over the native map, for the dict views."""

    def __init__(self, core: _native.ParameterDictCore) -> None:
        self._core = core

    def __getitem__(self, key: str) -> Parameter:
        return self._core[key]  # type: ignore[return-value]

    def __iter__(self) -> Iterator[str]:
        return iter(self._core.keys())

    def __len__(self) -> int:
        return len(self._core)

    def __contains__(self, key: object) -> bool:
        return key in self._core


class ParameterDict:
    """A dictionary managing a set of parameters.

    Parameters
    ----------
    prefix : str, default ''
        Prepended to every name created by :py:meth:`get`.
    shared : ParameterDict or None
        Consulted by :py:meth:`get` before creating a new parameter.
    """

    def __init__(self, prefix: str = "", shared: ParameterDict | None = None) -> None:
        self._shared = shared
        shared_core = None if shared is None else shared._core
        self._core: _native.ParameterDictCore = _native.ParameterDictCore(prefix, shared_core)

    # As MXNet: a shallow copy shares the name -> parameter map with the
    # original; a deep copy or a pickle copies the parameters (each once, so
    # a parameter also reachable through ``shared`` stays one parameter).

    def __copy__(self) -> ParameterDict:
        new = _rebuild_dict(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_dict, (type(self),), self.__getstate__())

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "_core"}
        state["_prefix"] = self.prefix
        state["_members"] = self._core.items()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        prefix, members = state.pop("_prefix"), state.pop("_members")
        ParameterDict.__init__(self, prefix, state.pop("_shared"))
        for name, param in members:
            self._core[name] = param
        self.__dict__.update(state)

    @property
    def _params(self) -> _native.ParameterDictCore:
        """The name -> Parameter map (MXNet's private ``_params``), a native view."""
        return self._core

    def __repr__(self) -> str:
        name = self.prefix + " " if self.prefix else ""
        content = "\n".join(_indent(f"  {v}", 2) for v in self._core.values())
        return f"{name}(\n{content}\n)"

    def __getitem__(self, key: str) -> Parameter:
        return self._core[key]  # type: ignore[return-value]

    def __iter__(self) -> Iterator[str]:
        return iter(self._core.keys())

    def __len__(self) -> int:
        return len(self._core)

    def __contains__(self, key: object) -> bool:
        return key in self._core

    def items(self) -> ItemsView[str, Parameter]:
        """(name, Parameter) pairs in insertion order."""
        return ItemsView(_Members(self._core))

    def keys(self) -> KeysView[str]:
        """Names in insertion order."""
        return KeysView(_Members(self._core))

    def values(self) -> ValuesView[Parameter]:
        """Parameters in insertion order."""
        return ValuesView(_Members(self._core))

    @property
    def prefix(self) -> str:
        """The prefix prepended to names created by :py:meth:`get`."""
        return self._core.prefix

    def get(self, name: str, **kwargs: Any) -> Parameter:
        """The parameter ``prefix + name``: from this dict, then the shared
        dict, else a new one created with ``kwargs``. An existing parameter must
        agree with the given attributes (unknown shape dims are filled in);
        otherwise ValueError."""
        full, found = self._core.get_existing(name)
        if found is None:
            created = Parameter(full, **kwargs)
            self._core[full] = created
            return created
        if not kwargs:
            return found  # type: ignore[return-value]
        native = {k: kwargs[k] for k in _NATIVE_ATTRS if kwargs.get(k) is not None}
        if native:
            if "shape" in native:
                native["shape"] = _norm_shape(native["shape"])
            self._core.get_existing(name, **native)  # merges, or raises on a conflict
        param = cast(Parameter, found)
        # Attributes the Python class keeps (``init``, anything MXNet's loose
        # kwargs set): MXNet's rule, set when absent, else they must agree.
        for k, v in kwargs.items():
            if k in _NATIVE_ATTRS:
                continue
            existing = getattr(param, k, None)
            if existing is None:
                setattr(param, k, v)
            elif v is not None and v != existing:
                conflict = _native.ParameterDictCore._conflict
                raise MXParamsValueError(conflict(full, k, str(v), str(existing)))
        return param

    def get_constant(self, name: str, value: Any = None) -> Constant:
        """The :py:class:`Constant` ``prefix + name``, created from ``value``
        when absent (KeyError without a value; ValueError on a mismatch)."""
        if value is not None and not isinstance(value, NDArray):
            value = _nd.array(value)
        full, found = self._core.get_constant_existing(name, value)
        if found is None:
            created = Constant(full, value)
            self._core[full] = created
            return created
        return found  # type: ignore[return-value]

    def update(self, other: ParameterDict) -> None:
        """Copies all parameters of ``other`` into self (ValueError if a name is
        bound to a different parameter here)."""
        self._core.update(other._core)

    def initialize(
        self,
        init: Any = _initmod.Uniform(),  # noqa: B008 - MXNet's signature
        ctx: CtxLike = None,
        verbose: bool = False,
        force_reinit: bool = False,
    ) -> None:
        """Initializes every parameter; ``init`` is the default for parameters
        whose own ``init`` is None."""
        if verbose:
            init.set_verbosity(verbose=verbose)
        if ctx is None:
            ctx = [current_context()]
        params: list[Parameter] = self._core.values()  # type: ignore[assignment]
        with _autograd.pause():
            i = 0
            while i < len(params):
                i = self._initialize_fast(params, i, init, ctx, force_reinit)
                if i < len(params):
                    params[i]._initialize(None, ctx, init, force_reinit, False)
                    i += 1
        _mark(params)

    def _initialize_fast(
        self, params: list[Parameter], start: int, init: Any, ctx: CtxLike, force_reinit: bool
    ) -> int:
        """Initializes ``params[start:]`` in one native call (values filled by
        all cores into one slab; one batched upload to GPUs), up to the first
        parameter that needs the general path (a custom initializer, or a fill
        its dtype does not take); returns that parameter's index. Values and
        random streams are those of initializing one by one."""
        requests: list[tuple[int, Any, _native.FillSpec]] = []
        for j in range(start, len(params)):
            p = params[j]
            p_init = init if p.init is None else p.init
            spec = _initmod._fill_spec(p_init, init)
            if spec is None:
                break
            requests.append((j, (p_init, init), spec))
        if not requests:
            return start
        states = _random._GENERATOR.draw_block(
            lambda seed, stream: self._core._initialize_fast(
                requests, ctx, force_reinit, seed, stream
            )
        )
        for (j, _, _), state in zip(requests, states, strict=False):
            if state == "initialized":
                _warn_initialized(params[j].name, stacklevel=4)
        return start + len(states)

    def zero_grad(self) -> None:
        """Sets every gradient buffer to 0 (one native call)."""
        self._core.zero_grad()

    def reset_ctx(self, ctx: CtxLike) -> None:
        """Re-assigns every parameter to ``ctx``, keeping values."""
        self._core.reset_ctx(ctx)
        _mark(self.values())

    def allreduce_grads(self) -> None:
        """Sums each parameter's gradients over its contexts and writes the sum
        back to every context (one native call: parallel, GIL released)."""
        self._core.allreduce_grads()

    def list_ctx(self) -> list[Context]:
        """Every context any parameter is initialised on."""
        return self._core.list_ctx()

    def setattr(self, name: str, value: Any) -> None:
        """Sets an attribute (e.g. ``grad_req``, ``lr_mult``) on every parameter."""
        for p in self.values():
            setattr(p, name, value)

    def save(self, filename: str | PathLike[str], strip_prefix: str = "") -> None:
        """Saves one copy (the mean over contexts) of each parameter, with
        ``strip_prefix`` removed from the names."""
        self._core.save(filename, strip_prefix)

    def load(
        self,
        filename: str | PathLike[str],
        ctx: CtxLike = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        restore_prefix: str = "",
        cast_dtype: bool = False,
        dtype_source: str = "current",
    ) -> None:
        """Loads parameters from a file (see MXNet's ``ParameterDict.load``)."""
        self._core.load(
            filename, ctx, allow_missing, ignore_extra, restore_prefix, cast_dtype, dtype_source
        )
        _mark(self.values())

    @classmethod
    def from_file(
        cls, filename: str | PathLike[str], prefix: str = "", ctx: CtxLike = None
    ) -> ParameterDict:
        """A ParameterDict holding every named array of a file (any format
        ``nd.load`` reads), without declaring the names first: each becomes a
        parameter ``prefix + name`` of the array's shape and dtype, initialised
        with its value on ``ctx``. The ``arg:``/``aux:`` prefixes of exported
        files are dropped; ``aux:`` arrays (running statistics) get
        ``grad_req='null'``, as in MXNet's graphs."""
        from .nd import load

        loaded = load(filename)
        if not isinstance(loaded, dict):
            raise MXParamsValueError(f"{os.fspath(filename)} holds a list of arrays, not names")
        pdict = cls(prefix)
        for key, array in loaded.items():
            kind, _, bare = key.rpartition(":") if key[:4] in ("arg:", "aux:") else ("", "", key)
            grad_req = "null" if kind == "aux" else "write"
            pdict.get(bare, shape=array.shape, dtype=array.dtype, grad_req=grad_req)
        pdict.load_dict(loaded, ctx=ctx, restore_prefix=prefix, filename=os.fspath(filename))
        return pdict

    def load_dict(
        self,
        param_dict: dict[str, Any],
        ctx: CtxLike = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        restore_prefix: str = "",
        filename: str | None = None,
        cast_dtype: bool = False,
        dtype_source: str = "current",
    ) -> None:
        """Loads parameters from a dict of name -> array (``arg:``/``aux:``
        prefixes are stripped)."""
        if not isinstance(param_dict, dict):
            raise MXParamsValueError("load_dict needs a dict of name -> array")
        names = list(param_dict.keys())
        arrays = [_as_ndarray(v) for v in param_dict.values()]
        source = f"file: {filename}" if filename else "param_dict"
        self._core.load_arrays(
            names,
            arrays,
            ctx,
            allow_missing,
            ignore_extra,
            restore_prefix,
            cast_dtype,
            dtype_source,
            source,
        )
        _mark(self.values())
