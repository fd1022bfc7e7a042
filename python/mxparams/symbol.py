"""MXNet's symbol JSON (``NAME-symbol.json``): reading, checking and describing it.

This module knows the file format and nothing of any tensor library, so
``import mxparams.symbol`` stays cheap. :func:`load` / :func:`loads` return a
:class:`Graph`: its nodes in file order (MXNet writes them topologically, and
the reader insists on it, so a file cannot describe a cycle), the heads (the
graph's outputs) and the argument nodes.

Every MXNet 1.x layout is read:

* current files (nnvm, MXNet >= 0.9): ``attrs`` on each node, ``inputs`` as
  ``[node, output, version]``, a graph ``attrs.mxnet_version``;
* older files: ``param`` (operator parameters) and ``attr`` (user attributes)
  instead of ``attrs``, ``[node, output]`` inputs, ``backward_source_id``.
  They are upgraded as MXNet's own loader does: hidden keys such as ``lr_mult``
  become ``__lr_mult__`` (``weight_lr_mult`` on an operator moves to its
  ``weight`` input), and files from before 0.9, which left out auxiliary
  states, get the missing ``NAME_moving_mean`` / ``NAME_moving_var`` inputs.

A malformed or hostile file raises :class:`SymbolFormatError` (an
:class:`~mxparams.MXParamsError` and a ``ValueError``) naming the byte offset
or the node; sizes are bounded before anything is allocated for them.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import MXParamsError, MXParamsValueError

__all__ = [
    "Attrs",
    "Graph",
    "Node",
    "SymbolFormatError",
    "UnsupportedOpError",
    "load",
    "loads",
    "DTYPE_FLAGS",
]

# A symbol file is text describing a graph; the largest real ones (detection
# models with thousands of nodes) are a few MiB. The bounds keep a hostile file
# from costing more than a few hundred MiB of Python objects.
MAX_FILE_BYTES = 64 << 20
MAX_NODES = 1 << 20
MAX_OUTPUTS_PER_NODE = 1 << 16

# MXNet's type flags, as ``__dtype__`` stores them.
DTYPE_FLAGS: dict[int, str] = {
    0: "float32",
    1: "float64",
    2: "float16",
    3: "uint8",
    4: "int32",
    5: "int8",
    6: "int64",
    7: "bool",
    12: "bfloat16",
}

# Keys MXNet stores as ``__key__`` since 0.9 (older files wrote them bare).
_HIDDEN_KEYS = ("ctx_group", "lr_mult", "wd_mult", "force_mirroring", "mirror_stage")

# Inputs of the operators that have parameter inputs, in MXNet's order. Used to
# upgrade old files, to tell auxiliary states from arguments and labels from
# data, and to name what is missing. Optional inputs are dropped by flags
# (``no_bias``) when the operator is built.
OP_INPUTS: dict[str, tuple[str, ...]] = {
    "Convolution": ("data", "weight", "bias"),
    "Deconvolution": ("data", "weight", "bias"),
    "FullyConnected": ("data", "weight", "bias"),
    "BatchNorm": ("data", "gamma", "beta", "moving_mean", "moving_var"),
    "InstanceNorm": ("data", "gamma", "beta"),
    "LayerNorm": ("data", "gamma", "beta"),
    "LeakyReLU": ("data", "gamma"),
    "Embedding": ("data", "weight"),
    "UpSampling": ("data", "weight"),
    "SoftmaxOutput": ("data", "label"),
    "LinearRegressionOutput": ("data", "label"),
    "LogisticRegressionOutput": ("data", "label"),
    "MAERegressionOutput": ("data", "label"),
}
# (operator, input position) pairs that are auxiliary states (``aux:``).
AUX_INPUTS: dict[str, tuple[int, ...]] = {"BatchNorm": (3, 4)}
_AUX_INIT = {"moving_mean": '["zero", {}]', "moving_var": '["one", {}]'}
# Inputs that only feed a loss in training; inference does not need them.
LABEL_INPUTS: dict[str, tuple[int, ...]] = {
    "SoftmaxOutput": (1,),
    "LinearRegressionOutput": (1,),
    "LogisticRegressionOutput": (1,),
    "MAERegressionOutput": (1,),
}


class SymbolFormatError(MXParamsValueError):
    """A symbol JSON file is malformed; the message names the byte offset or the node."""


class UnsupportedOpError(MXParamsValueError):
    """A graph uses operators (or operator settings) that cannot be imported.

    ``report`` lists each problem once: ``{"op", "count", "first_node", "reason"}``.
    """

    def __init__(self, report: list[dict[str, Any]]) -> None:
        self.report = report
        lines = [
            f"  {r['op']}: {r['count']} node(s), first {r['first_node']!r}"
            + (f" ({r['reason']})" if r.get("reason") else "")
            for r in report
        ]
        super().__init__("the symbol uses operators that cannot be imported:\n" + "\n".join(lines))


@dataclass(frozen=True)
class Node:
    """One node of the graph: an operator, or a variable (``op == 'null'``)."""

    index: int
    op: str
    name: str
    attrs: Mapping[str, str]
    inputs: tuple[tuple[int, int], ...]

    @property
    def is_variable(self) -> bool:
        return self.op == "null"

    def attr(self) -> Attrs:
        """The attributes with typed accessors (errors name this node)."""
        return Attrs(self.attrs, self.name, self.op)

    @property
    def shape(self) -> tuple[int, ...] | None:
        """A variable's ``__shape__`` (``0`` and ``-1`` mark unknown dimensions), if stored."""
        if "__shape__" not in self.attrs:
            return None
        return self.attr().shape("__shape__")

    @property
    def dtype(self) -> str | None:
        """A variable's ``__dtype__`` as a numpy name, if stored."""
        if "__dtype__" not in self.attrs:
            return None
        flag = self.attr().integer("__dtype__")
        if flag not in DTYPE_FLAGS:
            raise SymbolFormatError(f"node {self.name!r}: unknown __dtype__ flag {flag}")
        return DTYPE_FLAGS[flag]


