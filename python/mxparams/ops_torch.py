"""MXNet 1.x operators with MXNet's semantics, on torch tensors.

One function per operator family, taking tensors positionally (in MXNet's
input order) and the operator's parameters as keyword arguments, already
typed. :data:`REGISTRY` maps each MXNet operator name (aliases included) to an
:class:`OpSpec`: the function, how to read its keyword arguments from a
symbol node's string attributes, and how many outputs it has. Operators whose
behaviour depends on training mode (BatchNorm, Dropout, ``rrelu``) are small
``torch.nn.Module`` classes reading ``self.training``; they hold no state of
their own (weights and running statistics are passed in), so a model's
``state_dict`` is just its MXNet parameters.

Where MXNet and torch disagree the code follows MXNet (checked against MXNet
1.9.1 in the tests): BatchNorm's biased variance in running statistics and
its ``fix_gamma``; Pooling's ``full``/``same`` output sizes and divisors;
Reshape's special codes; FullyConnected's ``flatten``; Embedding's clipping.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ._errors import MXParamsValueError
from .symbol import Attrs, Graph, Node, SymbolFormatError, as_graph

__all__ = ["REGISTRY", "OpSpec", "Unsupported", "check_node", "infer_reshape"]

Tensor = torch.Tensor


class Unsupported(Exception):
    """An operator setting this module does not implement (reported, never raised to users)."""


@dataclass(frozen=True)
class OpSpec:
    """How to run one MXNet operator."""

    fn: Callable[..., Any]
    parse: Callable[[Attrs, int], dict[str, Any]]
    outputs: Callable[[dict[str, Any]], int] = lambda kw: 1
    # True: ``fn`` is an nn.Module class built from the keyword arguments.
    stateful: bool = False


REGISTRY: dict[str, OpSpec] = {}


def _register(
    names: str | Sequence[str],
    parse: Callable[[Attrs, int], dict[str, Any]] | None = None,
    outputs: Callable[[dict[str, Any]], int] | None = None,
    stateful: bool = False,
) -> Callable[[Any], Any]:
    def deco(fn: Any) -> Any:
        spec = OpSpec(
            fn,
            parse or (lambda a, n: {}),
            outputs or (lambda kw: 1),
            stateful,
        )
        for name in [names] if isinstance(names, str) else names:
            REGISTRY[name] = spec
        return fn

    return deco


def check_node(node: Node) -> str | None:
    """None if ``node`` can be run, else why not."""
    spec = REGISTRY.get(node.op)
    if spec is None:
        return "no implementation"
    try:
        spec.parse(node.attr(), len(node.inputs))
    except (Unsupported, SymbolFormatError) as e:
        return str(e)
    return None


def op_support(source: Graph | str | os.PathLike[str] | bytes) -> list[dict[str, Any]]:
    """Each operator of a symbol with its count, first node and whether it can be imported.

    Returns ``[{"op", "count", "first_node", "supported"}]`` in order of first use
    (what ``mxparams inspect model-symbol.json`` prints). Reading the graph needs
    no tensor library; deciding support is this module's own check.
    """
    graph = as_graph(source)
    out: list[dict[str, Any]] = []
    by_op: dict[str, dict[str, Any]] = {}
    for n in graph.ops():
        reason = check_node(n)
        row = by_op.get(n.op)
        if row is None:
            row = {"op": n.op, "count": 0, "first_node": n.name, "supported": True}
            by_op[n.op] = row
            out.append(row)
        row["count"] += 1
        if reason is not None and row["supported"]:
            row["supported"] = False
            row["reason"] = reason
            row["first_node"] = n.name
    return out


# ---------------------------------------------------------------- helpers


def _tup(value: Sequence[int], n: int, fill: int) -> tuple[int, ...]:
    return tuple(value) if len(value) else (fill,) * n


def _layout_check(a: Attrs) -> None:
    layout = a.text("layout", "NC")
    if not layout.startswith("NC"):
        raise Unsupported(f"layout {layout} (only channel-first layouts)")


def _dtype(name: str) -> torch.dtype:
    table = {
        "float32": torch.float32,
        "float16": torch.float16,
        "float64": torch.float64,
        "bfloat16": torch.bfloat16,
        "uint8": torch.uint8,
        "int8": torch.int8,
        "int32": torch.int32,
        "int64": torch.int64,
        "bool": torch.bool,
    }
    if name not in table:
        raise Unsupported(f"dtype {name}")
    return table[name]


def _norm_axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


# ---------------------------------------------------------------- layers


def _conv_parse(a: Attrs, n: int) -> dict[str, Any]:
    _layout_check(a)
    kernel = a.shape("kernel")
    if not 1 <= len(kernel) <= 3:
        raise Unsupported(f"kernel of {len(kernel)} dimensions")
    k = len(kernel)
    return {
        "stride": _tup(a.shape("stride"), k, 1),
        "pad": _tup(a.shape("pad"), k, 0),
        "dilate": _tup(a.shape("dilate"), k, 1),
        "num_group": a.integer("num_group", 1),
    }


@_register("Convolution", _conv_parse)
def convolution(
    data: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    stride: tuple[int, ...],
    pad: tuple[int, ...],
    dilate: tuple[int, ...],
    num_group: int,
) -> Tensor:
    conv = (F.conv1d, F.conv2d, F.conv3d)[len(stride) - 1]
    return conv(data, weight, bias, stride, pad, dilate, num_group)


def _deconv_parse(a: Attrs, n: int) -> dict[str, Any]:
    kw = _conv_parse(a, n)
    k = len(kw["stride"])
    kw["kernel"] = a.shape("kernel")
    kw["adj"] = _tup(a.shape("adj"), k, 0)
    target = a.shape("target_shape")
    kw["target_shape"] = target if target and any(target) else None
    return kw


@_register("Deconvolution", _deconv_parse)
def deconvolution(
    data: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    pad: tuple[int, ...],
    dilate: tuple[int, ...],
    adj: tuple[int, ...],
    target_shape: tuple[int, ...] | None,
    num_group: int,
) -> Tensor:
    if target_shape is not None:
        # MXNet derives pad and adj from the requested output size.
        pads, adjs = [], []
        for i, t in enumerate(target_shape):
            size = data.shape[2 + i]
            total = stride[i] * (size - 1) + dilate[i] * (kernel[i] - 1) + 1 - t
            adjs.append(total % 2)
            pads.append((total + 1) // 2)
        pad, adj = tuple(pads), tuple(adjs)
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[len(stride) - 1]
    return conv(data, weight, bias, stride, pad, adj, num_group, dilate)


def _fc_parse(a: Attrs, n: int) -> dict[str, Any]:
    return {"flatten": a.flag("flatten", True)}


@_register("FullyConnected", _fc_parse)
def fully_connected(
    data: Tensor, weight: Tensor, bias: Tensor | None = None, *, flatten: bool
) -> Tensor:
    if flatten and data.dim() != 2:
        data = data.reshape(data.shape[0], -1)
    return F.linear(data, weight, bias)


def _bn_parse(a: Attrs, n: int) -> dict[str, Any]:
    if a.flag("output_mean_var", False):
        raise Unsupported("output_mean_var=True")
    return {
        "eps": a.number("eps", 1e-3),
        "momentum": a.number("momentum", 0.9),
        "fix_gamma": a.flag("fix_gamma", True),
        "use_global_stats": a.flag("use_global_stats", False),
        "axis": a.integer("axis", 1),
    }


@_register(("BatchNorm", "BatchNorm_v1", "_contrib_SyncBatchNorm"), _bn_parse, stateful=True)
class BatchNorm(torch.nn.Module):
    """MXNet's BatchNorm: ``fix_gamma`` treats gamma as 1; training updates the running
    statistics with the *biased* batch variance, ``moving = m * moving + (1 - m) * batch``."""

    def __init__(
        self, eps: float, momentum: float, fix_gamma: bool, use_global_stats: bool, axis: int
    ) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.fix_gamma = fix_gamma
        self.use_global_stats = use_global_stats
        self.axis = axis

    def extra_repr(self) -> str:
        return (
            f"eps={self.eps}, momentum={self.momentum}, fix_gamma={self.fix_gamma}, "
            f"use_global_stats={self.use_global_stats}, axis={self.axis}"
        )

    def forward(
        self, data: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, var: Tensor
    ) -> Tensor:
        axis = _norm_axis(self.axis, data.dim())
        if self.fix_gamma:
            gamma = torch.ones_like(gamma)
        x = data if axis == 1 else data.movedim(axis, 1)
        if self.training and not self.use_global_stats:
            dims = [d for d in range(x.dim()) if d != 1]
            out = F.batch_norm(x, None, None, gamma, beta, True, 0.0, self.eps)
            with torch.no_grad():
                bvar, bmean = torch.var_mean(x.detach(), dim=dims, correction=0)
                mean.mul_(self.momentum).add_(bmean.to(mean.dtype), alpha=1 - self.momentum)
                var.mul_(self.momentum).add_(bvar.to(var.dtype), alpha=1 - self.momentum)
        else:
            out = F.batch_norm(x, mean, var, gamma, beta, False, 0.0, self.eps)
        return out if axis == 1 else out.movedim(1, axis)


class ConvBatchNorm(torch.nn.Module):
    """Convolution followed by BatchNorm (and optionally ReLU or a clip), as one step.

    Not an MXNet operator: the importer substitutes it for such a chain so that
    inference folds the BatchNorm into the convolution's weights (a pass over
    the weights instead of over the activations). In training mode it runs
    the two operators as written, so MXNet's semantics are unchanged.
    """

    def __init__(
        self,
        conv: dict[str, Any],
        bn: dict[str, Any],
        act: str | None = None,
        clip: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.conv = conv
        self.bn = BatchNorm(**bn)
        self.act = act
        self.clip = clip

    def extra_repr(self) -> str:
        return f"conv={self.conv}, act={self.act!r}, clip={self.clip}"

    def forward(
        self,
        data: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        gamma: Tensor,
        beta: Tensor,
        mean: Tensor,
        var: Tensor,
    ) -> Tensor:
        bn = self.bn
        if self.training and not bn.use_global_stats:
            out: Tensor = bn(convolution(data, weight, bias, **self.conv), gamma, beta, mean, var)
        else:
            scale = torch.rsqrt(var + bn.eps)
            if not bn.fix_gamma:
                scale = scale * gamma
            shift = beta - mean * scale
            if bias is not None:
                shift = shift + bias * scale
            per_filter = scale.reshape((-1,) + (1,) * (weight.dim() - 1))
            if weight.dim() == 4 and weight.device.type == "cpu":
                # A channels-last weight makes torch run this convolution, and
                # every later one (they receive channels-last activations), in
                # oneDNN's NHWC kernels instead of reordering the activations
                # to its blocked layout and back on every call: 1.3-2.4x faster
                # at batch 32 (benches/python/bench_import_model.py). The
                # folded weight is written in that layout directly.
                recorded = torch.is_grad_enabled() and (
                    weight.requires_grad or per_filter.requires_grad
                )
                if recorded or torch.jit.is_tracing():  # type: ignore[attr-defined,no-untyped-call]
                    # Out-of-place, so that autograd records it and torch.jit.freeze
                    # folds it into a constant.
                    w = (weight * per_filter).contiguous(memory_format=torch.channels_last)
                else:
                    w = torch.empty_like(weight, memory_format=torch.channels_last)
                    torch.mul(weight, per_filter, out=w)
            else:
                w = weight * per_filter
            out = convolution(data, w, shift, **self.conv)
        # In place when no graph is recorded: ``out`` is this step's own fresh tensor.
        inplace = not (torch.is_grad_enabled() and out.requires_grad)
        if self.act == "relu":
            relu: Tensor = F.relu(out, inplace=inplace)
            return relu
        if self.clip is not None:
            lo, hi = self.clip
            clipped: Tensor = out.clamp_(lo, hi) if inplace else torch.clamp(out, lo, hi)
            return clipped
        return out


@_register("InstanceNorm", lambda a, n: {"eps": a.number("eps", 1e-3)})
def instance_norm(data: Tensor, gamma: Tensor, beta: Tensor, *, eps: float) -> Tensor:
    return F.instance_norm(data, None, None, gamma, beta, True, 0.0, eps)


@_register("LayerNorm", lambda a, n: {"axis": a.integer("axis", -1), "eps": a.number("eps", 1e-5)})
def layer_norm(data: Tensor, gamma: Tensor, beta: Tensor, *, axis: int, eps: float) -> Tensor:
    axis = _norm_axis(axis, data.dim())
    x = data.movedim(axis, -1)
    out = F.layer_norm(x, (x.shape[-1],), gamma, beta, eps)
    return out.movedim(-1, axis)


def _l2_parse(a: Attrs, n: int) -> dict[str, Any]:
    mode = a.text("mode", "instance")
    if mode not in ("instance", "channel", "spatial"):
        raise Unsupported(f"mode {mode}")
    return {"eps": a.number("eps", 1e-10), "mode": mode}


@_register("L2Normalization", _l2_parse)
def l2_normalization(data: Tensor, *, eps: float, mode: str) -> Tensor:
    if mode == "instance":
        dims = list(range(1, data.dim()))
    elif mode == "channel":
        dims = [1]
    else:
        dims = list(range(2, data.dim()))
    return data / torch.sqrt((data * data).sum(dim=dims, keepdim=True) + eps)


@_register(
    "LRN",
    lambda a, n: {
        "alpha": a.number("alpha", 1e-4),
        "beta": a.number("beta", 0.75),
        "knorm": a.number("knorm", 2.0),
        "nsize": a.integer("nsize"),
    },
)
def lrn(data: Tensor, *, alpha: float, beta: float, knorm: float, nsize: int) -> Tensor:
    return F.local_response_norm(data, nsize, alpha, beta, knorm)


@_register(
    "Embedding",
    lambda a, n: {"input_dim": a.integer("input_dim"), "dtype": a.text("dtype", "float32")},
)
def embedding(data: Tensor, weight: Tensor, *, input_dim: int, dtype: str) -> Tensor:
    # MXNet clips out-of-range indices instead of failing.
    idx = data.to(torch.int64).clamp(0, input_dim - 1)
    return F.embedding(idx, weight)


# ---------------------------------------------------------------- activations

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softrelu": F.softplus,
    "softsign": F.softsign,
}


def _act_parse(a: Attrs, n: int) -> dict[str, Any]:
    act = a.text("act_type")
    if act not in _ACTIVATIONS:
        raise Unsupported(f"act_type {act}")
    return {"act_type": act}


@_register("Activation", _act_parse)
def activation(data: Tensor, *, act_type: str) -> Tensor:
    return _ACTIVATIONS[act_type](data)


def _leaky_parse(a: Attrs, n: int) -> dict[str, Any]:
    act = a.text("act_type", "leaky")
    if act not in ("leaky", "prelu", "elu", "selu", "gelu", "rrelu"):
        raise Unsupported(f"act_type {act}")
    return {
        "act_type": act,
        "slope": a.number("slope", 0.25),
        "lower_bound": a.number("lower_bound", 0.125),
        "upper_bound": a.number("upper_bound", 0.334),
    }


@_register(
    "LeakyReLU",
    _leaky_parse,
    outputs=lambda kw: 2 if kw["act_type"] == "rrelu" else 1,
    stateful=True,
)
class LeakyReLU(torch.nn.Module):
    """MXNet's LeakyReLU family; ``rrelu`` draws a slope per element in training and uses
    the mean slope ``(lower + upper) / 2`` otherwise."""

    def __init__(self, act_type: str, slope: float, lower_bound: float, upper_bound: float):
        super().__init__()
        self.act_type = act_type
        self.slope = slope
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound

    def extra_repr(self) -> str:
        return f"act_type={self.act_type!r}, slope={self.slope}"

    def forward(self, data: Tensor, gamma: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        act = self.act_type
        if act == "leaky":
            return F.leaky_relu(data, self.slope)
        if act == "prelu":
            if gamma is None:
                raise MXParamsValueError("LeakyReLU(act_type='prelu') needs its gamma input")
            if data.dim() > 1 and gamma.numel() > 1:
                gamma = gamma.reshape((1, -1) + (1,) * (data.dim() - 2))
            return torch.where(data > 0, data, gamma * data)
        if act == "elu":
            return F.elu(data, self.slope)
        if act == "selu":
            return F.selu(data)
        if act == "gelu":
            return F.gelu(data)
        # rrelu also outputs its slopes (MXNet's mask output).
        if self.training:
            slope = torch.empty_like(data).uniform_(self.lower_bound, self.upper_bound)
        else:
            slope = torch.full_like(data, (self.lower_bound + self.upper_bound) / 2)
        return torch.where(data >= 0, data, data * slope), slope


def _dropout_parse(a: Attrs, n: int) -> dict[str, Any]:
    mode = a.text("mode", "training")
    if mode not in ("training", "always"):
        raise Unsupported(f"mode {mode}")
    return {"p": a.number("p", 0.5), "mode": mode, "axes": a.shape("axes")}


@_register("Dropout", _dropout_parse, stateful=True)
class Dropout(torch.nn.Module):
    """MXNet's Dropout: active in training (or always, ``mode='always'``); ``axes`` share
    one mask value along those axes (variational dropout)."""

    def __init__(self, p: float, mode: str, axes: tuple[int, ...]) -> None:
        super().__init__()
        self.p = p
        self.mode = mode
        self.axes = axes

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}, axes={self.axes}"

    def forward(self, data: Tensor) -> Tensor:
        if not (self.training or self.mode == "always") or self.p == 0:
            return data
        if not self.axes:
            return F.dropout(data, self.p, True)
        shape = [1 if i in self.axes else s for i, s in enumerate(data.shape)]
        keep = torch.empty(shape, dtype=data.dtype, device=data.device).bernoulli_(1 - self.p)
        return data * keep / (1 - self.p)


@_register(
    "hard_sigmoid", lambda a, n: {"alpha": a.number("alpha", 0.2), "beta": a.number("beta", 0.5)}
)
def hard_sigmoid(data: Tensor, *, alpha: float, beta: float) -> Tensor:
    return torch.clamp(data * alpha + beta, 0.0, 1.0)


# ---------------------------------------------------------------- pooling


def _pool_parse(a: Attrs, n: int) -> dict[str, Any]:
    _layout_check(a)
    pool_type = a.text("pool_type", "max")
    if pool_type not in ("max", "avg", "sum", "lp"):
        raise Unsupported(f"pool_type {pool_type}")
    glob = a.flag("global_pool", False)
    kernel = a.shape("kernel")
    if not glob and not 1 <= len(kernel) <= 3:
        raise Unsupported(f"kernel {kernel}")
    k = len(kernel)
    convention = a.text("pooling_convention", "valid")
    if convention not in ("valid", "full", "same"):
        raise Unsupported(f"pooling_convention {convention}")
    p_value = a.opt_int("p_value")
    if pool_type == "lp" and p_value is None:
        raise Unsupported("lp pooling without p_value")
    return {
        "kernel": kernel,
        "pool_type": pool_type,
        "global_pool": glob,
        "convention": convention,
        "stride": _tup(a.shape("stride"), k, 1),
        "pad": _tup(a.shape("pad"), k, 0),
        "count_include_pad": a.flag("count_include_pad", True),
        "p_value": p_value,
    }


def _pool_out(size: int, k: int, p: int, s: int, convention: str) -> int:
    if convention == "valid":
        return (size + 2 * p - k) // s + 1
    if convention == "full":
        return math.ceil((size + 2 * p - k) / s) + 1
    return math.ceil((size + 2 * p) / s)


@_register("Pooling", _pool_parse)
def pooling(
    data: Tensor,
    *,
    kernel: tuple[int, ...],
    pool_type: str,
    global_pool: bool,
    convention: str,
    stride: tuple[int, ...],
    pad: tuple[int, ...],
    count_include_pad: bool,
    p_value: int | None,
) -> Tensor:
    nsp = data.dim() - 2
    spatial = list(range(2, data.dim()))
    if global_pool:
        if pool_type == "max":
            return data.amax(dim=spatial, keepdim=True)
        if pool_type == "avg":
            return data.mean(dim=spatial, keepdim=True)
        if pool_type == "sum":
            return data.sum(dim=spatial, keepdim=True)
        if p_value is None:
            raise MXParamsValueError("Pooling(pool_type='lp') needs p_value")
        return data.pow(p_value).sum(dim=spatial, keepdim=True).pow(1.0 / p_value)
    if len(kernel) != nsp:
        raise MXParamsValueError(f"Pooling: a {len(kernel)}-d kernel on {data.dim()}-d data")
    sizes = data.shape[2:]
    outs = [_pool_out(sizes[i], kernel[i], pad[i], stride[i], convention) for i in range(nsp)]
    # Padding past the symmetric ``pad`` that MXNet's ceil-based conventions need.
    extra = [
        max(0, (outs[i] - 1) * stride[i] + kernel[i] - sizes[i] - 2 * pad[i]) for i in range(nsp)
    ]
    fits_torch = not any(extra) and all(2 * p <= k for p, k in zip(pad, kernel, strict=True))
    if pool_type == "max":
        if fits_torch:
            return (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nsp - 1](data, kernel, stride, pad)
        x = F.pad(data, _pads(pad, extra), value=-math.inf)
        return (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nsp - 1](x, kernel, stride)
    avg = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[nsp - 1]
    if pool_type == "avg" and fits_torch:
        return avg(data, kernel, stride, pad, False, count_include_pad)
    window = math.prod(kernel)
    p_norm = p_value or 1
    x = data if pool_type != "lp" else data.pow(p_norm)
    sums = avg(F.pad(x, _pads(pad, extra)), kernel, stride, 0, False, True) * window
    if pool_type == "sum":
        return sums
    if pool_type == "lp":
        return sums.pow(1.0 / p_norm)
    # MXNet divides by the window clipped to the padded input (or to the input).
    ones = torch.ones((1, 1) + tuple(sizes), dtype=data.dtype, device=data.device)
    if count_include_pad:
        mask = F.pad(F.pad(ones, _pads(pad, [0] * nsp), value=1.0), _pads([0] * nsp, extra))
    else:
        mask = F.pad(ones, _pads(pad, extra))
    counts = avg(mask, kernel, stride, 0, False, True) * window
    return sums / counts


def _pads(pad: Sequence[int], extra: Sequence[int]) -> list[int]:
    # F.pad lists the last dimension first.
    out: list[int] = []
    for p, e in zip(reversed(pad), reversed(extra), strict=True):
        out += [p, p + e]
    return out


def _upsampling_parse(a: Attrs, n: int) -> dict[str, Any]:
    kind = a.text("sample_type")
    if kind not in ("nearest", "bilinear"):
        raise Unsupported(f"sample_type {kind}")
    mode = a.text("multi_input_mode", "concat")
    if mode not in ("concat", "sum"):
        raise Unsupported(f"multi_input_mode {mode}")
    return {"scale": a.integer("scale"), "sample_type": kind, "multi_input_mode": mode}


@_register("UpSampling", _upsampling_parse)
def upsampling(*inputs: Tensor, scale: int, sample_type: str, multi_input_mode: str) -> Tensor:
    if sample_type == "bilinear":
        # MXNet runs a depthwise deconvolution with the (bilinear) weight input.
        data, weight = inputs
        # Its kernel is 2 * scale - scale % 2 wide (the weight's shape).
        pad = math.ceil((scale - 1) / 2)
        return F.conv_transpose2d(data, weight, None, scale, pad, 0, data.shape[1])
    h = inputs[0].shape[2] * scale
    w = inputs[0].shape[3] * scale
    outs = [
        x.repeat_interleave(h // x.shape[2], 2).repeat_interleave(w // x.shape[3], 3)
        for x in inputs
    ]
    if len(outs) == 1:
        return outs[0]
    if multi_input_mode == "sum":
        return torch.stack(outs).sum(0)
    return torch.cat(outs, 1)


# ---------------------------------------------------------------- softmax family


def _softmax_parse(a: Attrs, n: int) -> dict[str, Any]:
    if a.flag("use_length", False):
        raise Unsupported("use_length=True")
    t = a.opt_float("temperature")
    return {"axis": a.integer("axis", -1), "temperature": t}


@_register("softmax", _softmax_parse)
def softmax(data: Tensor, *, axis: int, temperature: float | None) -> Tensor:
    return F.softmax(data if temperature is None else data / temperature, dim=axis)


@_register("log_softmax", _softmax_parse)
def log_softmax(data: Tensor, *, axis: int, temperature: float | None) -> Tensor:
    return F.log_softmax(data if temperature is None else data / temperature, dim=axis)


@_register("softmin", _softmax_parse)
def softmin(data: Tensor, *, axis: int, temperature: float | None) -> Tensor:
    return F.softmax(-(data if temperature is None else data / temperature), dim=axis)


def _softmax_act_parse(a: Attrs, n: int) -> dict[str, Any]:
    mode = a.text("mode", "instance")
    if mode not in ("instance", "channel"):
        raise Unsupported(f"mode {mode}")
    return {"mode": mode}


@_register("SoftmaxActivation", _softmax_act_parse)
def softmax_activation(data: Tensor, *, mode: str) -> Tensor:
    # 'instance' flattens all leading axes into rows: a softmax over the last axis.
    return F.softmax(data, dim=1 if mode == "channel" else -1)


@_register(
    "SoftmaxOutput",
    lambda a, n: {"multi_output": a.flag("multi_output", False)},
)
def softmax_output(data: Tensor, label: Tensor | None = None, *, multi_output: bool) -> Tensor:
    # Forward only: the label matters for the gradient, not the output. Without
    # multi_output MXNet normalises over the last axis (preserve_shape or not).
    return F.softmax(data, dim=1 if multi_output else -1)


@_register(("LinearRegressionOutput", "MAERegressionOutput"))
def regression_output(data: Tensor, label: Tensor | None = None) -> Tensor:
    return data


@_register("LogisticRegressionOutput")
def logistic_regression_output(data: Tensor, label: Tensor | None = None) -> Tensor:
    return torch.sigmoid(data)


# ---------------------------------------------------------------- elementwise

_BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "mod": torch.remainder,  # MXNet's mod takes the divisor's sign, as Python's %
    "power": torch.pow,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "hypot": torch.hypot,
}
_COMPARE: dict[str, Callable[[Any, Any], Tensor]] = {
    "equal": torch.eq,
    "not_equal": torch.ne,
    "greater": torch.gt,
    "greater_equal": torch.ge,
    "lesser": torch.lt,
    "lesser_equal": torch.le,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
}


def _binary_kw(kind: str) -> Callable[[Attrs, int], dict[str, Any]]:
    return lambda a, n: {"kind": kind}


def _bind_binary(names: Sequence[str], kind: str) -> None:
    spec = OpSpec(binary, _binary_kw(kind))
    for name in names:
        REGISTRY[name] = spec


def binary(lhs: Tensor, rhs: Tensor, *, kind: str) -> Tensor:
    """Elementwise and broadcasting binary operators; comparisons give 1/0 in lhs's dtype."""
    if kind in _COMPARE:
        return _COMPARE[kind](lhs, rhs).to(lhs.dtype)
    return _BINARY[kind](lhs, rhs)


