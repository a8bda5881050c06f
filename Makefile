# signalproof — `make run` and `make test` bootstrap their own virtual environment.
# The first interpreter that really runs and is 3.11+ (pyenv shims may exist and still refuse).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null && command -v $$p && break; done)
VENV   := .venv
# The site's port: `make run PORT=8080`, `make demo PORT=8080`.
PORT   ?= 8501
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run worker demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (none found on PATH)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# Worker + public site (http://localhost:$(PORT)) on the embedded SQLite default
# (var/signalproof.db), live Binance data. Ctrl-C stops both (the worker gets SIGTERM and
# finishes its current job).
run: install
	$(BIN)/signalproof db upgrade
	$(BIN)/signalproof worker & worker=$$!; trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/signalproof site --server.port $(PORT)

# The offline demo: a simulated exchange, market and bot, the real worker and the real site
# (http://localhost:$(PORT)) on var/demo.db, recreated at every start. No network, no configuration.
demo: install
	$(BIN)/signalproof demo --port $(PORT)

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