@dataclass
class Graph:
    """A parsed symbol: nodes in topological order, outputs and argument nodes."""

    nodes: list[Node]
    heads: list[tuple[int, int]]
    arg_nodes: list[int]
    version: int | None = None
    _consumers: dict[int, list[tuple[int, int]]] | None = field(default=None, repr=False)

    def variables(self) -> list[Node]:
        return [n for n in self.nodes if n.is_variable]

    def ops(self) -> list[Node]:
        return [n for n in self.nodes if not n.is_variable]

    def consumers(self, index: int) -> list[tuple[int, int]]:
        """``(consumer node, input position)`` for each use of node ``index``."""
        if self._consumers is None:
            uses: dict[int, list[tuple[int, int]]] = {}
            for n in self.nodes:
                for pos, (src, _) in enumerate(n.inputs):
                    uses.setdefault(src, []).append((n.index, pos))
            self._consumers = uses
        return self._consumers.get(index, [])

    def aux_names(self) -> set[str]:
        """Variables that are auxiliary states (running statistics)."""
        aux: set[str] = set()
        for n in self.nodes:
            for pos in AUX_INPUTS.get(n.op, ()):
                if pos < len(n.inputs) and self.nodes[n.inputs[pos][0]].is_variable:
                    aux.add(self.nodes[n.inputs[pos][0]].name)
        return aux

    def label_names(self) -> set[str]:
        """Variables used only as loss labels (not needed for a forward pass)."""
        labels: set[str] = set()
        for v in self.variables():
            uses = self.consumers(v.index)
            if uses and all(pos in LABEL_INPUTS.get(self.nodes[c].op, ()) for c, pos in uses):
                if all(h[0] != v.index for h in self.heads):
                    labels.add(v.name)
        return labels

    def op_counts(self) -> Iterator[tuple[str, int, str]]:
        """``(op, count, first node name)`` for each operator, in first-use order."""
        counts = Counter(n.op for n in self.ops())
        seen: set[str] = set()
        for n in self.ops():
            if n.op not in seen:
                seen.add(n.op)
                yield n.op, counts[n.op], n.name


