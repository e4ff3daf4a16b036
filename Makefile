# The newcomer's path: `make test` and `make run` work on a fresh machine with only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test run bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml contracts/engine/_speedups.c
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# A local 4-node chain on the embedded LevelDB, with a live status table until Ctrl-C.
run: $(STAMP)
	$(VENV)/bin/devnet up --nodes 4

bench: $(STAMP)
	$(PY) -m tests.bench.foundation
	$(PY) -m tests.bench.chain

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
