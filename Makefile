# Two entry points a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CAIRN := $(VENV)/bin/cairn
DEMO_STORE ?= .cairn-demo

.PHONY: demo test test-fast test-scale lint bench clean ui

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The demo needs the examples' extras and, for the `cairn ui` it ends by suggesting, the
# server's; the tests need every integration.
$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[examples,server]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,examples,monitor]'
	touch $@

# The web UI: npm ci when the lock file changes, a build when the sources change; the
# build lands in the Python package, which serves it (`cairn ui`, `cairn server`).
UI_BUILT := src/cairn/server/ui/static/.built
UI_SOURCES := $(shell find ui/src -type f 2>/dev/null) ui/index.html ui/vite.config.js ui/vite.export.config.js ui/package.json

ui/node_modules/.installed: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(UI_BUILT): $(UI_SOURCES) ui/node_modules/.installed
	cd ui && npm run build --silent
	touch $@

ui: $(UI_BUILT)

# The UI's end-to-end tests drive Debian's Chromium (never a downloaded browser); apt installs
# it on a machine that lacks it (as root, or through sudo).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

demo: $(VENV)/.demo-installed $(UI_BUILT)
	rm -rf $(DEMO_STORE)
	CAIRN_TRACKING_URI=$(DEMO_STORE) CAIRN_QUICKSTART_HINT=0 $(PY) examples/quickstart.py
	$(CAIRN) --store $(DEMO_STORE) runs ls -e quickstart -o "metrics.val_accuracy DESC" -n 10
	$(CAIRN) --store $(DEMO_STORE) runs compare -e quickstart --across seed
	CAIRN_TRACKING_URI=$(DEMO_STORE) $(PY) examples/quickstart_registry.py
	CAIRN_TRACKING_URI=$(DEMO_STORE) $(PY) examples/quickstart_data.py
	@echo "web UI: http://127.0.0.1:5000/  (start it with: $(CAIRN) --store $(DEMO_STORE) ui)"

# The linter and the type checker (their configuration is in pyproject.toml); `make test` runs them first.
lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(VENV)/.test-installed $(UI_BUILT) lint | $(CHROMIUM)
	$(PY) -m pytest -q

test-fast: $(VENV)/.test-installed $(UI_BUILT)
	$(PY) -m pytest -q -m "not slow"

# The million-run test (20 minutes or more, 15 GB of temporary files).
test-scale: $(VENV)/.test-installed
	$(PY) -m pytest -q -m scale

bench: $(VENV)/.test-installed
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_STORE) .pytest_cache build *.egg-info ui/node_modules src/cairn/server/ui/static
