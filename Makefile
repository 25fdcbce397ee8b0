# Two entry points a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CAIRN := $(VENV)/bin/cairn
DEMO_STORE ?= .cairn-demo

.PHONY: demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,examples]'
	touch $@

demo: $(VENV)/.installed
	rm -rf $(DEMO_STORE)
	CAIRN_TRACKING_URI=$(DEMO_STORE) $(PY) examples/quickstart.py
	$(CAIRN) --store $(DEMO_STORE) runs ls -e quickstart -o "metrics.val_accuracy DESC" -n 10
	$(CAIRN) --store $(DEMO_STORE) runs compare -e quickstart --across seed

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_STORE) .pytest_cache build *.egg-info