for _kind, _names in {
    "add": ("elemwise_add", "_plus", "_Plus", "_add", "broadcast_add", "broadcast_plus"),
    "sub": ("elemwise_sub", "_minus", "_Minus", "_sub", "broadcast_sub", "broadcast_minus"),
    "mul": ("elemwise_mul", "_mul", "_Mul", "broadcast_mul"),
    "div": ("elemwise_div", "_div", "_Div", "broadcast_div"),
    "mod": ("_mod", "broadcast_mod"),
    "power": ("_power", "_Power", "broadcast_power"),
    "maximum": ("_maximum", "_Maximum", "broadcast_maximum"),
    "minimum": ("_minimum", "_Minimum", "broadcast_minimum"),
    "hypot": ("_hypot", "broadcast_hypot"),
    "equal": ("_equal", "broadcast_equal"),
    "not_equal": ("_not_equal", "broadcast_not_equal"),
    "greater": ("_greater", "broadcast_greater"),
    "greater_equal": ("_greater_equal", "broadcast_greater_equal"),
    "lesser": ("_lesser", "broadcast_lesser"),
    "lesser_equal": ("_lesser_equal", "broadcast_lesser_equal"),
    "logical_and": ("_logical_and", "broadcast_logical_and"),
    "logical_or": ("_logical_or", "broadcast_logical_or"),
    "logical_xor": ("_logical_xor", "broadcast_logical_xor"),
}.items():
    _bind_binary(_names, _kind)


