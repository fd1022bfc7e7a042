# Developer entry points. `make demo` builds and runs the main job; `make test`
# builds and runs every test (what .ci/run calls). Virtualenvs live outside the
# clone ($(VENV_DIR)) so repeated runs reuse them; the install step always runs.

VENV_DIR ?= $(HOME)/.cache/mxparams
VENV := $(VENV_DIR)/venv-test
MXNET_VENV := $(VENV_DIR)/venv-mxnet
PY := $(VENV)/bin/python
export MXPARAMS_MXNET_PYTHON := $(MXNET_VENV)/bin/python

.PHONY: venvs develop demo test test-rust test-python test-numpy1 lint bench stubs fuzz gpu-wheel gpu-check

venvs:
	MXPARAMS_VENV_DIR=$(VENV_DIR) bash scripts/setup-venvs.sh

develop: venvs
	. $(VENV)/bin/activate && maturin develop --release -q

demo: develop
	$(PY) examples/demo.py

lint: develop
	cargo fmt --all -- --check
	cargo clippy -p mxparams --all-targets -- -D warnings
	cargo clippy -p mxparams --all-targets --features cuda -- -D warnings
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	$(VENV)/bin/ruff check python tests examples benches
	$(VENV)/bin/ruff format --check python tests examples benches
	$(VENV)/bin/mypy  # --strict on the whole package: [tool.mypy] in pyproject.toml
	cd python && $(abspath $(PY)) -m mypy.stubtest mxparams._native

# The core crate only: the bindings crate is a Python extension, tested from Python.
# `--all-targets` leaves out doctests, so they run on their own (README's Rust too).
test-rust:
	cargo test -p mxparams --all-targets -q
	cargo test -p mxparams --doc -q
	cargo test -p mxparams --all-targets -q --features cuda

test-python: develop
	$(PY) -m pytest -q -p no:cacheprovider tests/python

# The same package against numpy 1.x: the wheel installed into the MXNet venv (numpy 1.23).
test-numpy1: develop
	rm -rf target/wheels && . $(VENV)/bin/activate && maturin build --release -q -o target/wheels
	$(MXNET_VENV)/bin/pip install -q --force-reinstall --no-deps target/wheels/*.whl
	$(MXNET_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/python/test_numpy1.py

test: lint test-rust test-python test-numpy1

# mxparams beside MXNet 1.9.1 and safetensors in the oracle venv (numpy 1.23), one process;
# then the PyTorch adapter benchmark in the test venv. Tables go to docs/benchmarks.md.
bench: venvs
	rm -rf target/wheels && . $(VENV)/bin/activate && maturin build --release -q -o target/wheels
	$(MXNET_VENV)/bin/pip install -q --force-reinstall --no-deps target/wheels/*.whl
	$(MXNET_VENV)/bin/python benches/python/bench.py --extra bench_params --write docs/benchmarks.md
	. $(VENV)/bin/activate && maturin develop --release -q
	$(PY) benches/python/bench_torch.py >> docs/benchmarks.md
	$(PY) benches/python/bench_import.py >> docs/benchmarks.md

stubs: develop
	cd python && $(abspath $(PY)) -m mypy.stubtest mxparams._native

fuzz:
	bash scripts/fuzz.sh 60

# The abi3 wheel (python + cuda) and the test wheels into dist/, for a GPU machine
# without network; there, `make gpu-check` (or scripts/gpu-check.sh) runs the GPU
# tests and benches/python/bench_gpu.py.
gpu-wheel: venvs
	. $(VENV)/bin/activate && PYTHON=$(PY) bash scripts/build-wheel.sh

gpu-check:
	bash scripts/gpu-check.sh
