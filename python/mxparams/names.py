"""Name mapping between MXNet checkpoints and PyTorch modules.

* :func:`rename` -- rules: ``PATTERN=REPLACEMENT`` regexes, prefixes, and the
  Gluon <-> PyTorch conventions (``gamma``/``beta`` <-> ``weight``/``bias``,
  ``moving_*`` -> ``running_*``, ``arg:``/``aux:`` dropped). The rules run in
  the Rust core (the ``mxparams convert`` options are the same rules).
* :func:`pair` -- pairs a checkpoint's arrays with a module's state_dict:
  by name when the names agree after the conventions, else by structure:
  the checkpoint's arrays grouped per layer in file (graph) order, each
  layer's arrays in PyTorch's order (weight, bias, running_mean,
  running_var), every pair shape-checked. An ``export`` file lists every
  ``aux:`` after every ``arg:``; grouping by layer undoes that, so a
  BatchNorm's statistics pair with that BatchNorm.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import mxparams._native as _native

from ._errors import MXParamsValueError

__all__ = ["Pairing", "gluon_to_torch", "pair", "rename", "torch_to_gluon"]

Shape = tuple[int, ...]


def rename(
    names: Sequence[str],
    rules: Sequence[str] = (),
    *,
    strip_prefix: str | None = None,
    add_prefix: str | None = None,
    convention: str | None = None,
) -> list[str]:
    """Renames: ``strip_prefix``, then each ``PATTERN=REPLACEMENT`` regex rule
    (whole-name match, ``$1`` for groups), then ``convention`` (``"torch"`` or
    ``"gluon"``), then ``add_prefix``. Raises ValueError when two names collide."""
    return _native._rename(list(names), list(rules), strip_prefix, add_prefix, convention)


def gluon_to_torch(names: Sequence[str]) -> list[str]:
    """PyTorch spellings of Gluon names (``bn.gamma`` -> ``bn.weight``)."""
    return rename(names, convention="torch")


def torch_to_gluon(names: Sequence[str]) -> list[str]:
    """Gluon spellings of PyTorch names (a BatchNorm's ``weight`` -> ``gamma``)."""
    return rename(names, convention="gluon")


_KIND_ORDER = {"weight": 0, "gamma": 0, "bias": 1, "beta": 1}
_STATS = ("running_mean", "running_var", "moving_mean", "moving_var")


def _owner_kind(name: str) -> tuple[str, str]:
    name = re.sub(r"^(arg|aux):", "", name)
    for s in _STATS:
        if name.endswith(s) and len(name) > len(s) and name[-len(s) - 1] in "._":
            return name[: -len(s) - 1], s
    m = re.match(r"^(.*)[._]([^._]+)$", name)
    return (m.group(1), m.group(2)) if m else ("", name)


def _rank(kind: str) -> int:
    if kind in _KIND_ORDER:
        return _KIND_ORDER[kind]
    return 2 + _STATS.index(kind) % 2 if kind in _STATS else 4


def _trailing_number(name: str) -> int:
    d = re.search(r"(\d+)$", name)
    return int(d.group(1)) if d else -1


def structural_order(names: Sequence[str]) -> list[int]:
    """Indices of ``names`` grouped per layer (first appearance order), each
    layer's arrays in PyTorch's order."""
    first: dict[str, int] = {}
    keyed = []
    for i, n in enumerate(names):
        owner, kind = _owner_kind(n)
        first.setdefault(owner, len(first))
        keyed.append((first[owner], _rank(kind), i))
    # Gluon numbers each layer kind in creation order (conv0, conv1, ...),
    # which is the module's order; graph order may differ (a shortcut runs
    # before the body). Slots held by one kind are refilled in number order.
    owners = sorted(first, key=first.__getitem__)
    slots: dict[str, list[int]] = {}
    for o in owners:
        m = re.match(r"^(.*?)(\d+)$", o)
        slots.setdefault(m.group(1) if m else o, []).append(first[o])
    for kind, pos in slots.items():
        same = [o for o in owners if re.sub(r"\d+$", "", o) == kind or o == kind]
        same.sort(key=_trailing_number)
        for o, p in zip(same, sorted(pos), strict=False):
            first[o] = p
    keyed = [(first[_owner_kind(names[i])[0]], r, i) for _, r, i in keyed]
    return [i for _, _, i in sorted(keyed)]


def _groups(items: Sequence[tuple[str, Shape]], order: list[int]) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for i in order:
        groups.setdefault(_owner_kind(items[i][0])[0], []).append(i)
    return list(groups.values())


def _pair_layers(
    source: Sequence[tuple[str, Shape]], target: Sequence[tuple[str, Shape]]
) -> list[tuple[str, str]]:
    """Each module layer, in order, takes the first unused checkpoint layer
    with the same shapes: graph order can put a shortcut's convolution before
    the block's body, which a plain positional pairing would get wrong."""
    src = _groups(source, structural_order([n for n, _ in source]))
    tgt = _groups(target, list(range(len(target))))
    used = [False] * len(src)
    pairs = []
    for g in tgt:
        sig = [tuple(target[i][1]) for i in g]
        for j, sg in enumerate(src):
            if not used[j] and [tuple(source[i][1]) for i in sg] == sig:
                used[j] = True
                pairs += [(source[a][0], target[b][0]) for a, b in zip(sg, g, strict=True)]
                break
        else:
            names = [target[i][0] for i in g]
            raise MXParamsValueError(f"no checkpoint layer with shapes {sig} for {names}")
    return pairs


@dataclass
class Pairing:
    """How checkpoint names were paired with module names."""

    method: str
    pairs: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def renamed(self) -> dict[str, str]:
        return {s: d for s, d in self.pairs if s != d}


def pair(source: Sequence[tuple[str, Shape]], target: Sequence[tuple[str, Shape]]) -> Pairing:
    """Pairs checkpoint arrays ``source`` with module entries ``target``
    (``(name, shape)`` each): by name, else by structure (see the module
    docs). Raises ValueError on a shape mismatch or when the structures
    differ in length (an ambiguous pairing)."""
    src_names = [n for n, _ in source]
    tgt = dict(target)
    converted = gluon_to_torch(src_names)
    if set(converted) == set(tgt):
        pairs = list(zip(src_names, converted, strict=True))
        method = "names"
    else:
        if len(source) != len(target):
            raise MXParamsValueError(
                f"cannot pair {len(source)} checkpoint arrays with {len(target)} module "
                "entries by structure: pass mapping= a dict"
            )
        pairs = _pair_layers(source, target)
        method = "structure"
    shapes = dict(source)
    for s, t in pairs:
        if tuple(shapes[s]) != tuple(tgt[t]):
            raise MXParamsValueError(
                f"shape mismatch pairing {s} {tuple(shapes[s])} with {t} {tuple(tgt[t])} "
                f"(by {method})"
            )
    return Pairing(method, pairs)
