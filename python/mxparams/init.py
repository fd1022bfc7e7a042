"""Weight initializers, as ``mxnet.initializer`` (MXNet 1.9.1).

An initializer is called as ``init(desc, arr)``: ``desc`` is an :class:`InitDesc`
(a ``str`` naming the parameter, with ``.attrs`` and ``.global_init``) and
``arr`` is an array filled in place. ``arr`` may be an ``mxparams.NDArray``, a
numpy array, or anything with ``.shape``, ``.dtype`` and ``arr[:] = value``.
When ``np.asarray(arr)`` is a writable view of ``arr``'s memory, the fill
writes straight into it (random fills run in parallel in native code);
otherwise the values are computed in a numpy array and assigned.

Dispatch follows MXNet 1.9.1: an ``__init__`` attribute in ``desc.attrs``
names the initializer whose ``_init_weight`` runs; without one, the name's
suffix picks ``weight``/``bias``/``gamma``/``beta``/``min``/``max``/... and
any other name raises ``ValueError``. Calling with a plain ``str`` instead of
an ``InitDesc`` takes MXNet's deprecated legacy path (more suffix rules:
``upsampling``, ``stn_loc``, ``moving_mean``, ...).

Random draws come from :mod:`mxparams.random`; ``mxparams.random.seed(n)``
makes them reproducible.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from . import random as _random
from . import sparse as _sparse
from ._errors import MXParamsNotImplementedError, MXParamsTypeError, MXParamsValueError
from ._native import FillSpec, NDArray

__all__ = [
    "Bilinear",
    "Constant",
    "InitDesc",
    "Initializer",
    "LSTMBias",
    "Load",
    "MSRAPrelu",
    "Mixed",
    "Normal",
    "One",
    "Orthogonal",
    "Uniform",
    "Xavier",
    "Zero",
    "alias",
    "create",
    "register",
]

_FLOAT_DTYPES = _random._FLOAT_DTYPE_SET


class InitDesc(str):
    """Descriptor for the initialization pattern.

    Parameters
    ----------
    name : str
        Name of variable.
    attrs : dict of str to str
        Attributes of this variable taken from ``Symbol.attr_dict``; ``'__init__'``
        names (or is) the initializer to use.
    global_init : Initializer
        Global initializer to fall back to.
    """

    attrs: dict[str, Any]
    global_init: Initializer | None

    def __new__(
        cls, name: str, attrs: dict[str, Any] | None = None, global_init: Initializer | None = None
    ) -> InitDesc:
        ret = super().__new__(cls, name)
        ret.attrs = attrs or {}
        ret.global_init = global_init
        return ret


# ---------------------------------------------------------------------------
# Filling arbitrary arrays in place


def _numpy_view(arr: Any) -> np.ndarray | None:
    """A writable numpy array sharing ``arr``'s memory, or None if there is none."""
    if isinstance(arr, np.ndarray):
        return arr if arr.flags.writeable else None
    if isinstance(arr, NDArray) and arr.stype != "default":
        # np.asarray densifies a sparse array into a copy: fill it through arr[:].
        return None
    if type(arr) is NDArray and arr.context.device_type.startswith("cpu"):
        # Host NDArrays convert zero-copy (read-only for memory-mapped ones).
        view = np.asarray(arr)
        return view if view.flags.writeable else None
    if not (hasattr(arr, "__array__") or hasattr(arr, "__array_interface__")):
        return None
    ctx = getattr(arr, "context", None)
    device_type = getattr(ctx, "device_type", "cpu")
    if isinstance(device_type, str) and not device_type.startswith("cpu"):
        return None  # device memory: np.asarray would copy it to the host
    try:
        first = np.asarray(arr)
        second = np.asarray(arr)
    except Exception:  # any failure means "no view"
        return None
    if not first.flags.writeable or first.shape != tuple(arr.shape):
        return None
    # A conversion that copies gives a new buffer each time; a view gives the same one.
    if first.__array_interface__["data"][0] != second.__array_interface__["data"][0]:
        return None
    return first


