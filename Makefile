# clast: two commands do everything.  `make test`  and  `make reproduce [PROFILE=toy|paper]`
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PROFILE ?= toy
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.clast-installed
WORKERS ?= 2
export PYTHONUNBUFFERED := 1
export HF_HUB_OFFLINE ?= 1

.PHONY: venv test test-fast test-slow check-sync nbtest pytest reproduce smoke export clean-nbs bench help

help:
	@echo "make test              export/clean check, notebook tests, pytest"
	@echo "make test-slow         the same, also running '#| slow' cells"
	@echo "make reproduce PROFILE=toy|paper [OVERRIDES=\"key=value ...\"]   run the experiment chain with papermill into runs/<profile>, figures/<profile>"
	@echo "make bench             CPU benchmarks -> figures/bench/cpu.json"
	@echo "make build-scan        compile the CPU selective scan once (cached outside the repo; backend auto then uses it)"

# The venv is (re)built only when pyproject.toml or constraints.txt change.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]" 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import clast, torch, open_clip, nbdev, papermill" 
	$(PY) -m ipykernel install --sys-prefix --name clast --display-name "clast (.venv)" >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

export: venv
	$(BIN)/nbdev-export

# Notebooks are the source of truth: exporting and cleaning must change nothing.
check-sync: venv
	@$(PY) tools/check_sync.py

# Library notebooks only: the experiment notebooks (nbs/2x_*) run through papermill in the smoke profile
# (tests/test_chain_smoke.py); with their default parameters they would train the toy model.
nbtest: venv
	$(BIN)/nbdev-test --n-workers $(WORKERS) --timing --skip-file-re '^[2-9][0-9]_' $(NBFLAGS)

# --dist loadfile: all tests of a file on one worker, so module fixtures (a torchrun pair, the smoke chain) run once
pytest: venv
	$(BIN)/pytest -q -n $(WORKERS) --dist loadfile tests

test: venv check-sync nbtest pytest

test-slow: NBFLAGS = --flags slow
test-slow: test

# the paper profile needs its data and weights: make reproduce PROFILE=paper OVERRIDES="data.wikiart=... data.coco=... vgg.weights=..."
reproduce: venv
	$(PY) -m clast.chain --profile $(PROFILE) $(OVERRIDES)

smoke: venv
	$(PY) -m clast.chain --profile smoke

bench: venv
	THP_MEM_ALLOC_ENABLE=1 $(PY) -m clast.bench --out figures/bench/cpu.json   # huge pages from torch's first allocation (clast.infra.fast_cpu_memory)

.PHONY: build-scan
build-scan: venv
	$(PY) -m clast.ssm --build
