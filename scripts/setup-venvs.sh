#!/usr/bin/env bash
# Creates (or updates) the two virtualenvs the tests and benchmarks use, outside the
# clone so CI can reuse them: the test venv (numpy 2.x, torch, test tools) and the
# MXNet 1.9.1 oracle venv (numpy 1.23, safetensors). The install step always runs;
# it is a no-op when everything is already there.
set -euo pipefail
VENV_DIR=${MXPARAMS_VENV_DIR:-$HOME/.cache/mxparams}
PY=${PYTHON:-python3}
mkdir -p "$VENV_DIR"

if [ ! -x "$VENV_DIR/venv-test/bin/python" ]; then
  "$PY" -m venv "$VENV_DIR/venv-test"
fi
"$VENV_DIR/venv-test/bin/pip" install -q --disable-pip-version-check \
  'numpy>=2' 'ml_dtypes>=0.4' 'maturin>=1.5,<2' pytest hypothesis ruff mypy safetensors \
  torch torchvision onnx onnxruntime onnxscript

if [ ! -x "$VENV_DIR/venv-mxnet/bin/python" ]; then
  "$PY" -m venv "$VENV_DIR/venv-mxnet"
fi
"$VENV_DIR/venv-mxnet/bin/pip" install -q --disable-pip-version-check \
  'mxnet==1.9.1' 'numpy<1.24' 'ml_dtypes>=0.2' safetensors pytest hypothesis
echo "venvs ready in $VENV_DIR"
