# hallmonitor — two commands on a fresh machine:
#   make demo   install, then run the example deployment (workers + consumer + API on :8080)
#   make test   install (incl. test extras and system packages), then run the full test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash scripts/install_system_deps.sh

demo: $(STAMP)
	$(BIN)/hallmonitor check-config config/campus.example.yaml
	$(BIN)/hallmonitor run --config config/campus.example.yaml

test: $(STAMP) system-deps
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy monitor pipelines api config

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