class Attrs:
    """Typed reads of MXNet's string attributes (``'(3, 3)'``, ``'True'``, ``'None'``)."""

    def __init__(self, raw: Mapping[str, str], node: str = "?", op: str = "?") -> None:
        self.raw = raw
        self.node = node
        self.op = op

    def _fail(self, key: str, want: str) -> SymbolFormatError:
        return SymbolFormatError(
            f"node {self.node!r} ({self.op}): attribute {key}={self.raw[key]!r} is not {want}"
        )

    def has(self, key: str) -> bool:
        return key in self.raw and self.raw[key] not in ("None", "")

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.raw or self.raw[key] == "None":
            if default is None:
                raise SymbolFormatError(f"node {self.node!r} ({self.op}): missing attribute {key}")
            return default
        return self.raw[key]

    def integer(self, key: str, default: int | None = None) -> int:
        if not self.has(key):
            if default is None:
                raise SymbolFormatError(f"node {self.node!r} ({self.op}): missing attribute {key}")
            return default
        text = self.raw[key].strip()
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise self._fail(key, "an integer") from None
            if not value.is_integer():
                raise self._fail(key, "an integer") from None
            return int(value)

    def opt_int(self, key: str) -> int | None:
        return self.integer(key) if self.has(key) else None

    def number(self, key: str, default: float | None = None) -> float:
        if not self.has(key):
            if default is None:
                raise SymbolFormatError(f"node {self.node!r} ({self.op}): missing attribute {key}")
            return default
        try:
            return float(self.raw[key])
        except ValueError:
            raise self._fail(key, "a number") from None

    def opt_float(self, key: str) -> float | None:
        return self.number(key) if self.has(key) else None

    def flag(self, key: str, default: bool) -> bool:
        if not self.has(key):
            return default
        text = self.raw[key].strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise self._fail(key, "a boolean")

    def shape(self, key: str, default: tuple[int, ...] = ()) -> tuple[int, ...]:
        if not self.has(key):
            return default
        dims = self.opt_tuple(key)
        if any(d is None for d in dims):
            raise self._fail(key, "a tuple of integers")
        return tuple(d for d in dims if d is not None)

    def opt_tuple(self, key: str) -> tuple[int | None, ...]:
        """A tuple whose entries may be ``None`` (``slice``'s ``begin``/``end``)."""
        if not self.has(key):
            return ()
        text = self.raw[key].strip()
        if text.startswith(("(", "[")) and text.endswith((")", "]")):
            text = text[1:-1]
        out: list[int | None] = []
        for part in text.split(","):
            part = part.strip().rstrip("L")
            if not part:
                continue
            if part == "None":
                out.append(None)
                continue
            try:
                out.append(int(part))
            except ValueError:
                raise self._fail(key, "a tuple of integers") from None
        return tuple(out)

    def axes(self, key: str) -> tuple[int, ...] | None:
        """An axis or tuple of axes; None when absent (meaning all axes)."""
        if not self.has(key):
            return None
        return self.shape(key)


def _err_at(text: bytes, pos: int, msg: str) -> SymbolFormatError:
    return SymbolFormatError(f"malformed symbol JSON at byte offset {pos}: {msg}")


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SymbolFormatError(f"{what} must be an integer, not {value!r:.60}")
    return value


def _entry(value: Any, what: str, limit: int) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise SymbolFormatError(f"{what} must be [node, output(, version)], not {value!r:.60}")
    node = _as_int(value[0], what)
    out = _as_int(value[1], what)
    if not 0 <= node < limit:
        raise SymbolFormatError(f"{what} refers to node {node}, outside 0..{limit - 1}")
    if not 0 <= out < MAX_OUTPUTS_PER_NODE:
        raise SymbolFormatError(f"{what} has output index {out} out of range")
    return node, out


