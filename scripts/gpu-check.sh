#!/usr/bin/env bash
# GPU check for a device machine (CPython 3.12 with PyTorch and CuPy, CUDA
# driver, no Rust toolchain, no network). Needs the wheels that
# scripts/build-wheel.sh put in dist/ (carry dist/ along with the checkout).
#
# 1. makes a venv that sees the system packages (torch, cupy, numpy) and
#    installs mxparams and the test tools from dist/ only;
# 2. runs the GPU tests (pytest -m gpu) and the CUDA no-driver/device-agnostic
#    tests, then the whole suite's CPU tests with the same wheel;
# 3. runs the GPU benchmark (benches/python/bench_gpu.py), printing a markdown table.
#
# Environment: PY (default python3.12 or python3), BENCH_GB (default 1.2),
# SKIP_BENCH=1 to skip the benchmark, OUT (where to copy results; optional).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$(command -v python3.12 || command -v python3)}
VENV=${VENV:-/tmp/mxparams-gpu-venv}
status=0

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
"$PY" -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-index \
  --find-links dist mxparams pytest hypothesis ml_dtypes || exit 1
"$VENV/bin/python" - <<'PY'
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

log=${OUT:-.}/gpu-pytest.log
"$VENV/bin/python" -m pytest -q -m gpu -p no:cacheprovider tests/python/test_gpu.py \
  -rs 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/python/test_cuda_nodriver.py \
  2>&1 | tail -3
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  "$VENV/bin/python" benches/python/bench_gpu.py --gb "${BENCH_GB:-1.2}" \
    2>&1 | tee "${OUT:-.}/gpu-bench.md"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
exit $status
