# The newcomer's path: `make test` and `make run` work on a fresh machine with only python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test run bench clean build-tools openssl-tool iproute2

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The contract engine's C accelerator (contracts/engine/_speedups.c) is built by the install
# and needs a C compiler and the Python headers: installed here (Debian/Ubuntu) if missing.
# Without them the engine still works, on its slower Python reference, and the test
# tests/contracts/test_speedups.py::test_the_accelerator_is_built says what to do.
$(STAMP): $(PY) pyproject.toml contracts/engine/_speedups.c chainnode/store/_treespeed.c
	@$(PY) -c "$$HAVE_BUILD_TOOLS" || $(MAKE) --no-print-directory build-tools
	@command -v openssl >/dev/null || $(MAKE) --no-print-directory openssl-tool
	@command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || $(MAKE) --no-print-directory iproute2
	$(PY) -m pip install --quiet -e '.[test]'
	@$(PY) -c "import contracts.engine._speedups" 2>/dev/null || \
		echo "warning: the contract engine's C accelerator was not built (no C compiler or Python headers?)"
	@$(PY) -c "import chainnode.store._treespeed" 2>/dev/null || \
		echo "warning: the state tree's C accelerator was not built (no C compiler or Python headers?)"
	@touch $(STAMP)

define HAVE_BUILD_TOOLS
import os, shutil, sys, sysconfig
headers = os.path.join(sysconfig.get_paths()["include"], "Python.h")
sys.exit(0 if shutil.which("cc") and os.path.exists(headers) else 1)
endef
export HAVE_BUILD_TOOLS

build-tools:
	@if command -v apt-get >/dev/null; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get install -y -q gcc python3-dev || { $$sudo apt-get update -q && $$sudo apt-get install -y -q gcc python3-dev; }; \
	else echo "install a C compiler and the Python headers to build the contract engine's accelerator"; fi

# The X.509 interoperability tests drive the `openssl` command line, as operators do.
openssl-tool:
	@if command -v apt-get >/dev/null; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get install -y -q openssl || { $$sudo apt-get update -q && $$sudo apt-get install -y -q openssl; }; \
	else echo "install the openssl command line (OpenSSL 3) for the certificate tests"; fi

# The multi-host tests (tests/devnet/test_netns.py, test_wan.py) build network namespaces
# with `ip` (devnet/netns.py); without root they are skipped, saying so.
iproute2:
	@if command -v apt-get >/dev/null; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get install -y -q iproute2 || { $$sudo apt-get update -q && $$sudo apt-get install -y -q iproute2; }; \
	else echo "install iproute2 (the ip command) for the multi-host tests"; fi

# Two workers, each taking whole test files (module fixtures start their nodes once): the
# suite spends most of its time waiting on node processes, and runs in about half the time
# on two cores. Ports do not collide: tests/conftest.py gives each worker its own range.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# A local 4-node chain on the embedded LevelDB, with a live status table until Ctrl-C.
run: $(STAMP)
	$(VENV)/bin/devnet up --nodes 4

bench: $(STAMP)
	$(PY) -m tests.bench.foundation
	$(PY) -m tests.bench.chain

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis contracts/engine/_speedups*.so chainnode/store/_treespeed*.so