def _assign(arr: Any, value: Any) -> None:
    """``arr[:] = value``, through a numpy view when ``arr`` has one."""
    view = _numpy_view(arr)
    if view is not None:
        view[...] = value
    else:
        arr[:] = value


def _dtype_of(arr: Any) -> np.dtype[Any]:
    try:
        dt: np.dtype[Any] = np.dtype(arr.dtype)
    except TypeError:
        dt = np.dtype("float32")
    return dt


def _fill_random(kind: str, arr: Any, a: float, b: float) -> None:
    """Fills ``arr`` with uniform ``[a, b)`` or normal ``(a, b)`` draws."""
    view = _numpy_view(arr)
    if view is not None and view.dtype in _FLOAT_DTYPES:
        _random._fill(kind, view, a, b)
        return
    dtype = _dtype_of(arr)
    tmp = np.empty(tuple(arr.shape), dtype if dtype in _FLOAT_DTYPES else np.float32)
    _random._fill(kind, tmp, a, b)
    if isinstance(arr, NDArray) and arr.stype == "row_sparse":
        # MXNet's random operators store every row of a row_sparse output,
        # even rows whose draws (cast to arr's dtype) are all zero.
        rows = np.arange(tmp.shape[0], dtype=np.int64)
        _assign(arr, _sparse.row_sparse_array((tmp, rows), tmp.shape, dtype=tmp.dtype))
        return
    _assign(arr, tmp)


def _asum_stat(x: Any) -> str:
    """``norm(x) / sqrt(size(x))`` as MXNet's default verbose statistic."""
    values = np.asarray(x, dtype=np.float64)
    if values.size == 0:
        return str(np.float32(0.0))
    return str(np.float32(np.linalg.norm(values.ravel()) / math.sqrt(values.size)))


# ---------------------------------------------------------------------------
# Base class


