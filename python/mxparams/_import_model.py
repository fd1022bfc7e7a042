"""MXNet ``-symbol.json`` + ``.params`` -> ``torch.fx.GraphModule``, and on to files.

:func:`import_model` turns the graph into a ``torch.fx.GraphModule`` whose
forward calls the operators of :mod:`mxparams.ops_torch` (readable with
``module.code``). Weights are ``nn.Parameter`` objects and running statistics
buffers, registered under their MXNet names, so ``state_dict()`` keys are the
``.params`` names without their ``arg:``/``aux:`` prefixes and
:func:`save_params` writes a file MXNet loads back.

The parameter arrays are read with :func:`mxparams.nd.load` and handed to
torch through DLPack without copying.

:func:`export_model` goes on to a ``torch.export`` program (``.pt``), a
safetensors file of the weights and a standalone Python file with the
module's code.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import math
import os
import re
import types
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx

from . import nd
from ._errors import MXParamsError, MXParamsTypeError
from ._files import write_bytes, write_with
from ._native import NDArray
from .ops_torch import REGISTRY, ConvBatchNorm, Unsupported, dense_output, getitem
from .symbol import (
    Graph,
    Node,
    SymbolFormatError,
    UnsupportedOpError,
    as_graph,
    split_param_name,
)

__all__ = [
    "export_model",
    "import_model",
    "infer_shapes",
    "module_source",
    "optimize_for_inference",
    "save_params",
    "save_safetensors",
]

PathLike = str | os.PathLike[str]
ParamsLike = PathLike | Mapping[str, Any] | None

# Container for the mode-dependent operator modules (BatchNorm, Dropout, ...).
_OPS = "ops"


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name) or "_"
    if ident[0].isdigit() or keyword.iskeyword(ident):
        ident = "_" + ident
    return ident


def _resolve(
    symbol: Graph | PathLike | bytes, params: ParamsLike, epoch: int | None
) -> tuple[Graph, ParamsLike, str]:
    """Accepts a prefix (``'NAME'`` -> ``NAME-symbol.json`` + ``NAME-%04d.params``)."""
    if isinstance(symbol, (str, os.PathLike)) and not (
        isinstance(symbol, str) and symbol.lstrip().startswith("{")
    ):
        path = Path(symbol)
        as_prefix = Path(f"{os.fspath(symbol)}-symbol.json")
        if not path.is_file() and as_prefix.is_file():
            if params is None:
                params = f"{os.fspath(symbol)}-{epoch or 0:04d}.params"
            return as_graph(as_prefix), params, as_prefix.stem[: -len("-symbol")]
        if params is None and epoch is not None and path.name.endswith("-symbol.json"):
            params = f"{os.fspath(path)[: -len('-symbol.json')]}-{epoch:04d}.params"
        return as_graph(path), params, path.name.removesuffix("-symbol.json")
    return as_graph(symbol), params, "model"


def _to_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, NDArray):
        # Zero-copy: the tensor keeps the NDArray's buffer alive.
        return torch.utils.dlpack.from_dlpack(value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise MXParamsTypeError(f"parameter {name!r}: expected an NDArray, numpy array or tensor")


def _load_params(params: ParamsLike) -> tuple[dict[str, torch.Tensor], set[str]]:
    """name -> tensor (prefixes stripped) and the names stored as ``aux:``."""
    if params is None:
        return {}, set()
    if isinstance(params, (str, os.PathLike)):
        loaded = nd.load(params)
        if isinstance(loaded, list) and not loaded:
            loaded = {}  # MXNet writes an empty dict as an empty list
        if not isinstance(loaded, dict):
            raise MXParamsError(f"{os.fspath(params)}: the file stores no parameter names")
        params = loaded
    out: dict[str, torch.Tensor] = {}
    aux: set[str] = set()
    for key, value in params.items():
        kind, name = split_param_name(key)
        if kind == "aux":
            aux.add(name)
        out[name] = _to_tensor(value, key)
    return out, aux


def _check_ops(graph: Graph) -> None:
    """Every unsupported operator (and setting), reported together before anything runs."""
    problems: dict[tuple[str, str], dict[str, Any]] = {}
    for n in graph.ops():
        spec = REGISTRY.get(n.op)
        reason = "no implementation"
        if spec is not None:
            try:
                spec.parse(n.attr(), len(n.inputs))
                continue
            except Unsupported as e:
                reason = str(e)
        key = (n.op, reason)
        if key in problems:
            problems[key]["count"] += 1
        else:
            problems[key] = {"op": n.op, "count": 1, "first_node": n.name, "reason": reason}
    if problems:
        raise UnsupportedOpError(list(problems.values()))


def _is_parameter_var(attrs: Mapping[str, str]) -> bool:
    # Gluon writes these for parameters and nothing for data inputs (operators such
    # as UpSampling put an ``__init__`` on data inputs too, so it does not count).
    return any(k in attrs for k in ("__shape__", "__lr_mult__", "__wd_mult__"))


def _check_shape(name: str, declared: tuple[int, ...] | None, actual: torch.Size) -> None:
    if declared is None or not declared:
        return
    ok = len(declared) == len(actual) and all(
        d in (0, -1) or d == a for d, a in zip(declared, actual, strict=True)
    )
    if not ok:
        raise MXParamsError(
            f"parameter {name!r} has shape {tuple(actual)} but the symbol declares {declared}"
        )


def import_model(
    symbol: Graph | PathLike | bytes,
    params: ParamsLike = None,
    *,
    inputs: Sequence[str] | str | None = None,
    epoch: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    fuse: bool = True,
) -> fx.GraphModule:
    """Builds a ``torch.fx.GraphModule`` running an exported MXNet model.

    Parameters
    ----------
    symbol
        A ``-symbol.json`` path, its JSON text, a parsed :class:`~mxparams.symbol.Graph`,
        or a prefix ``NAME`` for ``NAME-symbol.json`` (with ``NAME-%04d.params``
        at ``epoch``, default 0).
    params
        A ``.params`` path or a mapping of names (``arg:``/``aux:`` prefixes
        optional) to NDArrays, numpy arrays or tensors.
    inputs
        Names of the data inputs, in the order ``forward`` takes them. By default
        the variables that are neither parameters nor loss labels, in graph order.
    device, dtype
        Moved / cast after building (``module.to(...)``).
    fuse
        Run each Convolution -> BatchNorm (-> ReLU / clip) chain as one
        :class:`~mxparams.ops_torch.ConvBatchNorm` step, which folds the
        BatchNorm into the convolution in inference (the parameters stay as
        they are). ``False`` keeps one graph node per MXNet operator.

    The module starts in ``eval()`` mode (BatchNorm on its running statistics,
    Dropout off); ``train()`` switches both as MXNet's training mode does.
    """
    graph, params, _ = _resolve(symbol, params, epoch)
    _check_ops(graph)
    weights, stored_aux = _load_params(params)
    aux = graph.aux_names() | stored_aux
    labels = graph.label_names()
    variables = graph.variables()

    if isinstance(inputs, str):
        inputs = [inputs]
    if inputs is None:
        input_names = list(
            dict.fromkeys(
                v.name
                for v in variables
                if v.name not in weights and v.name not in labels and not _is_parameter_var(v.attrs)
            )
        )
    else:
        input_names = list(inputs)
        known = {v.name for v in variables}
        unknown = [n for n in input_names if n not in known]
        if unknown:
            raise MXParamsError(f"inputs {unknown} are not variables of the symbol")
    missing = [
        v.name
        for v in variables
        if v.name not in weights and v.name not in input_names and v.name not in labels
    ]
    if missing:
        raise MXParamsError(
            f"{len(missing)} parameter(s) of the symbol are not in the params: "
            + ", ".join(repr(m) for m in missing[:10])
            + (" ..." if len(missing) > 10 else "")
        )

    root = torch.nn.Module()
    ops_container = torch.nn.Module()
    taken = set(dir(torch.nn.Module())) | {_OPS}
    torch_names: dict[str, str] = {}  # MXNet name -> attribute name
    for v in variables:
        if v.name in input_names or v.name in labels or v.name in torch_names:
            continue
        tensor = weights[v.name]
        _check_shape(v.name, v.shape, tensor.shape)
        attr = v.name if "." not in v.name and v.name and v.name not in taken else ""
        if not attr:
            base = _identifier(v.name)
            attr, i = base, 1
            while attr in taken:
                attr, i = f"{base}_{i}", i + 1
        taken.add(attr)
        torch_names[v.name] = attr
        if v.name in aux:
            root.register_buffer(attr, tensor)
        else:
            root.register_parameter(attr, torch.nn.Parameter(tensor, requires_grad=True))
    root.add_module(_OPS, ops_container)

    g = fx.Graph()
    env: dict[int, fx.Node] = {}
    multi: dict[int, int] = {}
    picked: dict[tuple[int, int], fx.Node] = {}
    # Variables are identified by name: MXNet binds every node of one name to one array.
    for name in input_names:
        node = g.placeholder(_identifier(name))
        for v in variables:
            if v.name == name:
                env[v.index] = node
    attr_nodes: dict[str, fx.Node] = {}
    ops_kwargs: dict[str, tuple[str, dict[str, Any]]] = {}

    def value(src: int, out: int) -> fx.Node:
        if src not in multi:
            if out != 0:
                raise SymbolFormatError(
                    f"node {graph.nodes[src].name!r} has one output, not output {out}"
                )
            return env[src]
        if out >= multi[src]:
            raise SymbolFormatError(
                f"node {graph.nodes[src].name!r} has {multi[src]} outputs, not output {out}"
            )
        key = (src, out)
        if key not in picked:
            picked[key] = g.call_function(getitem, (env[src], out))
        return picked[key]

    # A fused chain is emitted at its last node, when all of its inputs exist.
    chains = {c[-1]: c for c in _conv_bn_chains(graph)} if fuse else {}
    absorbed = {idx for chain in chains.values() for idx in chain[:-1]}
    for n in graph.nodes:
        if n.index in absorbed:
            continue
        if n.index in chains:
            env[n.index] = _emit_chain(g, graph, chains[n.index], env, ops_container, ops_kwargs)
            continue
        if n.is_variable:
            if n.index not in env and n.name in torch_names:
                if n.name not in attr_nodes:
                    attr_nodes[n.name] = g.get_attr(torch_names[n.name])
                env[n.index] = attr_nodes[n.name]
            continue
        spec = REGISTRY[n.op]
        kwargs = spec.parse(n.attr(), len(n.inputs))
        args = []
        for src, out in n.inputs:
            if graph.nodes[src].is_variable and graph.nodes[src].name in labels:
                continue
            args.append(value(src, out))
        node_name = _identifier(n.name)
        if spec.stateful:
            sub = node_name
            while hasattr(ops_container, sub):
                sub += "_"
            ops_container.add_module(sub, spec.fn(**kwargs))
            ops_kwargs[sub] = (spec.fn.__name__, kwargs)
            node = g.create_node("call_module", f"{_OPS}.{sub}", tuple(args), {}, name=node_name)
        else:
            node = g.create_node("call_function", spec.fn, tuple(args), kwargs, name=node_name)
        env[n.index] = node
        count = spec.outputs(kwargs)
        if count != 1:
            multi[n.index] = count
    heads = [value(src, out) for src, out in graph.heads]
    if chains:
        heads = [g.call_function(dense_output, (h,)) for h in heads]
    g.output(heads[0] if len(heads) == 1 else tuple(heads))

    module = fx.GraphModule(root, g, class_name="MXNetModel")
    if module.graph.eliminate_dead_code():
        module.recompile()
    # What export and saving need to know beyond the graph.
    module.mxnet_info = {  # type: ignore[assignment]
        "inputs": input_names,
        "aux": sorted(torch_names[n] for n in torch_names if n in aux),
        "names": {t: m for m, t in torch_names.items()},
        "ops": ops_kwargs,
    }
    module.eval()
    if device is not None or dtype is not None:
        module.to(device=device, dtype=dtype)
    return module


def _conv_bn_chains(graph: Graph) -> list[list[int]]:
    """[conv, batchnorm(, activation)] node chains whose inner outputs nothing else reads."""
    heads = {src for src, _ in graph.heads}

    def sole_consumer(idx: int) -> int | None:
        uses = graph.consumers(idx)
        if idx in heads or len(uses) != 1 or uses[0][1] != 0:
            return None
        return uses[0][0]

    chains: list[list[int]] = []
    for n in graph.ops():
        if n.op != "Convolution" or len(n.inputs) not in (2, 3):
            continue
        bn_idx = sole_consumer(n.index)
        if bn_idx is None or graph.nodes[bn_idx].op != "BatchNorm":
            continue
        bn = graph.nodes[bn_idx]
        if bn.attr().integer("axis", 1) != 1 or len(bn.inputs) != 5:
            continue
        if any(not graph.nodes[src].is_variable for src, _ in bn.inputs[1:]):
            continue
        chain = [n.index, bn_idx]
        act_idx = sole_consumer(bn_idx)
        if act_idx is not None:
            act = graph.nodes[act_idx]
            if (act.op == "Activation" and act.attrs.get("act_type") == "relu") or act.op == "clip":
                chain.append(act_idx)
        chains.append(chain)
    return chains


def _emit_chain(
    g: fx.Graph,
    graph: Graph,
    chain: list[int],
    env: dict[int, fx.Node],
    container: torch.nn.Module,
    ops_kwargs: dict[str, tuple[str, dict[str, Any]]],
) -> fx.Node:
    conv, bn = graph.nodes[chain[0]], graph.nodes[chain[1]]
    kwargs: dict[str, Any] = {
        "conv": REGISTRY["Convolution"].parse(conv.attr(), len(conv.inputs)),
        "bn": REGISTRY["BatchNorm"].parse(bn.attr(), len(bn.inputs)),
    }
    if len(chain) == 3:
        act = graph.nodes[chain[2]]
        if act.op == "clip":
            clip = REGISTRY["clip"].parse(act.attr(), 1)
            kwargs["clip"] = (clip["a_min"], clip["a_max"])
        else:
            kwargs["act"] = "relu"
    args = [env[src] for src, _ in conv.inputs]
    if len(args) == 2:
        args.append(None)  # type: ignore[arg-type]
    args += [env[src] for src, _ in bn.inputs[1:]]
    name = _identifier(graph.nodes[chain[-1]].name)
    sub = _identifier(conv.name)
    while hasattr(container, sub):
        sub += "_"
    container.add_module(sub, ConvBatchNorm(**kwargs))
    ops_kwargs[sub] = ("ConvBatchNorm", kwargs)
    return g.create_node("call_module", f"{_OPS}.{sub}", tuple(args), {}, name=name)


def _param_shapes(node: Node, data: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """Shapes of an operator's parameter inputs, by position, from its data input's shape
    (the rules MXNet's shape inference applies)."""
    a = node.attr()
    op = node.op
    if op in ("Convolution", "Deconvolution"):
        kernel = a.shape("kernel")
        nf, groups = a.integer("num_filter"), a.integer("num_group", 1)
        if op == "Convolution":
            weight = (nf, data[1] // groups, *kernel)
        else:
            weight = (data[1], nf // groups, *kernel)
        return {1: weight, 2: (nf,)}
    if op == "FullyConnected":
        nh = a.integer("num_hidden")
        width = math.prod(data[1:]) if a.flag("flatten", True) else data[-1]
        return {1: (nh, width), 2: (nh,)}
    if op in ("BatchNorm", "BatchNorm_v1", "_contrib_SyncBatchNorm"):
        c = data[a.integer("axis", 1)]
        return {i: (c,) for i in range(1, 5)}
    if op == "InstanceNorm":
        return {1: (data[1],), 2: (data[1],)}
    if op == "LayerNorm":
        c = data[a.integer("axis", -1)]
        return {1: (c,), 2: (c,)}
    if op == "LeakyReLU":
        return {1: (data[1],)}
    if op == "Embedding":
        return {1: (a.integer("input_dim"), a.integer("output_dim"))}
    if op == "UpSampling":
        scale = a.integer("scale")
        k = 2 * scale - scale % 2
        return {1: (data[1], 1, k, k)}
    return {}


def infer_shapes(
    symbol: Graph | PathLike | bytes,
    input_shapes: Mapping[str, Sequence[int]],
    params: ParamsLike = None,
    *,
    epoch: int | None = None,
) -> dict[str, tuple[int, ...]]:
    """The shape of every variable of a symbol, from its data inputs' shapes.

    Shapes come from ``input_shapes``, then from ``params`` (if given), then
    from fully known ``__shape__`` attributes, and the rest are inferred from
    the operators that read them (a convolution's weight from its input's
    channels, ...), by running the graph on torch's ``meta`` device (no memory).
    """
    graph, params, _ = _resolve(symbol, params, epoch)
    _check_ops(graph)
    weights, _ = _load_params(params)
    labels = graph.label_names()
    known: dict[str, tuple[int, ...]] = {
        k: tuple(int(d) for d in v) for k, v in input_shapes.items()
    }
    for name, t in weights.items():
        known.setdefault(name, tuple(t.shape))
    for v in graph.variables():
        declared = v.shape
        if v.name not in known and declared and all(d > 0 for d in declared):
            known[v.name] = declared
    env: dict[int, Any] = {}

    def meta(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.empty(shape, device="meta")

    for n in graph.nodes:
        if n.is_variable:
            if n.name in known:
                env[n.index] = meta(known[n.name])
            continue
        if not n.inputs or n.inputs[0][0] not in env:
            first_name = graph.nodes[n.inputs[0][0]].name if n.inputs else "?"
            raise MXParamsError(
                f"node {n.name!r}: the shape of its input {first_name!r} is not known"
            )
        first = env[n.inputs[0][0]]
        data = first[n.inputs[0][1]] if isinstance(first, tuple) else first
        rules = _param_shapes(n, tuple(data.shape))
        args = []
        for pos, (src, out) in enumerate(n.inputs):
            var = graph.nodes[src]
            if var.is_variable and var.name in labels:
                continue
            if src not in env:
                if not var.is_variable or pos not in rules:
                    raise MXParamsError(
                        f"cannot infer the shape of {var.name!r} (read by {n.name!r})"
                    )
                known[var.name] = rules[pos]
                env[src] = meta(rules[pos])
            value = env[src]
            args.append(value[out] if isinstance(value, tuple) else value)
        spec = REGISTRY[n.op]
        kwargs = spec.parse(n.attr(), len(n.inputs))
        fn = spec.fn(**kwargs).eval() if spec.stateful else functools.partial(spec.fn, **kwargs)
        try:
            env[n.index] = fn(*args)
        except (RuntimeError, ValueError, IndexError) as e:
            raise MXParamsError(f"node {n.name!r} ({n.op}): {e}") from None
    return {v.name: known[v.name] for v in graph.variables() if v.name in known}


def _info(module: torch.nn.Module) -> dict[str, Any]:
    info = getattr(module, "mxnet_info", None)
    if not isinstance(info, dict):
        raise MXParamsTypeError("expected a module made by mxparams.torch.import_model")
    return info


def save_params(module: torch.nn.Module, path: PathLike) -> None:
    """Writes the module's weights as an MXNet ``.params`` file (``arg:``/``aux:`` names)."""
    info = _info(module)
    aux = set(info["aux"])
    arrays: dict[str, NDArray] = {}
    for attr, tensor in module.state_dict().items():
        prefix = "aux" if attr in aux else "arg"
        mx_name = info["names"].get(attr, attr)
        arrays[f"{prefix}:{mx_name}"] = nd.array(
            tensor.detach().cpu().numpy(), dtype=_np_name(tensor)
        )
    nd.save(path, arrays)


def _np_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def save_safetensors(module: torch.nn.Module, path: PathLike) -> None:
    """Writes the module's ``state_dict`` as safetensors (its keys are the torch names)."""
    from safetensors.torch import save

    info = _info(module)
    tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    write_bytes(path, save(tensors, metadata={"mxnet_aux": ",".join(info["aux"])}))


def module_source(module: fx.GraphModule, class_name: str = "Model") -> str:
    """Standalone Python source of the module: a class whose ``__init__`` declares every
    parameter, buffer and operator module, and whose ``forward`` is the graph's code."""
    info = _info(module)
    code = module.graph.python_code(root_module="self")
    lines = [
        '"""Written by mxparams from an MXNet symbol; edit freely."""',
        "",
        "import torch",
    ]
    body = code.src.strip("\n")
    used = set(re.findall(r"\b\w+\b", body))
    for name, obj in sorted(code.globals.items()):
        if name not in used or name == "torch" or getattr(builtins, name, None) is obj:
            continue
        if isinstance(obj, float):  # inf / nan constants of the generated code
            lines.append(f"{name} = float({str(obj)!r})")
        elif isinstance(obj, types.ModuleType):
            lines.append(f"import {obj.__name__} as {name}")
        elif hasattr(obj, "__module__") and hasattr(obj, "__qualname__"):
            lines.append(f"from {obj.__module__} import {obj.__qualname__} as {name}")
        else:
            raise MXParamsError(f"cannot write an import for {name!r} ({obj!r})")
    op_classes = sorted({cls for cls, _ in info["ops"].values()})
    if op_classes:
        lines.append(f"from mxparams.ops_torch import {', '.join(op_classes)}")
    lines += ["", "", f"class {class_name}(torch.nn.Module):", "    def __init__(self):"]
    lines.append("        super().__init__()")
    aux = set(info["aux"])
    for attr, tensor in module.state_dict().items():
        empty = f"torch.empty({tuple(tensor.shape)!r}, dtype={tensor.dtype})"
        if attr in aux:
            lines.append(f"        self.register_buffer({attr!r}, {empty})")
        else:
            lines.append(f"        self.register_parameter({attr!r}, torch.nn.Parameter({empty}))")
    lines.append(f"        self.{_OPS} = torch.nn.Module()")
    for sub, (cls, kwargs) in info["ops"].items():
        if hasattr(getattr(module, _OPS), sub):
            args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            lines.append(f"        self.{_OPS}.add_module({sub!r}, {cls}({args}))")
    lines += [""] + ["    " + line if line else "" for line in body.splitlines()] + [""]
    return "\n".join(lines)


def export_model(
    symbol: Graph | PathLike | bytes,
    params: ParamsLike = None,
    dst: PathLike = "model.pt",
    *,
    epoch: int | None = None,
    inputs: Sequence[str] | str | None = None,
    input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None,
    weights: bool = True,
    code: bool = True,
    dynamic_batch: bool = True,
) -> dict[str, Path]:
    """Imports a model and writes it as a ``torch.export`` program at ``dst``.

    Load it back with ``torch.export.load(dst).module()`` (no mxparams needed).
    With ``weights``, also ``dst`` with suffix ``.safetensors`` (the state dict,
    torch names); with ``code``, ``dst`` with suffix ``.py`` (:func:`module_source`).
    ``input_shape`` gives the example input's shape (one tuple per input); the
    batch dimension stays dynamic where the graph allows it.
    Returns the paths written, keyed ``program``, ``weights``, ``code``.
    """
    graph, params, _ = _resolve(symbol, params, epoch)
    module = import_model(graph, params, inputs=inputs)
    names = _info(module)["inputs"]
    if input_shape is None:
        raise MXParamsError("export_model needs input_shape (the example input's shape)")
    shapes: list[tuple[int, ...]] = (
        [tuple(int(d) for d in input_shape)]  # type: ignore[arg-type]
        if input_shape and isinstance(input_shape[0], int)
        else [tuple(int(d) for d in s) for s in input_shape]  # type: ignore[union-attr]
    )
    if len(shapes) != len(names):
        raise MXParamsError(
            f"the model takes {len(names)} inputs ({names}), got {len(shapes)} shapes"
        )
    dtype = next(
        (t.dtype for t in module.state_dict().values() if t.is_floating_point()), torch.float32
    )
    if dynamic_batch:
        # torch.export fixes a dimension whose example size is 1; show it a batch of 2.
        shapes = [(max(2, s[0]),) + s[1:] if s else s for s in shapes]
    example = tuple(torch.zeros(s, dtype=dtype) for s in shapes)
    program = _export(module, example, dynamic_batch)
    dst = Path(dst)
    # Through a buffer: torch.export.save complains about names not ending in .pt2.
    write_with(dst, lambda f: torch.export.save(program, f))
    written = {"program": dst}
    if weights:
        written["weights"] = dst.with_suffix(".safetensors")
        save_safetensors(module, written["weights"])
    if code:
        written["code"] = dst.with_suffix(".py")
        write_bytes(written["code"], module_source(module).encode("utf-8"))
    return written


def _export(
    module: torch.nn.Module, example: tuple[torch.Tensor, ...], dynamic_batch: bool
) -> torch.export.ExportedProgram:
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1)
        dynamic = tuple({0: batch} for _ in example)
        try:
            return torch.export.export(module, example, dynamic_shapes=dynamic)
        except Exception:  # noqa: BLE001 -- a graph fixing its batch size exports with static shapes
            pass
    return torch.export.export(module, example)


def optimize_for_inference(
    module: torch.nn.Module, example_inputs: torch.Tensor | Sequence[torch.Tensor]
) -> torch.jit.ScriptModule:
    """A faster, frozen copy of an imported module for CPU inference.

    Traces ``module`` (in ``eval()`` mode) on ``example_inputs``, freezes the
    weights into the program and applies ``torch.jit.optimize_for_inference``,
    which folds each BatchNorm into its convolution and runs convolutions in
    oneDNN's blocked layout with the weights reordered once (eager PyTorch
    reorders them on every call). ``module`` itself stays exact and editable;
    the copy runs under ``torch.no_grad()`` semantics, takes any batch size,
    and keeps the example's other input dimensions (shape-dependent padding,
    such as MXNet's ``pooling_convention="full"``, is fixed by the trace).
    Results differ from ``module``'s by float32 rounding (the folded BatchNorm).
    """
    example = (
        (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    )
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.compile, but on CPU it is
            # the path that reaches oneDNN's fused, pre-packed convolutions without
            # a C++ toolchain; the shape warnings concern the example's fixed sizes.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
            traced = torch.jit.trace(module, example, check_trace=False)  # type: ignore[no-untyped-call]
            frozen = torch.jit.freeze(traced.eval())
            return torch.jit.optimize_for_inference(frozen)
    finally:
        module.train(was_training)
