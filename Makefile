# Two set-up commands: `make run` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUITE ?= quick

.PHONY: install run test test-slow bench bench-quick bench-train bench-attacks bench-minimal-norm bench-near-minimal bench-exact bench-reference bench-executors bench-gpu bench-verdict clean

install: $(STAMP)

# Reinstall when the project's dependencies change.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/robustbench-win run $(SUITE) --jobs 2 --threads 1

# The quick suite (pyproject's addopts deselect the tests marked slow), in two worker processes
# that each take whole test files (so a module's fixtures are built once): a few minutes on 2 cores.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The slow end-to-end checks only (a later -m replaces addopts' one). Exit status 5 means that no
# test is marked slow: nothing failed.
test-slow: install
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]

bench: bench-quick bench-train bench-attacks bench-minimal-norm bench-executors

# The quick preset's phases (train / attacks / diagnostics / report) and the bare-loop ratio.
bench-quick: install
	$(BIN)/python benchmarks/bench_quick.py

bench-train: install
	$(BIN)/python benchmarks/bench_training.py

bench-attacks: install
	$(BIN)/python benchmarks/bench_attacks.py

bench-minimal-norm: install
	$(BIN)/python benchmarks/bench_minimal_norm.py

# Presets' best-known norms against 1000-step reference attacks, optimality against cost (tens of minutes on 2 cores).
bench-near-minimal: install
	$(BIN)/python benchmarks/bench_near_minimal.py

# Every minimal-norm attack against the exact optimum of a small ReLU network on the digits (about a minute).
bench-exact: install
	$(BIN)/python benchmarks/bench_exact.py

# The long-budget reference restarted from other points and at 4x its budget, quick models (about 40 minutes on 2 cores).
bench-reference: install
	$(BIN)/python benchmarks/bench_reference.py

# The quick preset in one process vs --jobs 2 (about 10 minutes on 2 cores).
bench-executors: install
	$(BIN)/python benchmarks/bench_executors.py

# How often the verdict is decisive without a true effect: per-seed design vs pooled images (a few minutes).
bench-verdict: install
	$(BIN)/python benchmarks/bench_verdict_calibration.py

# The cifar10-paper model on a CUDA GPU (about a minute of small sizes on a CPU-only machine).
bench-gpu: install
	$(BIN)/python benchmarks/bench_gpu_training.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