def scalar(data: Tensor, *, kind: str, value: float, reverse: bool) -> Tensor:
    """``_*_scalar`` operators; MXNet casts the scalar to the array's type."""
    if not data.is_floating_point():
        value = int(value)
    other = torch.tensor(value, dtype=data.dtype, device=data.device)
    lhs, rhs = (other, data) if reverse else (data, other)
    if kind in _COMPARE:
        return _COMPARE[kind](lhs, rhs).to(data.dtype)
    return _BINARY[kind](lhs, rhs)


for _name, (_kind, _rev) in {
    "_plus_scalar": ("add", False),
    "_PlusScalar": ("add", False),
    "_minus_scalar": ("sub", False),
    "_MinusScalar": ("sub", False),
    "_rminus_scalar": ("sub", True),
    "_RMinusScalar": ("sub", True),
    "_mul_scalar": ("mul", False),
    "_MulScalar": ("mul", False),
    "_div_scalar": ("div", False),
    "_DivScalar": ("div", False),
    "_rdiv_scalar": ("div", True),
    "_RDivScalar": ("div", True),
    "_mod_scalar": ("mod", False),
    "_rmod_scalar": ("mod", True),
    "_power_scalar": ("power", False),
    "_PowerScalar": ("power", False),
    "_rpower_scalar": ("power", True),
    "_RPowerScalar": ("power", True),
    "_maximum_scalar": ("maximum", False),
    "_MaximumScalar": ("maximum", False),
    "_minimum_scalar": ("minimum", False),
    "_MinimumScalar": ("minimum", False),
    "_hypot_scalar": ("hypot", False),
    "_equal_scalar": ("equal", False),
    "_not_equal_scalar": ("not_equal", False),
    "_greater_scalar": ("greater", False),
    "_greater_equal_scalar": ("greater_equal", False),
    "_lesser_scalar": ("lesser", False),
    "_lesser_equal_scalar": ("lesser_equal", False),
    "_logical_and_scalar": ("logical_and", False),
    "_logical_or_scalar": ("logical_or", False),
    "_logical_xor_scalar": ("logical_xor", False),
}.items():
    REGISTRY[_name] = OpSpec(
        scalar,
        (lambda k, r: lambda a, n: {"kind": k, "value": a.number("scalar"), "reverse": r})(
            _kind, _rev
        ),
    )


