# make train / make test install what is missing into .venv first, then run.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help install train test test-fast lint format clean clean-outputs glue-table bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the pinned CPU build lies on this machine's disk; an unpinned torch pulls a CUDA build.
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev tools

train: $(STAMP)  ## fine-tune the default model on the demo data (pass ARGS="optimizer=adam ...")
	$(PY) train.py $(ARGS)

# Two workers (one thread each on a 2-core machine); DDP tests share one worker (loadgroup). TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

test: $(STAMP)  ## the whole test suite, slow tests included (what CI runs)
	$(PYTEST) --durations=15 $(ARGS)

test-fast: $(STAMP)  ## the suite without the slow tests
	$(PYTEST) -m "not slow" $(ARGS)

lint: $(STAMP)  ## ruff lint and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)  ## apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:  ## remove caches (keeps .venv and outputs/)
	rm -rf .pytest_cache .ruff_cache src/*.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

clean-outputs:  ## remove every run under outputs/ (keeps outputs/.gitkeep)
	find outputs -mindepth 1 -not -name .gitkeep -prune -exec rm -rf {} +

glue-table: $(STAMP)  ## fine-tune on local GLUE tasks, write benchmarks/results/glue_table.md (ARGS="--tasks sst2,rte")
	$(PY) scripts/glue_table.py $(ARGS)

bench: $(STAMP)  ## train MiniLM five ways on SST-2, write benchmarks/results/<date>.md (ARGS="--sentences 128 --rounds 1")
	$(PY) -c "import accelerate" 2>/dev/null || $(PY) -m pip install -q -r benchmarks/requirements.txt
	$(PY) -m benchmarks.bench $(ARGS)
