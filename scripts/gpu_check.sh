#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one command (a few minutes; `make gpu-check`):
#   1. the CUDA tests (`-m cuda`: gsplat's kernels against our torch rasterizer), which
#      must run, not skip;
#   2. the CUDA workload of scripts/bench_render.py (640x640, 1M + 2 x 100k Gaussians);
# then prints the figures to record in BENCHMARKS.md and writes them to
# $GPU_CHECK_OUT/gpu_check.json (default: bench-output/).
#
# Which Python (torch must be a CUDA build):
#   - default: the checkout's .venv, made by `make setup TORCH="$TORCH"` with a CUDA
#     build of torch (TORCH below; set it to match your driver). A .venv that already
#     exists keeps its torch: `make clean` first if it holds the CPU build.
#   - GPU_PYTHON=python3: an existing Python whose torch is already a CUDA build (a
#     machine without network, such as a lent GPU machine). The checkout goes on
#     PYTHONPATH; packages that Python lacks (gsplat) are installed from the wheels in
#     GPU_WHEELS (a folder) into a temporary folder first. See BENCHMARKS.md for how to
#     prepare them (README.md, "Running on a CUDA machine").
# Other knobs: BENCH_FRAMES (default: the workload's 300 frames).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH=${TORCH:-"torch==2.7.1 --index-url https://download.pytorch.org/whl/cu128"}
OUT_DIR=${GPU_CHECK_OUT:-bench-output}
mkdir -p "$OUT_DIR"

if [[ -n "${GPU_PYTHON:-}" ]]; then
  PY=$GPU_PYTHON
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  if [[ -n "${GPU_WHEELS:-}" ]]; then
    site=$(mktemp -d)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
      "$GPU_WHEELS"/*.whl
    export PYTHONPATH="$site:$PYTHONPATH"
  fi
else
  make setup TORCH="$TORCH"
  PY=.venv/bin/python
fi

echo "== environment"
"$PY" - <<'EOF'
import sys

import torch

print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda})")
if not torch.cuda.is_available():
    sys.exit("gpu_check: this torch sees no CUDA GPU (a CPU build, or no driver): "
             "see the comments at the top of scripts/gpu_check.sh")
import gsplat

print(f"gsplat {gsplat.__version__}, GPU {torch.cuda.get_device_name(0)}")
EOF

echo "== CUDA tests (gsplat compiles its kernels on first use: minutes, once)"
mapfile -t cuda_tests < <(grep -l "pytest.mark.cuda" tests/test_*.py)
tests_rc=0  # a failing test still lets the benchmark run; the exit status says it
"$PY" -m pytest -q -m cuda -rs -p no:cacheprovider --junitxml "$OUT_DIR/gpu_tests.xml" \
  "${cuda_tests[@]}" || tests_rc=$?

echo "== CUDA benchmark"
"$PY" scripts/bench_render.py --workload cuda ${BENCH_FRAMES:+--frames "$BENCH_FRAMES"} \
  --json "$OUT_DIR/bench_cuda.json"

echo "== figures to record (BENCHMARKS.md, CUDA section)"
"$PY" - "$OUT_DIR" <<'EOF'
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import gsplat
import torch

out = Path(sys.argv[1])
suite = ET.parse(out / "gpu_tests.xml").getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
tests = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
bench = json.loads((out / "bench_cuda.json").read_text())
if not bench["results"]:
    sys.exit("gpu_check: the CUDA benchmark did not run")
r = bench["results"][0]
figures = {
    "gpu": r["gpu"], "torch": torch.__version__, "cuda": torch.version.cuda,
    "gsplat": gsplat.__version__, "cuda_tests": tests,
    "frames": r["frames"], "gaussians": r["gaussians"], "size": f"{r['width']}x{r['height']}",
    "bare_ms_per_frame": round(1000 * r["bare_s_per_frame"], 2),
    "end_to_end_ms_per_frame": round(1000 * r["end_to_end_s_per_frame"], 2),
    "labelled_frames_per_s": r["end_to_end_frames_per_s"],
    "overhead_vs_bare": r["overhead_vs_bare"], "peak_cuda_mb": r["peak_cuda_mb"],
    "targets": {"frames_per_s>=300": r["end_to_end_frames_per_s"] >= 300,
                "overhead<=25%": r["overhead_vs_bare"] <= 0.25},
}
(out / "gpu_check.json").write_text(json.dumps(figures, indent=1) + "\n")
print(json.dumps(figures, indent=1))
if tests["skipped"] or not tests["tests"]:
    sys.exit("gpu_check: CUDA tests were skipped or none ran")
EOF
exit "$tests_rc"
