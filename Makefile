# Two commands on a fresh machine: `make demo` and `make test`, and for
# students `make lab`. The first two create .venv and install the pinned
# requirements the first time; `make lab` does the same in .venv-lab.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_ARGS ?=
LAB_VENV := .venv-lab
LAB_PORT ?= 8888
LAB_ARGS ?=

.PHONY: demo test lab serve worker bench notebook clean

$(VENV)/.installed: requirements.txt requirements-redis.txt requirements-sim.txt \
		requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(LAB_VENV)/.installed: requirements.txt requirements-sim.txt requirements-lab.txt
	$(PYTHON) -m venv $(LAB_VENV)
	$(LAB_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-lab.txt
	touch $@

demo: $(VENV)/.installed  ## a server and three workers on this machine, with live progress
	$(PY) -m queue_system demo $(DEMO_ARGS)

test: $(VENV)/.installed  ## the whole test suite
	$(PY) -m pytest

lab: $(LAB_VENV)/.installed  ## JupyterLab on the labs (notebooks/), at http://127.0.0.1:8888
	$(LAB_VENV)/bin/python -m jupyter lab --ServerApp.root_dir=notebooks --ServerApp.ip=127.0.0.1 \
		--ServerApp.port=$(LAB_PORT) --ServerApp.allow_root=True $(LAB_ARGS)

serve: $(VENV)/.installed  ## the producer API on port 3000, tasks in data/queue.db
	$(PY) -m queue_system serve

worker: $(VENV)/.installed  ## one worker against http://127.0.0.1:3000
	$(PY) -m queue_system worker

bench: $(VENV)/.installed  ## the benchmarks against the peers (slow; not part of the tests)
	$(PY) bench/run_all.py

notebook: $(VENV)/.installed  ## rerun the labs, save them with outputs, rewrite the exercises' copy
	$(PY) notebooks/execute.py $(filter-out notebooks/04-exercises.ipynb,$(wildcard notebooks/*.ipynb))
	$(PY) notebooks/make_exercises.py

clean:
	rm -rf $(VENV) $(LAB_VENV) data