@_register(("add_n", "ElementWiseSum"))
def add_n(*inputs: Tensor) -> Tensor:
    out = inputs[0]
    for x in inputs[1:]:
        out = out + x
    return out


_UNARY: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "exp": torch.exp,
    "log": torch.log,
    "log2": torch.log2,
    "log10": torch.log10,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "square": torch.square,
    "abs": torch.abs,
    "negative": torch.neg,
    "reciprocal": torch.reciprocal,
    "floor": torch.floor,
    "ceil": torch.ceil,
    "round": lambda x: torch.sign(x) * torch.floor(torch.abs(x) + 0.5),  # halves away from 0
    "trunc": torch.trunc,
    "sign": torch.sign,
    "sin": torch.sin,
    "cos": torch.cos,
    "erf": torch.erf,
    "softsign": F.softsign,
    "logical_not": lambda x: torch.logical_not(x).to(x.dtype),
}


def unary(data: Tensor, *, kind: str) -> Tensor:
    """Elementwise math (``relu``, ``exp``, ``sqrt``, ...)."""
    return _UNARY[kind](data)


for _name in _UNARY:
    REGISTRY[_name] = OpSpec(unary, (lambda k: lambda a, n: {"kind": k})(_name))


@_register(("BlockGrad", "stop_gradient"))
def block_grad(data: Tensor) -> Tensor:
    return data.detach()


