# Two commands matter: `make demo` and `make test`. Everything else is made by them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# bpy 5.0.1 exists for Python 3.11 only.
PYTHON311 ?= $(shell command -v python3.11)
VENV := .venv
PY := $(VENV)/bin/python
BLENDER_VENV := .venv-blender
BPY := $(BLENDER_VENV)/bin/python
BLENDER_STAMP := $(BLENDER_VENV)/.setup-done
# The gs_contract wheel last installed into .venv-blender (compared with a fresh build).
CONTRACT_INSTALLED := $(BLENDER_VENV)/.gs_contract.whl
# How torch gets installed. Default: the CPU build. On a CUDA machine, e.g.
#   make setup TORCH="torch==2.7.1 --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= -r requirements/torch-cpu.txt
STAMP := $(VENV)/.setup-done

.PHONY: setup contract-wheel test test-blender-versions lint demo bench extension gpu-check clean

setup: $(STAMP) $(BLENDER_STAMP) contract-wheel

# ray: the optional extra, installed so that `make test` runs the Ray tests.
# lpips: the reference LPIPS, a test oracle only; --no-deps because its torchvision would
# not import on CPU torch (tests/test_evaluate_lpips.py stands in for torchvision).
$(STAMP): pyproject.toml requirements/torch-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,ray]'
	$(PY) -m pip install -q --no-deps lpips==0.1.4
	touch $@

$(BLENDER_STAMP): requirements/blender.txt
	@test -n "$(PYTHON311)" || { echo "python3.11 is needed for .venv-blender (bpy 5.0.1)"; exit 1; }
	test -x $(BPY) || $(PYTHON311) -m venv $(BLENDER_VENV)
	$(BPY) -m pip install -q --upgrade pip
	$(BPY) -m pip install -q -r requirements/blender.txt
	touch $@

# .venv-blender gets gs_contract as the extension bundles it: the wheel. Built every time
# (deterministic, < 1 s) and installed again only when it differs from the one installed,
# so any change under gs_contract/ (edited, added or removed module) reaches it.
contract-wheel: $(BLENDER_STAMP)
	@wheel=$$($(BPY) scripts/build_extension.py --wheel --out build/wheel) && \
	if ! cmp -s "$$wheel" $(CONTRACT_INSTALLED); then \
	  echo "installing $$wheel into $(BLENDER_VENV)" && \
	  $(BPY) -m pip install -q --no-deps --no-index --force-reinstall "$$wheel" && \
	  cp "$$wheel" $(CONTRACT_INSTALLED); \
	fi

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q
	$(BPY) -m pytest -q tests/blender

# The Blender-side tests on the other Blender lines too (a bpy wheel each, ~400-500 MB
# per version, in .venv-bpy-<version>, with the gs_contract wheel); not part of `make test`.
# 4.2 and 4.5 are the LTS lines.
BPY_VERSIONS ?= 4.2.0 4.3.0 4.4.0 4.5.15
test-blender-versions: setup
	@wheel=$$($(BPY) scripts/build_extension.py --wheel --out build/wheel) || exit 1; \
	status=0; for v in $(BPY_VERSIONS); do \
	  venv=.venv-bpy-$$v; \
	  test -x $$venv/bin/python || $(PYTHON311) -m venv $$venv || exit 1; \
	  $$venv/bin/python -m pip install -q "bpy==$$v" "numpy<2" pytest || exit 1; \
	  $$venv/bin/python -m pip install -q --no-deps --no-index --force-reinstall "$$wheel" \
	    || exit 1; \
	  echo "== bpy $$v"; $$venv/bin/python -m pytest -q tests/blender || status=1; \
	done; exit $$status

# Standard library only: no venv needed. Writes dist/gs_contract-<version>-py3-none-any.whl
# and dist/gs_dataset_studio-<version>.zip (the add-on with that wheel in wheels/).
extension:
	$(PYTHON) scripts/build_extension.py

# ruff's linter only: the code keeps its own line breaks (no auto-formatter).
lint: setup
	$(PY) -m ruff check .

demo: setup
	$(PY) scripts/make_demo.py --out demo-output

bench: setup
	$(PY) scripts/bench_render.py

# On a machine with a CUDA GPU: the CUDA parity tests and the CUDA benchmark, with the
# figures to record in BENCHMARKS.md. Sets up .venv with a CUDA build of torch (see
# scripts/gpu_check.sh for the TORCH it uses and how to change it).
gpu-check:
	scripts/gpu_check.sh

clean:
	rm -rf $(VENV) $(BLENDER_VENV) .venv-bpy-* dist build *.egg-info demo-output bench-output
