#!/usr/bin/env bash
# Builds the extension module in release mode and puts it beside the Python
# sources (python/mxparams/_native.abi3.so), so that `PYTHONPATH=python` runs
# this checkout without installing anything into a shared virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p mxparams-python --features cuda "$@"
cp target/release/libmxparams_native.so python/mxparams/_native.abi3.so