@_register(("_copy", "identity", "make_loss", "MakeLoss", "_identity_with_attr_like_rhs"))
def identity(data: Tensor, *rest: Tensor) -> Tensor:
    return data


@_register(("clip",), lambda a, n: {"a_min": a.number("a_min"), "a_max": a.number("a_max")})
def clip(data: Tensor, *, a_min: float, a_max: float) -> Tensor:
    return torch.clamp(data, a_min, a_max)


@_register(("Cast", "cast", "amp_cast"), lambda a, n: {"dtype": _dtype(a.text("dtype"))})
def cast(data: Tensor, *, dtype: torch.dtype) -> Tensor:
    return data.to(dtype)


@_register(("zeros_like",))
def zeros_like(data: Tensor) -> Tensor:
    return torch.zeros_like(data)


@_register(("ones_like",))
def ones_like(data: Tensor) -> Tensor:
    return torch.ones_like(data)


@_register("where")
def where(condition: Tensor, x: Tensor, y: Tensor) -> Tensor:
    return torch.where(condition != 0, x, y)


# ---------------------------------------------------------------- reductions


def _reduce_parse(a: Attrs, n: int) -> dict[str, Any]:
    return {
        "axis": a.axes("axis"),
        "keepdims": a.flag("keepdims", False),
        "exclude": a.flag("exclude", False),
    }


