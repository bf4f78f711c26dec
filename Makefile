# lossforge: `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Re-installs only when the dependencies change: a second `make install` does nothing.
STAMP := $(VENV)/.installed-stamp

.PHONY: install test run lint format bench bench-discovery clean

install: $(STAMP)

# torch first, pinned: pyproject.toml asks only torch>=2.13, and pip keeps an installed torch that
# satisfies it; without this, pip would fetch the newest (CUDA) build. Tests need every extra.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --editable '.[dev,hf,postgres]'
	@touch $(STAMP)

# Two workers: much of the suite waits on subprocesses, Ray and the browser, so a second worker
# fills the idle core (the slowest folders first: tests/conftest.py).
TEST_WORKERS ?= 2

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist load --durations=25

# The main job: an offline discovery campaign (evolve proposer, SQLite, local Ray, CPU tasks).
run: install
	$(BIN)/lossforge run examples/quickstart.yaml --quiet
	$(BIN)/lossforge leaderboard

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every benchmark (bench/suite.py): writes bench/results.json and prints the markdown table.
bench: install
	$(BIN)/python bench/suite.py

# Do discoveries hold up? 3 quickstart campaigns (about 30 minutes on 2 cores): best confirmed
# held-out score, false-elite rate, Spearman(public, held-out), verdicts per CPU-hour.
bench-discovery: install
	$(BIN)/python bench/discovery.py --out bench/discovery.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info
