"""Times ``import mxparams`` in fresh interpreters against the 0.15 s target.

Run: ``python benches/python/bench_import.py [--repeat R]``. Each run starts a new
Python (so nothing is cached in ``sys.modules``) and times the import statement alone,
after numpy, which any user of the package has loaded anyway, is imported -- and
also with numpy counted. Prints a markdown table with the ratio to the target;
``python -X importtime -c 'import mxparams'`` shows where the time goes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

TARGET_S = 0.15

_TIMER = """
import time
{pre}
t0 = time.perf_counter()
import mxparams
print(time.perf_counter() - t0)
"""


def run(pre: str, repeat: int) -> list[float]:
    code = _TIMER.format(pre=pre)
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            ).stdout.split()[-1]
        )
        for _ in range(repeat)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    run("", 1)  # warm the OS file cache
    print(f"\n### `import mxparams` ({args.repeat} fresh interpreters, target {TARGET_S} s)\n")
    print("| case | median s | min s | median / target |")
    print("|---|---:|---:|---:|")
    for case, pre in (("numpy already imported", "import numpy"), ("cold, numpy included", "")):
        times = run(pre, args.repeat)
        med = statistics.median(times)
        print(f"| {case} | {med:.3f} | {min(times):.3f} | {med / TARGET_S:.2f} |")


if __name__ == "__main__":
    main()