def _reduce_dims(data: Tensor, axis: tuple[int, ...] | None, exclude: bool) -> list[int]:
    if axis is None or (len(axis) == 0 and not exclude):
        return list(range(data.dim()))
    chosen = {_norm_axis(a, data.dim()) for a in axis}
    if exclude:
        return [d for d in range(data.dim()) if d not in chosen]
    return sorted(chosen)


def _reduction(
    fn: Callable[[Tensor, list[int], bool], Tensor],
) -> Callable[..., Tensor]:
    def run(data: Tensor, *, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool) -> Tensor:
        dims = _reduce_dims(data, axis, exclude)
        if not dims:
            return data
        out = fn(data, dims, keepdims)
        # MXNet has no 0-d arrays: a full reduction gives shape (1,).
        return out.reshape(1) if out.dim() == 0 else out

    return run


reduce_sum = _register(("sum", "sum_axis"), _reduce_parse)(
    _reduction(lambda x, d, k: x.sum(dim=d, keepdim=k))
)
reduce_mean = _register("mean", _reduce_parse)(_reduction(lambda x, d, k: x.mean(dim=d, keepdim=k)))
reduce_max = _register(("max", "max_axis"), _reduce_parse)(
    _reduction(lambda x, d, k: x.amax(dim=d, keepdim=k))
)
reduce_min = _register(("min", "min_axis"), _reduce_parse)(
    _reduction(lambda x, d, k: x.amin(dim=d, keepdim=k))
)
reduce_prod = _register("prod", _reduce_parse)(_reduction(lambda x, d, k: _prod(x, d, k)))
for _fn, _nm in (
    (reduce_sum, "reduce_sum"),
    (reduce_mean, "reduce_mean"),
    (reduce_max, "reduce_max"),
    (reduce_min, "reduce_min"),
    (reduce_prod, "reduce_prod"),
):
    _fn.__name__ = _fn.__qualname__ = _nm


def _prod(x: Tensor, dims: list[int], keep: bool) -> Tensor:
    for d in sorted(dims, reverse=True):
        x = x.prod(dim=d, keepdim=keep)
    return x


@_register(
    "norm",
    lambda a, n: {
        "ord": a.integer("ord", 2),
        "axis": a.axes("axis"),
        "keepdims": a.flag("keepdims", False),
    },
)
def norm(data: Tensor, *, ord: int, axis: tuple[int, ...] | None, keepdims: bool) -> Tensor:
    dims = _reduce_dims(data, axis, False)
    if ord == 1:
        return data.abs().sum(dim=dims, keepdim=keepdims)
    return torch.sqrt((data * data).sum(dim=dims, keepdim=keepdims))


def _arg_parse(a: Attrs, n: int) -> dict[str, Any]:
    return {"axis": a.opt_int("axis"), "keepdims": a.flag("keepdims", False)}


@_register("argmax", _arg_parse)
def argmax(data: Tensor, *, axis: int | None, keepdims: bool) -> Tensor:
    # MXNet returns indices as floats of the input's type.
    return torch.argmax(data, dim=axis, keepdim=keepdims).to(data.dtype)


@_register("argmin", _arg_parse)
def argmin(data: Tensor, *, axis: int | None, keepdims: bool) -> Tensor:
    return torch.argmin(data, dim=axis, keepdim=keepdims).to(data.dtype)


