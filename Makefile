# Two commands for a newcomer: `make demo` and `make test`. Both create .venv and install when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# two pytest-xdist workers: the Ray tests (mostly waiting on Ray) in one, the training tests in the other
# (tests/conftest.py: pytest_xdist_make_scheduler)
TEST_WORKERS ?= 2

.PHONY: install demo test lint bench docs clean

# One pip call with the lock file: s3fs, aiobotocore and boto3 must be resolved together (DESIGN.md s.7).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pad-sdk demo --output demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# The user's guide (docs/, mkdocs.yml), built offline into site/; --strict turns every warning into an error.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

# Quality, speed, memory and scaling figures -> benchmarks/results/*.json + SUMMARY.md (hours on 2 cores);
# e.g. make bench BENCH_ARGS="--only speed --quick" or BENCH_ARGS="--profile paper --only quality" on a GPU.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-output site .pytest_cache .mypy_cache .ruff_cache
