# The newcomer's path: `make test` and `make run` work on a fresh machine with only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test run bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

run: $(STAMP)
	@echo "make run starts a local devnet; the devnet arrives with issue 6. For now: make test, make bench."
	$(VENV)/bin/chainnode --help

bench: $(STAMP)
	$(PY) -m tests.bench.foundation

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
