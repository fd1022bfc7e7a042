"""``mxparams.initializer``: the same module as :mod:`mxparams.init` (as in MXNet)."""

from __future__ import annotations

import sys

from . import init as _init

# Replace this module with `init` itself, so both names share one registry and
# one set of classes (`mxparams.initializer.Xavier is mxparams.init.Xavier`).
sys.modules[__name__] = _init
