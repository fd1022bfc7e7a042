#!/usr/bin/env bash
# GPU check for a device machine (CPython 3.12 with PyTorch and CuPy, CUDA
# driver, no Rust toolchain, no network). Needs the wheels that
# scripts/build-wheel.sh put in dist/ (carry dist/ along with the checkout).
#
# 1. installs the mxparams wheel from dist/ into a folder on PYTHONPATH (the
#    machine's python3 is itself a virtualenv holding torch and cupy, which a
#    new venv's --system-site-packages would not see);
# 2. runs the GPU tests (pytest -m gpu) and the CUDA no-driver/device-agnostic
#    tests;
# 3. runs the GPU benchmark (benches/python/bench_gpu.py), printing a markdown table.
#
# Environment: PY (default python3.12 or python3), BENCH_GB (default 1.2),
# BENCH_REPEAT (default 5), BENCH_ARGS (e.g. --sweep), SKIP_BENCH=1 to skip
# the benchmark, TEST_TIMEOUT/BENCH_TIMEOUT (seconds per stage), OUT (where
# the logs go; default the current directory).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$(command -v python3.12 || command -v python3)}
SITE=${SITE:-/tmp/mxparams-gpu-site}
status=0

export PYTHONUNBUFFERED=1
OUT=${OUT:-.}
nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max \
  --format=csv || true
nproc || true
df -hT /tmp /dev/shm 2>/dev/null || true
# The device image already has numpy, ml_dtypes, pytest, hypothesis, torch and
# cupy; only mxparams comes from dist/ (and the test tools where missing).
rm -rf "$SITE"
"$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps \
  --target "$SITE" dist/mxparams-*.whl || exit 1
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c 'import ml_dtypes, pytest, hypothesis' 2>/dev/null \
  || "$PY" -m pip install -q --disable-pip-version-check --no-index \
    --target "$SITE" --find-links dist ml_dtypes pytest hypothesis || exit 1
"$PY" - <<'PY'
import mxparams as mx, sys
print("python", sys.version.split()[0], "num_gpus", mx.num_gpus())
for i in range(mx.num_gpus()):
    print(" ", mx.gpu(i), mx.nd.zeros((1,), ctx=mx.gpu(i)).context)
if mx.num_gpus() == 0:
    try:
        mx.nd.zeros((1,), ctx=mx.gpu(0))
    except mx.MXParamsError as e:
        print("NO GPU:", e)
    sys.exit(1)
PY
[ $? -eq 0 ] || { echo "mxparams sees no GPU" >&2; exit 1; }

# Each stage has a time limit and dumps stacks if it hangs.
pytest_opts=(-q -p no:cacheprovider -o faulthandler_timeout=120 -rs)
timeout "${TEST_TIMEOUT:-240}" "$PY" -m pytest "${pytest_opts[@]}" -m gpu \
  tests/python/test_gpu.py 2>&1 | tee "$OUT/gpu-pytest.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
timeout 120 "$PY" -m pytest "${pytest_opts[@]}" tests/python/test_cuda_nodriver.py \
  2>&1 | tail -3
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  timeout "${BENCH_TIMEOUT:-240}" "$PY" benches/python/bench_gpu.py \
    --gb "${BENCH_GB:-1.2}" --repeat "${BENCH_REPEAT:-5}" ${BENCH_ARGS:-} \
    2>&1 | tee "$OUT/gpu-bench.md"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
exit $status
