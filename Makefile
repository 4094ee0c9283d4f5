# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the pinned requirements the first time.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_ARGS ?=

.PHONY: demo test serve worker bench notebook clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

demo: $(VENV)/.installed  ## a server and three workers on this machine, with live progress
	$(PY) -m queue_system demo $(DEMO_ARGS)

test: $(VENV)/.installed  ## the whole test suite
	$(PY) -m pytest

serve: $(VENV)/.installed  ## the producer API on port 3000, tasks in data/queue.db
	$(PY) -m queue_system serve

worker: $(VENV)/.installed  ## one worker against http://127.0.0.1:3000
	$(PY) -m queue_system worker

bench: $(VENV)/.installed  ## the benchmarks against the peers (slow; not part of the tests)
	$(PY) bench/run_all.py

notebook: $(VENV)/.installed  ## rerun the notebooks and save them with their outputs
	$(PY) notebooks/execute.py notebooks/*.ipynb

clean:
	rm -rf $(VENV) data
