"""Benchmark: the sidecar's warm preview vs a cold `gs-backend render` of the same frame.

Workload: the `bench_render.py` scene of the chosen workload (cpu: 640x480, 200k
Gaussians; cuda: 640x640, 1.2M), its first frame. Measured, in one run:
  cold render   - wall time of `gs-backend render SCENARIO --frames 0` in a fresh process
                  into a fresh folder (process start, imports, asset loading, one frame,
                  dataset files): what a preview cost before the sidecar; median of --cold,
                  interleaved with the warm previews (load drifts alike on both sides)
  first preview - the sidecar's first POST /v1/preview of the scene (assets loaded)
  warm preview  - later previews of the same frame (assets cached, objects posed), wall
                  time of the HTTP request on loopback, and the server's render time
                  (X-Render-Seconds); median of --warm, at scale 1, 0.5 and with overlay
  cache memory  - bytes of the prepared assets in the asset cache per million Gaussians,
                  and the sidecar's resident memory (VmRSS) after the previews
The load average is printed before and after (the machine may be shared).

Usage: python scripts/bench_sidecar.py [--workload cpu|cuda] [--tissue N] [--cold N] [--warm N]
       [--json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import torch

from gs_backend.serve.asset_cache import AssetCache, asset_nbytes
from gs_contract.scenario import load_scenario
from gs_contract.sidecar import (
    RENDER_TIME_HEADER,
    bearer_header,
    parse_listening_line,
    preview_request,
    read_token_file,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_render import WORKLOADS, build_scene


def cold_render(scenario: Path, device: str, out: Path) -> float:
    """Seconds of one `gs-backend render --frames 0` in a new process."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gs_backend", "render", str(scenario), "--out",
                    str(out), "--frames", "0", "--progress", "none", "--device", device],
                   check=True)
    return time.perf_counter() - t0


class Sidecar:
    def __init__(self, device: str, token_file: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gs_backend", "serve", "--port", "0", "--device", device,
             "--token-file", str(token_file)], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            listening = parse_listening_line(line)
            if listening is not None:
                break
        else:
            raise SystemExit("the sidecar did not start")
        self.client = httpx.Client(base_url=listening.url, timeout=600,
                                   headers=bearer_header(read_token_file(token_file)))

    def preview(self, body: dict[str, Any]) -> tuple[float, float]:
        """(wall seconds of the request, the server's render seconds)."""
        t0 = time.perf_counter()
        r = self.client.post("/v1/preview", json=body)
        wall = time.perf_counter() - t0
        r.raise_for_status()
        return wall, float(r.headers[RENDER_TIME_HEADER])

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="cpu")
    parser.add_argument("--cold", type=int, default=3, help="cold renders (median)")
    parser.add_argument("--warm", type=int, default=12, help="warm previews per variant")
    parser.add_argument("--tissue", type=int,
                        help="Gaussians in the tissue (default: the workload's), e.g. 960000 "
                             "for a 1M-Gaussian scene with the two instruments")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    w = WORKLOADS[args.workload]
    if args.tissue:
        w = dataclasses.replace(w, tissue=args.tissue)
    print(f"load average before: {os.getloadavg()}", flush=True)
    results: dict[str, Any] = {"workload": w.name, "machine": platform.platform(),
                               "torch": torch.__version__, "threads": torch.get_num_threads(),
                               "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-sidecar-") as tmp:
        folder = Path(tmp)
        scenario_path = build_scene(folder, w)
        scenario = load_scenario(scenario_path)
        data = json.loads(scenario_path.read_text())
        sidecar = Sidecar(w.device, folder / "token")
        try:
            body = preview_request(data, 0, base_dir=folder)
            results["first_preview_s"] = sidecar.preview(body)[0]
            variants = (("scale1", body), ("scale0.5", {**body, "scale": 0.5}),
                        ("overlay", {**body, "overlay": True}))
            for _, variant in variants:
                sidecar.preview(variant)  # warm-up of this size
            # Interleaved rounds (a cold render, then warm previews of each variant), so
            # that a shared machine's drifting load weighs on both sides alike.
            cold: list[float] = []
            runs: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in variants}
            per_round = max(1, args.warm // args.cold)
            for i in range(args.cold):
                cold.append(cold_render(scenario_path, w.device, folder / f"cold{i}"))
                for label, variant in variants:
                    runs[label] += [sidecar.preview(variant) for _ in range(per_round)]
            results["cold_render_s"] = statistics.median(cold)
            for label, measured in runs.items():
                results[f"warm_{label}_wall_s"] = statistics.median(r[0] for r in measured)
                results[f"warm_{label}_server_s"] = statistics.median(r[1] for r in measured)
            results["sidecar_rss_mb"] = sidecar.rss_mb()
        finally:
            sidecar.stop()

        cache = AssetCache(torch.device(w.device))
        gaussians = 0
        for name in sorted({o.asset for o in scenario.objects.values()}):
            gaussians += cache.get(scenario, name)[1].gaussians.count
        results["gaussians"] = gaussians
        results["cache_mb_per_million"] = cache.nbytes / 2**20 / (gaussians / 1e6)
        results["cache_mb"] = cache.nbytes / 2**20
        assert cache.nbytes == sum(asset_nbytes(cache.get(scenario, n)[1])
                                   for n in sorted({o.asset for o in scenario.objects.values()}))

    results["speedup_scale1"] = results["cold_render_s"] / results["warm_scale1_wall_s"]
    results["load_after"] = os.getloadavg()
    for key, value in results.items():
        print(f"{key:28s} {value:.4f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