def _str_dict(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SymbolFormatError(f"{what} must be an object of strings")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str):
            # nnvm stores every attribute as a string; old writers sometimes used numbers.
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = repr(v)
            else:
                raise SymbolFormatError(f"{what}: attribute {k!r} must be a string, not {v!r:.60}")
        out[k] = v
    return out


def _version(graph_attrs: Any) -> int | None:
    if not isinstance(graph_attrs, dict) or "mxnet_version" not in graph_attrs:
        return None
    v = graph_attrs["mxnet_version"]
    if isinstance(v, list) and len(v) == 2 and v[0] == "int":
        return _as_int(v[1], "attrs.mxnet_version")
    raise SymbolFormatError(f"attrs.mxnet_version must be ['int', N], not {v!r:.60}")


def _upgrade_hidden_keys(
    op: str, attrs: dict[str, str], inputs: list[tuple[int, int]], nodes: list[dict[str, Any]]
) -> None:
    """Old files wrote ``lr_mult`` (or ``weight_lr_mult`` on the operator) bare."""
    for key in list(attrs):
        for hidden in _HIDDEN_KEYS:
            if key == hidden:
                attrs[f"__{hidden}__"] = attrs.pop(key)
                break
            if key.endswith("_" + hidden) and op != "null":
                arg = key[: -len(hidden) - 1]
                names = OP_INPUTS.get(op, ("data",))
                if arg in names and names.index(arg) < len(inputs):
                    target = nodes[inputs[names.index(arg)][0]]
                    if target["op"] == "null":
                        target["attrs"][f"__{hidden}__"] = attrs.pop(key)
                break


def loads(text: str | bytes | bytearray) -> Graph:
    """Parses symbol JSON text (any MXNet 1.x layout) into a :class:`Graph`."""
    if isinstance(text, str):
        raw = text.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(text)
    if len(raw) > MAX_FILE_BYTES:
        raise SymbolFormatError(
            f"symbol JSON of {len(raw)} bytes exceeds the {MAX_FILE_BYTES}-byte limit"
        )
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _err_at(raw, e.start, "not UTF-8") from None
    try:
        doc = json.loads(decoded)
    except json.JSONDecodeError as e:
        # JSONDecodeError counts characters; report bytes.
        raise _err_at(raw, len(decoded[: e.pos].encode("utf-8")), e.msg) from None
    except RecursionError:
        raise SymbolFormatError("malformed symbol JSON: nesting too deep") from None
    if not isinstance(doc, dict):
        raise SymbolFormatError("symbol JSON must be an object with 'nodes' and 'heads'")
    raw_nodes = doc.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise SymbolFormatError("symbol JSON needs a non-empty 'nodes' list")
    if len(raw_nodes) > MAX_NODES:
        raise SymbolFormatError(f"{len(raw_nodes)} nodes exceed the limit of {MAX_NODES}")
    version = _version(doc.get("attrs"))
    legacy = version is None or version < 900

    staged: list[dict[str, Any]] = []
    names: dict[str, int] = {}
    for i, rn in enumerate(raw_nodes):
        where = f"node {i}"
        if not isinstance(rn, dict):
            raise SymbolFormatError(f"{where} must be an object")
        op = rn.get("op")
        name = rn.get("name")
        if not isinstance(op, str) or not op:
            raise SymbolFormatError(f"{where}: 'op' must be a non-empty string")
        if not isinstance(name, str):
            raise SymbolFormatError(f"{where}: 'name' must be a string")
        where = f"node {i} ({name!r})"
        attrs: dict[str, str] = {}
        # Oldest first, so newer spellings win on conflict (as MXNet's loader).
        for key in ("param", "attr", "attrs"):
            attrs.update(_str_dict(rn.get(key), f"{where} {key}"))
        raw_inputs = rn.get("inputs", [])
        if not isinstance(raw_inputs, list):
            raise SymbolFormatError(f"{where}: 'inputs' must be a list")
        inputs = [_entry(e, f"{where} input", i) for e in raw_inputs]
        if op == "null" and inputs:
            raise SymbolFormatError(f"{where}: a variable cannot have inputs")
        staged.append({"op": op, "name": name, "attrs": attrs, "inputs": inputs})
        names.setdefault(name, i)

    if legacy:
        for sn in staged:
            _upgrade_hidden_keys(sn["op"], sn["attrs"], sn["inputs"], staged)

    raw_heads = doc.get("heads")
    if not isinstance(raw_heads, list) or not raw_heads:
        raise SymbolFormatError("symbol JSON needs a non-empty 'heads' list")
    heads = [_entry(h, "head", len(staged)) for h in raw_heads]

    nodes: list[Node] = []
    # Files from before 0.9 left auxiliary states out; MXNet adds them by name.
    remap: dict[int, int] = {}
    for i, sn in enumerate(staged):
        inputs = [(remap[s], o) for s, o in sn["inputs"]]
        if legacy and sn["op"] in AUX_INPUTS:
            arg_names = OP_INPUTS[sn["op"]]
            for pos in range(len(inputs), len(arg_names)):
                var_attrs = {k: v for k, v in sn["attrs"].items() if k.startswith("__")}
                # The initializer MXNet's BatchNorm declares for its statistics.
                if arg_names[pos] in _AUX_INIT:
                    var_attrs["__init__"] = _AUX_INIT[arg_names[pos]]
                var = Node(len(nodes), "null", f"{sn['name']}_{arg_names[pos]}", var_attrs, ())
                nodes.append(var)
                inputs.append((var.index, 0))
        remap[i] = len(nodes)
        nodes.append(Node(len(nodes), sn["op"], sn["name"], sn["attrs"], tuple(inputs)))
    heads = [(remap[h], o) for h, o in heads]

    raw_args = doc.get("arg_nodes")
    if raw_args is None:
        arg_nodes = [n.index for n in nodes if n.is_variable]
    else:
        if not isinstance(raw_args, list):
            raise SymbolFormatError("'arg_nodes' must be a list of node indices")
        arg_nodes = []
        for a in raw_args:
            idx = _as_int(a, "arg_nodes entry")
            if not 0 <= idx < len(staged):
                raise SymbolFormatError(f"arg_nodes entry {idx} is outside 0..{len(staged) - 1}")
            if staged[idx]["op"] != "null":
                raise SymbolFormatError(f"arg_nodes entry {idx} is not a variable")
            arg_nodes.append(remap[idx])
        arg_nodes += [n.index for n in nodes if n.is_variable and n.index not in set(arg_nodes)]
    _check_row_ptr(doc.get("node_row_ptr"), len(staged))
    return Graph(nodes, heads, arg_nodes, version)


