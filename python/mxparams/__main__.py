"""``python -m mxparams``: the ``mxparams`` command."""

import sys

from .cli import main

sys.exit(main())
