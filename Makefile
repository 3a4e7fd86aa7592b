# One command each: `make run` (set up + run the default workflow), `make test` (set up + the default
# test suite), `make test-slow` (the long end-to-end runs), `make lint` (snakemake --lint and snakefmt --check).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= 1
GPUS ?= 1

.PHONY: setup run test test-slow lint dry-run clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES) --resources gpu=$(GPUS)

dry-run: setup
	$(BIN)/snakemake --cores $(CORES) --resources gpu=$(GPUS) --dry-run

test: setup
	$(BIN)/python -m pytest -q --durations=15 -m "not slow" tests

# SLURM (one and two nodes), every encoder family, every GLUE task, the GPU config on CPU, the offline Hub path.
test-slow: setup
	$(BIN)/python -m pytest -q --durations=15 -m slow tests

# The workflow's style: Snakemake's own linter and snakefmt (settings in pyproject.toml).
lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules/

clean:
	rm -rf results resources logs .snakemake
