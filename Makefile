# Two commands matter: `make demo` and `make test`. Everything else is made by them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# bpy 5.0.1 exists for Python 3.11 only.
PYTHON311 ?= $(shell command -v python3.11)
VENV := .venv
PY := $(VENV)/bin/python
BLENDER_VENV := .venv-blender
BPY := $(BLENDER_VENV)/bin/python
BLENDER_STAMP := $(BLENDER_VENV)/.setup-done
# How torch gets installed. Default: the CPU build. On a CUDA machine, e.g.
#   make setup TORCH="torch==2.7.1 --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= -r requirements/torch-cpu.txt
STAMP := $(VENV)/.setup-done

.PHONY: setup test test-blender-versions lint demo bench extension clean

setup: $(STAMP) $(BLENDER_STAMP)

$(STAMP): pyproject.toml requirements/torch-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(BLENDER_STAMP): requirements/blender.txt
	@test -n "$(PYTHON311)" || { echo "python3.11 is needed for .venv-blender (bpy 5.0.1)"; exit 1; }
	test -x $(BPY) || $(PYTHON311) -m venv $(BLENDER_VENV)
	$(BPY) -m pip install -q --upgrade pip
	$(BPY) -m pip install -q -r requirements/blender.txt
	touch $@

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q
	$(BPY) -m pytest -q tests/blender

# The Blender-side tests on older Blender lines too (a bpy wheel each, ~500 MB per
# version, in .venv-bpy-<version>); not part of `make test`.
BPY_VERSIONS ?= 4.2.0 4.3.0 4.4.0
test-blender-versions: setup
	@status=0; for v in $(BPY_VERSIONS); do \
	  venv=.venv-bpy-$$v; \
	  test -x $$venv/bin/python || $(PYTHON311) -m venv $$venv || exit 1; \
	  $$venv/bin/python -m pip install -q "bpy==$$v" "numpy<2" pytest || exit 1; \
	  echo "== bpy $$v"; $$venv/bin/python -m pytest -q tests/blender || status=1; \
	done; exit $$status

# Standard library only: no venv needed.
extension:
	$(PYTHON) scripts/build_extension.py

# ruff's linter only: the code keeps its own line breaks (no auto-formatter).
lint: setup
	$(PY) -m ruff check .

demo: setup
	$(PY) scripts/make_demo.py --out demo-output

bench: setup
	$(PY) scripts/bench_render.py

clean:
	rm -rf $(VENV) $(BLENDER_VENV) .venv-bpy-* dist build *.egg-info demo-output bench-output
