# Two entry points a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CAIRN := $(VENV)/bin/cairn
DEMO_STORE ?= .cairn-demo

.PHONY: demo test test-fast bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The demo needs only the examples' extras; the tests need every integration.
$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[examples]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,examples]'
	touch $@

demo: $(VENV)/.demo-installed
	rm -rf $(DEMO_STORE)
	CAIRN_TRACKING_URI=$(DEMO_STORE) $(PY) examples/quickstart.py
	$(CAIRN) --store $(DEMO_STORE) runs ls -e quickstart -o "metrics.val_accuracy DESC" -n 10
	$(CAIRN) --store $(DEMO_STORE) runs compare -e quickstart --across seed
	CAIRN_TRACKING_URI=$(DEMO_STORE) $(PY) examples/quickstart_registry.py
	CAIRN_TRACKING_URI=$(DEMO_STORE) $(PY) examples/quickstart_data.py

test: $(VENV)/.test-installed
	$(PY) -m pytest -q

test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -q -m "not slow"

bench: $(VENV)/.test-installed
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_STORE) .pytest_cache build *.egg-info
