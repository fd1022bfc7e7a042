#!/usr/bin/env bash
# Builds the abi3 wheel (the bindings crate with cuda, from pyproject.toml) into dist/,
# plus the pure/binary wheels the GPU check needs on a machine without network
# (ml_dtypes, pytest, hypothesis for CPython 3.12 on x86-64 Linux). numpy, torch
# and cupy are expected on the device machine already.
#
#   scripts/build-wheel.sh            # then carry dist/ to the device machine
#   scripts/gpu-check.sh              # there
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
rm -rf dist
mkdir -p dist
maturin build --release -o dist
wheel=$(ls dist/mxparams-*.whl)
case "$wheel" in
  *-cp311-abi3-*) ;;
  *) echo "unexpected wheel tag (want cp311-abi3): $wheel" >&2; exit 1 ;;
esac
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d dist 'ml_dtypes>=0.4' pytest pluggy iniconfig packaging hypothesis attrs \
  sortedcontainers pygments
ls -l dist
