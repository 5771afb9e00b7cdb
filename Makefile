# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/civitai-tui demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --cov --cov-branch --cov-report=term $(PYTEST_ARGS)
	$(BIN)/python scripts/coverage_summary.py

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check civitai_tui tests bench
	$(BIN)/ruff format --check civitai_tui tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Not part of `make test`: an N-file job, the engine SIGKILLed K times (CHAOS_ARGS="--kills 50 --seed S").
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .coverage