# ---------------------------------------------------------------- shape ops


def infer_reshape(
    ishape: Sequence[int], spec: Sequence[int], reverse: bool = False
) -> tuple[int, ...]:
    """The output shape of MXNet's Reshape for ``spec`` with its special codes.

    ``0`` copies the input dimension, ``-1`` is inferred, ``-2`` copies the rest,
    ``-3`` merges two input dimensions, ``-4 a b`` splits one into two (either may
    be -1). ``reverse`` matches the codes from the right.
    """
    src = list(ishape)
    codes = list(spec)
    if reverse:
        if -4 in codes:
            raise MXParamsValueError("Reshape: reverse=True with -4 is not supported")
        src.reverse()
        codes.reverse()
    out: list[int] = []
    infer_at = -1
    i = j = 0
    while i < len(codes):
        c = codes[i]
        if c > 0:
            out.append(c)
            j += 1
        elif c == 0:
            out.append(src[j])
            j += 1
        elif c == -1:
            if infer_at >= 0:
                raise MXParamsValueError("Reshape: more than one -1")
            infer_at = len(out)
            out.append(1)
            j += 1
        elif c == -2:
            out.extend(src[j:])
            j = len(src)
        elif c == -3:
            out.append(src[j] * src[j + 1])
            j += 2
        elif c == -4:
            d0 = src[j]
            d1, d2 = codes[i + 1], codes[i + 2]
            i += 2
            if d1 == -1:
                d1 = d0 // d2
            if d2 == -1:
                d2 = d0 // d1
            if d1 * d2 != d0:
                raise MXParamsValueError(f"Reshape: cannot split {d0} into {d1} x {d2}")
            out += [d1, d2]
            j += 1
        else:
            raise MXParamsValueError(f"Reshape: invalid code {c}")
        i += 1
    if infer_at >= 0:
        known = math.prod(out)
        out[infer_at] = math.prod(src) // known if known else 0
    if reverse:
        out.reverse()
    if math.prod(out) != math.prod(src):
        raise MXParamsValueError(
            f"Reshape: cannot reshape {tuple(ishape)} to {tuple(out)} ({tuple(spec)})"
        )
    return tuple(out)


def _reshape_parse(a: Attrs, n: int) -> dict[str, Any]:
    shape = a.shape("shape")
    if not shape and a.has("target_shape"):
        # Legacy spelling: 0 marks the one dimension to infer.
        shape = tuple(-1 if d == 0 else d for d in a.shape("target_shape"))
        if a.flag("keep_highest", False):
            shape = (0,) + shape[1:]
    reverse = a.flag("reverse", False)
    if reverse and -4 in shape:
        raise Unsupported("reverse=True with -4")
    return {"shape": shape, "reverse": reverse}


@_register(("Reshape", "reshape"), _reshape_parse)
def reshape(data: Tensor, *, shape: tuple[int, ...], reverse: bool) -> Tensor:
    return data.reshape(infer_reshape(data.shape, shape, reverse))


@_register("reshape_like")
def reshape_like(data: Tensor, like: Tensor) -> Tensor:
    return data.reshape(like.shape)


@_register(("Flatten", "flatten"))
def flatten(data: Tensor) -> Tensor:
    return data.reshape(data.shape[0], -1)


@_register(("Concat", "concat"), lambda a, n: {"dim": a.integer("dim", 1)})
def concat(*inputs: Tensor, dim: int) -> Tensor:
    return torch.cat(inputs, dim)


@_register("stack", lambda a, n: {"axis": a.integer("axis", 0)})
def stack(*inputs: Tensor, axis: int) -> Tensor:
    return torch.stack(inputs, axis)


def _split_parse(a: Attrs, n: int) -> dict[str, Any]:
    return {
        "num_outputs": a.integer("num_outputs"),
        "axis": a.integer("axis", 1),
        "squeeze_axis": a.flag("squeeze_axis", False),
    }


@_register(("SliceChannel", "split"), _split_parse, outputs=lambda kw: int(kw["num_outputs"]))
def slice_channel(
    data: Tensor, *, num_outputs: int, axis: int, squeeze_axis: bool
) -> tuple[Tensor, ...]:
    parts = torch.chunk(data, num_outputs, axis)
    if len(parts) != num_outputs or data.shape[axis] % num_outputs:
        raise MXParamsValueError(
            f"SliceChannel: axis {axis} of size {data.shape[axis]} "
            f"does not split into {num_outputs}"
        )
    if squeeze_axis:
        parts = tuple(p.squeeze(axis) for p in parts)
    return tuple(parts)


def _index(data: Tensor, axis: int, begin: int | None, end: int | None, step: int) -> Tensor:
    size = data.shape[axis]
    start, stop, stride = slice(begin, end, step).indices(size)
    if stride > 0:
        return data[(slice(None),) * axis + (slice(start, stop, stride),)]
    # torch has no negative-step slicing.
    idx = torch.arange(start, stop, stride, device=data.device)
    return data.index_select(axis, idx)