def _check_row_ptr(value: Any, count: int) -> None:
    # node_row_ptr is derived data (prefix sums of output counts); only its form is checked.
    if value is None:
        return
    if not isinstance(value, list) or len(value) != count + 1:
        raise SymbolFormatError(f"'node_row_ptr' must list {count + 1} offsets")
    prev = -1
    for v in value:
        v = _as_int(v, "node_row_ptr entry")
        if v < prev:
            raise SymbolFormatError("'node_row_ptr' must not decrease")
        prev = v


def load(path: str | os.PathLike[str]) -> Graph:
    """Reads a ``-symbol.json`` file."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise MXParamsError(f"cannot read symbol file {os.fspath(path)!r}: {e.strerror}") from e
    try:
        return loads(raw)
    except SymbolFormatError as e:
        raise SymbolFormatError(f"{os.fspath(path)}: {e}") from None


def as_graph(source: Graph | str | os.PathLike[str] | bytes) -> Graph:
    """A Graph from a Graph, JSON text or bytes, or a path."""
    if isinstance(source, Graph):
        return source
    if isinstance(source, (bytes, bytearray)):
        return loads(source)
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return loads(source)
    return load(source)


_PREFIX_RE = re.compile(r"^(arg|aux):")


def split_param_name(name: str) -> tuple[str | None, str]:
    """``'arg:w'`` -> ``('arg', 'w')``; a bare name -> ``(None, name)``."""
    m = _PREFIX_RE.match(name)
    if m:
        return m.group(1), name[4:]
    return None, name
