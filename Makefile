# opsgate: the two commands of the README are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/uv/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
# Test processes (pytest-xdist); every test database and port is per worker.
PYTEST_WORKERS ?= 2

.PHONY: run test sync agent-clis lint bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Core, every plugin and the test tools, from the lock file.
sync: $(UV)
	$(UV) sync --frozen --all-packages --all-groups --python $(PYTHON)

# Pinned agent CLIs (Claude Code, Codex, Hermes) for the end-to-end harness tests.
agent-clis:
	@if [ -x scripts/install-agent-clis.sh ]; then scripts/install-agent-clis.sh; fi

run: sync
	$(VENV)/bin/opsgate serve

test: sync agent-clis
	$(VENV)/bin/pytest -q -n $(PYTEST_WORKERS)

bench: sync
	$(VENV)/bin/python bench/tickets.py

clean:
	rm -rf $(VENV) $(TOOLS)
