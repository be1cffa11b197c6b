# Two commands matter: `make demo` and `make test`. Everything else is made by them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# How torch gets installed. Default: the CPU build. On a CUDA machine, e.g.
#   make setup TORCH="torch==2.7.1 --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= -r requirements/torch-cpu.txt
STAMP := $(VENV)/.setup-done

.PHONY: setup test lint demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/torch-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

demo: setup
	$(PY) scripts/make_demo.py --out demo-output

bench: setup
	$(PY) scripts/bench_render.py

clean:
	rm -rf $(VENV) dist build *.egg-info demo-output bench-output