class Initializer:
    """The base class of an initializer."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._verbose = False
        self._print_func: Callable[[Any], str] | None = None

    def set_verbosity(
        self, verbose: bool = False, print_func: Callable[[Any], str] | None = None
    ) -> Initializer:
        """Switches verbose mode on or off.

        Parameters
        ----------
        verbose : bool
            Whether to log each initialized array.
        print_func : function
            Computes statistics of an initialized array; takes the array and returns a
            ``str``. Defaults to ``norm(x) / sqrt(size(x))``.
        """
        self._verbose = verbose
        self._print_func = _asum_stat if print_func is None else print_func
        return self

    def _verbose_print(self, desc: str, init: Any, arr: Any) -> None:
        """Logs ``desc``, the pattern ``init`` and a statistic of ``arr`` in verbose mode."""
        if self._verbose and self._print_func:
            logging.info("Initialized %s as %s: %s", desc, init, self._print_func(arr))

    def dumps(self) -> str:
        """Saves the initializer to a JSON string, e.g. ``'["normal", {"sigma": 0.5}]'``."""
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __call__(self, desc: str, arr: Any) -> None:
        """Initializes ``arr`` in place.

        Parameters
        ----------
        desc : InitDesc
            Initialization pattern descriptor. A plain ``str`` takes MXNet's deprecated
            legacy path.
        arr : NDArray
            The array to be initialized.
        """
        if not isinstance(desc, InitDesc):
            self._legacy_init(desc, arr)
            return

        if desc.global_init is None:
            desc.global_init = self
        init = desc.attrs.get("__init__", "")

        if init:
            create(init)._init_weight(desc, arr)
            self._verbose_print(desc, init, arr)
        elif desc.endswith("weight"):
            self._init_weight(desc, arr)
            self._verbose_print(desc, "weight", arr)
        elif desc.endswith("bias"):
            self._init_bias(desc, arr)
            self._verbose_print(desc, "bias", arr)
        elif desc.endswith("gamma"):
            self._init_gamma(desc, arr)
            self._verbose_print(desc, "gamma", arr)
        elif desc.endswith("beta"):
            self._init_beta(desc, arr)
            self._verbose_print(desc, "beta", arr)
        elif desc.endswith("min"):
            self._init_zero(desc, arr)
            self._verbose_print(desc, "min", arr)
        elif desc.endswith("max"):
            self._init_one(desc, arr)
            self._verbose_print(desc, "max", arr)
        elif desc.endswith("weight_quantize"):
            self._init_quantized_weight(desc, arr)
            self._verbose_print(desc, "weight_quantize", arr)
        elif desc.endswith("bias_quantize"):
            self._init_quantized_bias(desc, arr)
            self._verbose_print(desc, "bias_quantize", arr)
        else:
            self._init_default(desc, arr)

    def _legacy_init(self, name: str, arr: Any) -> None:
        """MXNet's deprecated ``init(str, arr)`` path, with its longer suffix list."""
        warnings.warn(
            "Calling initializer with init(str, NDArray) has been deprecated. "
            "Please use init(mxparams.init.InitDesc(...), NDArray) instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        if not isinstance(name, str):
            raise MXParamsTypeError("name must be string")
        if not hasattr(arr, "shape"):
            raise MXParamsTypeError("arr must be an array (NDArray or numpy.ndarray)")
        if name.startswith("upsampling"):
            self._init_bilinear(name, arr)
        elif name.startswith("stn_loc") and name.endswith("weight"):
            self._init_zero(name, arr)
        elif name.startswith("stn_loc") and name.endswith("bias"):
            self._init_loc_bias(name, arr)
        elif name.endswith("bias"):
            self._init_bias(name, arr)
        elif name.endswith("gamma"):
            self._init_gamma(name, arr)
        elif name.endswith("beta"):
            self._init_beta(name, arr)
        elif name.endswith("weight"):
            self._init_weight(name, arr)
        elif name.endswith("moving_mean"):
            self._init_zero(name, arr)
        elif name.endswith("moving_var"):
            self._init_one(name, arr)
        elif name.endswith("moving_inv_var"):
            self._init_zero(name, arr)
        elif name.endswith("moving_avg"):
            self._init_zero(name, arr)
        elif name.endswith("min"):
            self._init_zero(name, arr)
        elif name.endswith("max"):
            self._init_one(name, arr)
        else:
            self._init_default(name, arr)

    def _init_bilinear(self, _: str, arr: Any) -> None:
        _assign(arr, _bilinear_kernel(tuple(arr.shape)))

    def _init_loc_bias(self, _: str, arr: Any) -> None:
        shape = tuple(arr.shape)
        if len(shape) < 1 or shape[0] != 6:
            raise MXParamsValueError(
                f"stn_loc bias must have 6 elements in its first axis, got {shape}"
            )
        _assign(arr, np.array([1.0, 0, 0, 0, 1.0, 0]))

    def _init_zero(self, _: str, arr: Any) -> None:
        _assign(arr, 0.0)

    def _init_one(self, _: str, arr: Any) -> None:
        _assign(arr, 1.0)

    def _init_bias(self, _: str, arr: Any) -> None:
        _assign(arr, 0.0)

    def _init_quantized_bias(self, _: str, arr: Any) -> None:
        _assign(arr, 0)

    def _init_gamma(self, _: str, arr: Any) -> None:
        _assign(arr, 1.0)

    def _init_beta(self, _: str, arr: Any) -> None:
        _assign(arr, 0.0)

    def _init_weight(self, name: str, arr: Any) -> None:
        """Initializes a weight; subclasses override it."""
        raise MXParamsNotImplementedError("Must override it")

    def _init_quantized_weight(self, _: str, arr: Any) -> None:
        # As MXNet: one random int8 in [-127, 127), broadcast over the array.
        _assign(arr, np.int8(_random.randint(-127, 127, 1)[0]))

    def _init_default(self, name: str, _: Any) -> None:
        raise MXParamsValueError(
            f"Unknown initialization pattern for {name}. "
            'Default initialization is now limited to "weight", "bias", "gamma" (1.0), '
            'and "beta" (0.0). Please use mxparams.init.InitDesc(name, {"__init__": init}) '
            "(or Parameter(init=...)) to set the initialization pattern"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Initializer):
            return NotImplemented
        return type(self) is type(other) and self._kwargs == other._kwargs

    # As MXNet: defining __eq__ leaves instances unhashable.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"{self.__class__.__name__}({args})"


# ---------------------------------------------------------------------------
# Registry

_REGISTRY: dict[str, type[Initializer]] = {}
_T = TypeVar("_T", bound=type[Initializer])


def _register_as(klass: _T, name: str | None = None) -> _T:
    if not (isinstance(klass, type) and issubclass(klass, Initializer)):
        raise MXParamsTypeError(f"Can only register subclass of Initializer, not {klass!r}")
    key = (klass.__name__ if name is None else name).lower()
    old = _REGISTRY.get(key)
    if old is not None and old is not klass:
        warnings.warn(
            f"New initializer {klass.__module__}.{klass.__name__} registered with name {key} "
            f"is overriding existing initializer {old.__module__}.{old.__name__}",
            UserWarning,
            stacklevel=3,
        )
    _REGISTRY[key] = klass
    return klass


def register(klass: _T) -> _T:
    """Registers a custom initializer under its lowercase class name.

    Custom initializers subclass :class:`Initializer` and implement ``_init_weight``
    (and optionally ``_init_bias`` etc.); once registered, ``create(name)`` and
    ``Parameter(init=name)`` find them.

    Examples
    --------
    >>> @mxparams.init.register
    ... @mxparams.init.alias('myinit')
    ... class CustomInit(mxparams.init.Initializer):
    ...     def _init_weight(self, _, arr):
    ...         arr[:] = 0.1
    """
    return _register_as(klass)


def alias(*aliases: str) -> Callable[[_T], _T]:
    """Class decorator registering an initializer under extra names."""

    def reg(klass: _T) -> _T:
        for name in aliases:
            _register_as(klass, name)
        return klass

    return reg


def create(*args: Any, **kwargs: Any) -> Initializer:
    """Creates an initializer from a name, an instance, a dict or a ``dumps()`` string.

    Parameters
    ----------
    initializer : str, Initializer or dict
        A registered name (case-insensitive; extra arguments go to the constructor),
        an instance (returned as is), ``{'initializer': name, **kwargs}``, or the JSON
        given by :meth:`Initializer.dumps` (``'["xavier", {"magnitude": 2}]'``).

    Raises
    ------
    ValueError
        If the name is not registered.
    """
    if args:
        name, args = args[0], args[1:]
    elif "initializer" in kwargs:
        name = kwargs.pop("initializer")
    else:
        raise MXParamsTypeError("create() needs an initializer name, instance or JSON string")

    if isinstance(name, Initializer):
        if args or kwargs:
            raise MXParamsValueError(
                "initializer is already an instance. Additional arguments are invalid"
            )
        return name
    if isinstance(name, dict):
        return create(**name)
    if not isinstance(name, str):
        # MXNet asserts here; an invalid argument is a ValueError in mxparams.
        raise MXParamsValueError(f"initializer must be of string type, not {type(name).__name__}")

    if name.startswith("[") or name.startswith("{"):
        if args or kwargs:
            raise MXParamsValueError("a JSON initializer takes no additional arguments")
        spec = json.loads(name)
        if isinstance(spec, dict):
            return create(**spec)
        if not (isinstance(spec, list) and len(spec) == 2 and isinstance(spec[1], dict)):
            raise MXParamsValueError(
                f"malformed initializer JSON {name!r}: expected [name, {{kwargs}}]"
            )
        return create(spec[0], **spec[1])

    key = name.lower()
    klass = _REGISTRY.get(key)
    if klass is None:
        raise MXParamsValueError(
            f"{key} is not registered. Please register with mxparams.init.register first"
        )
    return klass(*args, **kwargs)


def _fill_spec(init: Any, default_init: Any) -> FillSpec | None:
    """The native fill equivalent to ``default_init(InitDesc(name, {'__init__': init}), arr)``.

    A :class:`FillSpec` when that call would run a built-in initializer's
    ``_init_weight`` and nothing else; None when the general path must run
    (custom classes, verbose logging, arguments that are not numbers). The
    native side declines a fill that does not suit the parameter (its dtype,
    Xavier on a shape it rejects, invalid bounds) and the general path then
    raises what MXNet raises.
    """
    if (
        not isinstance(default_init, Initializer)
        or default_init._verbose
        or type(default_init).__call__ is not Initializer.__call__
    ):
        return None
    if isinstance(init, str):
        if not init:
            return None
        try:
            init = create(init)
        except Exception:  # the general path raises it
            return None
    kind = type(init)
    try:
        if kind is Uniform:
            scale = _number(init.scale)
            return FillSpec.uniform(-scale, scale)
        if kind is Normal:
            return FillSpec.normal(0.0, _number(init.sigma))
        if kind is Zero:
            return FillSpec.zeros()
        if kind is One:
            return FillSpec.constant(1.0)
        if kind is Constant:
            return FillSpec.constant(_number(init.value))
        if kind is Xavier or kind is MSRAPrelu:
            return FillSpec.xavier(init.rnd_type, init.factor_type, init.magnitude)
    except (TypeError, ValueError):  # not a plain number or name: the general path decides
        return None
    return None


def _number(value: Any) -> float:
    """``value`` as a float when it is a plain int or float (TypeError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MXParamsTypeError(f"not a plain number: {value!r}")
    return float(value)


# ---------------------------------------------------------------------------
# Composites: Load and Mixed (plain callables, as in MXNet)


class Load:
    """Initializes variables by loading data from a file or a dict.

    ``arg:`` and ``aux:`` prefixes are dropped from the loaded names.

    Parameters
    ----------
    param : str or dict of str to NDArray
        A ``.params`` file (read with ``mxparams.nd.load``) or a dict of arrays.
    default_init : Initializer
        Initializer for names not found in ``param``.
    verbose : bool
        Whether to log where each array came from.
    """

    def __init__(self, param: Any, default_init: Any = None, verbose: bool = False) -> None:
        if isinstance(param, (str, os.PathLike)):
            from .nd import load  # lazily: nd pulls in the native array code

            param = load(os.fspath(param))
        if not isinstance(param, dict):
            raise MXParamsValueError(
                "Load needs a dict of name to array, or a .params file saved from a dict; "
                f"got {type(param).__name__}"
            )
        self.param: dict[str, Any] = {}
        for name, arr in param.items():
            if name.startswith("arg:") or name.startswith("aux:"):
                self.param[name[4:]] = arr
            else:
                self.param[name] = arr
        self.default_init = default_init
        self.verbose = verbose

    def __call__(self, name: str, arr: Any) -> None:
        if name in self.param:
            src = self.param[name]
            if tuple(arr.shape) != tuple(src.shape):
                raise MXParamsValueError(
                    f"Parameter {name} cannot be initialized from loading. Shape mismatch, "
                    f"target {tuple(arr.shape)} vs loaded {tuple(src.shape)}"
                )
            _assign(arr, np.asarray(src))
            if self.verbose:
                logging.info("Initialized %s by loading", name)
        else:
            if self.default_init is None:
                raise MXParamsValueError(
                    f"Cannot Initialize {name}. Not found in loaded param "
                    "and no default Initializer is provided."
                )
            self.default_init(name, arr)
            if self.verbose:
                logging.info("Initialized %s by default", name)


class Mixed:
    """Initializes parameters with the first initializer whose pattern matches the name.

    Parameters
    ----------
    patterns : list of str
        Regular expressions, matched (``re.match``) against parameter names in order.
    initializers : list of Initializer
        The initializer for each pattern.
    """

    def __init__(self, patterns: Sequence[str], initializers: Sequence[Any]) -> None:
        if len(patterns) != len(initializers):
            raise MXParamsValueError(
                f"Mixed needs one initializer per pattern, got {len(patterns)} patterns "
                f"and {len(initializers)} initializers"
            )
        self.map = list(zip([re.compile(p) for p in patterns], initializers, strict=False))

    def __call__(self, name: str, arr: Any) -> None:
        for prog, init in self.map:
            if prog.match(name):
                init(name, arr)
                return
        raise MXParamsValueError(
            f"Parameter name {name} did not match any pattern. Consider "
            'adding a ".*" pattern at the end with a default Initializer.'
        )


# ---------------------------------------------------------------------------
# Built-in initializers


@register
@alias("zeros")
class Zero(Initializer):
    """Initializes weights to zero."""

    def __init__(self) -> None:
        super().__init__()

    def _init_weight(self, _: str, arr: Any) -> None:
        _assign(arr, 0)


@register
@alias("ones")
class One(Initializer):
    """Initializes weights to one."""

    def __init__(self) -> None:
        super().__init__()

    def _init_weight(self, _: str, arr: Any) -> None:
        _assign(arr, 1)


@register
class Constant(Initializer):
    """Initializes weights to a given value: a scalar or an array broadcastable to them.

    Parameters
    ----------
    value : float or array
        Value to set.
    """

    def __init__(self, value: Any) -> None:
        super().__init__(value=value)
        self.value = value

    def _init_weight(self, _: str, arr: Any) -> None:
        value = self.value
        _assign(arr, value if np.isscalar(value) else np.asarray(value))

    def dumps(self) -> str:
        val = self._kwargs["value"]
        if not np.isscalar(val):
            self._kwargs["value"] = np.asarray(val).tolist()
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])


@register
class Uniform(Initializer):
    """Initializes weights with values drawn uniformly from ``[-scale, scale]``.

    Parameters
    ----------
    scale : float, optional
        The bound of the range. Default 0.07.
    """

    def __init__(self, scale: float = 0.07) -> None:
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, _: str, arr: Any) -> None:
        _fill_random("uniform", arr, -self.scale, self.scale)


@register
class Normal(Initializer):
    """Initializes weights with draws from a normal distribution ``N(0, sigma**2)``.

    Parameters
    ----------
    sigma : float, optional
        Standard deviation. Default 0.01.
    """

    def __init__(self, sigma: float = 0.01) -> None:
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, _: str, arr: Any) -> None:
        _fill_random("normal", arr, 0.0, self.sigma)


@register
class Orthogonal(Initializer):
    """Initializes weights as an orthogonal matrix (Saxe et al., arXiv:1312.6120).

    Parameters
    ----------
    scale : float, optional
        Scaling factor of the weight.
    rand_type : str, optional
        ``"uniform"`` or ``"normal"`` random matrix to orthogonalize.
    """

    def __init__(self, scale: float = 1.414, rand_type: str = "uniform") -> None:
        super().__init__(scale=scale, rand_type=rand_type)
        self.scale = scale
        self.rand_type = rand_type

    def _init_weight(self, _: str, arr: Any) -> None:
        shape = tuple(arr.shape)
        if len(shape) < 1:
            raise MXParamsValueError("Orthogonal initializer needs at least a 1-D array")
        nout = shape[0]
        nin = int(np.prod(shape[1:]))
        if self.rand_type == "uniform":
            tmp = _random.uniform(-1.0, 1.0, shape=(nout, nin))
        elif self.rand_type == "normal":
            tmp = _random.normal(0.0, 1.0, shape=(nout, nin))
        else:
            raise MXParamsValueError(
                f"Unknown random type {self.rand_type!r}: use 'uniform' or 'normal'"
            )
        u, _s, v = np.linalg.svd(tmp, full_matrices=False)
        res = u if u.shape == tmp.shape else v
        _assign(arr, self.scale * res.reshape(shape))


@register
class Xavier(Initializer):
    """ "Xavier" initialization (Glorot & Bengio, 2010).

    With ``rnd_type='uniform'`` the weights are drawn from ``[-c, c]`` with
    ``c = sqrt(magnitude / factor)``; with ``'gaussian'`` from ``N(0, c**2)``.
    ``factor`` is ``fan_in``, ``fan_out`` or their mean (``factor_type`` ``'in'``,
    ``'out'``, ``'avg'``), where for a weight of shape ``(out, in, *kernel)``,
    ``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``.

    Parameters
    ----------
    rnd_type : str, optional
        ``'uniform'`` or ``'gaussian'``.
    factor_type : str, optional
        ``'avg'``, ``'in'`` or ``'out'``.
    magnitude : float, optional
        Scale of the random numbers.
    """

    def __init__(
        self, rnd_type: str = "uniform", factor_type: str = "avg", magnitude: float = 3
    ) -> None:
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(magnitude)

    def _init_weight(self, name: str, arr: Any) -> None:
        shape = tuple(arr.shape)
        # The scale (and MXNet's checks) come from the native Xavier, the
        # same one native initialisation fills with.
        spec = FillSpec.xavier(self.rnd_type, self.factor_type, self.magnitude)
        fill = spec.resolve(str(name), [int(d) for d in shape])
        a, b = fill.args
        _fill_random(fill.kind, arr, a, b)


@register
class MSRAPrelu(Xavier):
    """MSRA initialization for PReLU nets (He et al., arXiv:1502.01852).

    ``Xavier('gaussian', factor_type, magnitude=2 / (1 + slope**2))``.

    Parameters
    ----------
    factor_type : str, optional
        ``'avg'``, ``'in'`` or ``'out'``.
    slope : float, optional
        Initial slope of the PReLU (or similar) nonlinearities.
    """

    def __init__(self, factor_type: str = "avg", slope: float = 0.25) -> None:
        magnitude = 2.0 / (1 + slope**2)
        super().__init__("gaussian", factor_type, magnitude)
        self._kwargs = {"factor_type": factor_type, "slope": slope}


def _bilinear_kernel(shape: tuple[int, ...]) -> np.ndarray:
    """MXNet's bilinear upsampling kernel, in float32, computed as MXNet does (float64)."""
    if len(shape) < 4:
        raise MXParamsValueError(f"Bilinear initializer needs a 4-D weight, got shape {shape}")
    f = np.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    x = i % shape[3]
    y = (i // shape[3]) % shape[2]
    weight: np.ndarray = (1 - np.abs(x / f - c)) * (1 - np.abs(y / f - c))
    return weight.astype(np.float32).reshape(shape)


@register
class Bilinear(Initializer):
    """Initializes weights for upsampling layers (a bilinear kernel)."""

    def __init__(self) -> None:
        super().__init__()

    def _init_weight(self, _: str, arr: Any) -> None:
        _assign(arr, _bilinear_kernel(tuple(arr.shape)))


@register
class LSTMBias(Initializer):
    """Initializes LSTM biases to 0 except the forget gate's (the second quarter).

    Parameters
    ----------
    forget_bias : float, default 1.0
        Bias of the forget gate (Jozefowicz et al., 2015 recommend 1.0).
    """

    def __init__(self, forget_bias: float = 1.0) -> None:
        super().__init__(forget_bias=forget_bias)
        self.forget_bias = forget_bias

    def _init_weight(self, name: str, arr: Any) -> None:
        shape = tuple(arr.shape)
        if len(shape) < 1:
            raise MXParamsValueError(f"LSTMBias needs at least a 1-D bias for {name}")
        num_hidden = int(shape[0] / 4)
        view = _numpy_view(arr)
        if view is not None:
            view[...] = 0.0
            view[num_hidden : 2 * num_hidden] = self.forget_bias
        else:
            values = np.zeros(shape, dtype=_dtype_of(arr))
            values[num_hidden : 2 * num_hidden] = self.forget_bias
            arr[:] = values