@_register(
    "slice",
    lambda a, n: {
        "begin": a.opt_tuple("begin"),
        "end": a.opt_tuple("end"),
        "step": a.opt_tuple("step"),
    },
)
def slice_op(
    data: Tensor,
    *,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> Tensor:
    for axis in range(len(begin)):
        s = step[axis] if axis < len(step) and step[axis] is not None else 1
        e = end[axis] if axis < len(end) else None
        data = _index(data, axis, begin[axis], e, s)  # type: ignore[arg-type]
    return data


@_register(
    "slice_axis",
    lambda a, n: {
        "axis": a.integer("axis"),
        "begin": a.opt_int("begin") or 0,
        "end": a.opt_int("end"),
    },
)
def slice_axis(data: Tensor, *, axis: int, begin: int, end: int | None) -> Tensor:
    return _index(data, _norm_axis(axis, data.dim()), begin, end, 1)


@_register("slice_like", lambda a, n: {"axes": a.shape("axes")})
def slice_like(data: Tensor, like: Tensor, *, axes: tuple[int, ...]) -> Tensor:
    dims = [_norm_axis(a, data.dim()) for a in axes] if axes else range(min(data.dim(), like.dim()))
    for d in dims:
        data = data.narrow(d, 0, like.shape[d])
    return data


@_register("transpose", lambda a, n: {"axes": a.shape("axes")})
def transpose(data: Tensor, *, axes: tuple[int, ...]) -> Tensor:
    return data.permute(axes if axes else tuple(reversed(range(data.dim()))))


@_register(
    ("SwapAxis", "swapaxes"),
    lambda a, n: {"dim1": a.integer("dim1", 0), "dim2": a.integer("dim2", 0)},
)
def swapaxes(data: Tensor, *, dim1: int, dim2: int) -> Tensor:
    return data.transpose(dim1, dim2)


@_register("expand_dims", lambda a, n: {"axis": a.integer("axis")})
def expand_dims(data: Tensor, *, axis: int) -> Tensor:
    return data.unsqueeze(axis if axis >= 0 else axis + data.dim() + 1)


@_register("squeeze", lambda a, n: {"axis": a.axes("axis")})
def squeeze(data: Tensor, *, axis: tuple[int, ...] | None) -> Tensor:
    if axis is None:
        dims = [d for d in range(data.dim()) if data.shape[d] == 1]
        out = data.squeeze(dims) if dims else data
        # MXNet keeps one dimension rather than returning a scalar.
        return out.reshape(1) if out.dim() == 0 else out
    return data.squeeze([_norm_axis(a, data.dim()) for a in axis])


@_register("tile", lambda a, n: {"reps": a.shape("reps")})
def tile(data: Tensor, *, reps: tuple[int, ...]) -> Tensor:
    return data.tile(reps)


@_register("repeat", lambda a, n: {"repeats": a.integer("repeats"), "axis": a.opt_int("axis")})
def repeat(data: Tensor, *, repeats: int, axis: int | None) -> Tensor:
    if axis is None:
        return data.reshape(-1).repeat_interleave(repeats)
    return data.repeat_interleave(repeats, axis)


@_register("broadcast_to", lambda a, n: {"shape": a.shape("shape")})
def broadcast_to(data: Tensor, *, shape: tuple[int, ...]) -> Tensor:
    target = [data.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return data.expand(target)


@_register(
    "broadcast_like", lambda a, n: {"lhs_axes": a.axes("lhs_axes"), "rhs_axes": a.axes("rhs_axes")}
)
def broadcast_like(
    data: Tensor,
    like: Tensor,
    *,
    lhs_axes: tuple[int, ...] | None,
    rhs_axes: tuple[int, ...] | None,
) -> Tensor:
    if lhs_axes is None or rhs_axes is None:
        return data.expand(like.shape)
    target = list(data.shape)
    for la, ra in zip(lhs_axes, rhs_axes, strict=True):
        target[_norm_axis(la, data.dim())] = like.shape[_norm_axis(ra, like.dim())]
    return data.expand(target)


@_register(
    ("broadcast_axis", "broadcast_axes"),
    lambda a, n: {"axis": a.shape("axis"), "size": a.shape("size")},
)
def broadcast_axis(data: Tensor, *, axis: tuple[int, ...], size: tuple[int, ...]) -> Tensor:
    target = list(data.shape)
    for ax, s in zip(axis, size, strict=True):
        target[_norm_axis(ax, data.dim())] = s
    return data.expand(target)


def _pad_parse(a: Attrs, n: int) -> dict[str, Any]:
    mode = a.text("mode")
    if mode not in ("constant", "edge", "reflect"):
        raise Unsupported(f"mode {mode}")
    width = a.shape("pad_width")
    if len(width) % 2 or any(width[:4]):
        raise Unsupported("padding of the batch or channel axis")
    return {"mode": mode, "pad_width": width, "constant_value": a.number("constant_value", 0.0)}


@_register(("Pad", "pad"), _pad_parse)
def pad(data: Tensor, *, mode: str, pad_width: tuple[int, ...], constant_value: float) -> Tensor:
    pads: list[int] = []
    for i in range(len(pad_width) // 2 - 1, 1, -1):
        pads += [pad_width[2 * i], pad_width[2 * i + 1]]
    if mode == "constant":
        return F.pad(data, pads, value=constant_value)
    return F.pad(data, pads, mode="replicate" if mode == "edge" else "reflect")


def _crop_parse(a: Attrs, n: int) -> dict[str, Any]:
    return {
        "offset": _tup(a.shape("offset"), 2, 0),
        "h_w": _tup(a.shape("h_w"), 2, 0),
        "center_crop": a.flag("center_crop", False),
    }


@_register("Crop", _crop_parse)
def crop(
    data: Tensor,
    like: Tensor | None = None,
    *,
    offset: tuple[int, ...],
    h_w: tuple[int, ...],
    center_crop: bool,
) -> Tensor:
    h, w = (like.shape[2], like.shape[3]) if like is not None else h_w
    if center_crop:
        y, x = (data.shape[2] - h) // 2, (data.shape[3] - w) // 2
    else:
        y, x = offset
    return data[:, :, y : y + h, x : x + w]


def _dot_parse(a: Attrs, n: int) -> dict[str, Any]:
    return {
        "transpose_a": a.flag("transpose_a", False),
        "transpose_b": a.flag("transpose_b", False),
    }


@_register("dot", _dot_parse)
def dot(lhs: Tensor, rhs: Tensor, *, transpose_a: bool, transpose_b: bool) -> Tensor:
    if transpose_a:
        lhs = lhs.permute(tuple(reversed(range(lhs.dim()))))
    if transpose_b:
        rhs = rhs.permute(tuple(reversed(range(rhs.dim()))))
    out: Tensor = torch.tensordot(lhs, rhs, dims=1)
    return out


@_register("batch_dot", _dot_parse)
def batch_dot(lhs: Tensor, rhs: Tensor, *, transpose_a: bool, transpose_b: bool) -> Tensor:
    if transpose_a:
        lhs = lhs.transpose(-1, -2)
    if transpose_b:
        rhs = rhs.transpose(-1, -2)
    return torch.matmul(lhs, rhs)


def dense_output(data: Tensor) -> Tensor:
    """A graph output in torch's default (contiguous) memory format: fused
    convolutions run channels-last, and callers expect what they passed in."""
    return data.contiguous()


def getitem(value: Any, index: int) -> Any:
    """Picks one output of a multi-output operator (named for readable generated code)."""
    return operator.getitem(value, index)
