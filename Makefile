# The two commands of the README. Both create .venv with Python 3.11 if it is missing and install the
# project into it (editable, with the dev extra), then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,distributed]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/painbattery demo --out demo-output

test: install
	$(BIN)/ruff check behavior pose_models service tests bench
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check behavior pose_models service tests bench

clean:
	rm -rf $(VENV) demo-output .pytest_cache
