"""Benchmark bare rasterization on a procedural, trained-scene-like splat.

The scene (seeded) is a bumpy height-field surface seen from above at an
oblique angle, densely covered by small, mostly opaque Gaussians lying in the
surface (each a few to a few dozen pixels on screen) plus ~10 % larger,
semi-transparent ones, with D channels (RGB and D - 3 instrument weights,
default D = 5). The camera drifts a little from frame to frame.

Each (rasterizer, scene size) is timed in its own child process, so its peak RSS
is its own; the rasterizers are measured one after the other in one run, and
their ratios are what to compare on a shared machine. Per frame: median seconds
over the timed frames after warm-up; for the numba path also the fraction of
evaluated (pixel, Gaussian) pairs that contribute. Rasterizers:

  numba   the compiled CPU rasterizer (the CPU default)
  torch   the eager-torch tile rasterizer (the MPS path; the CPU path before numba)
  chain   gsplat's own pure-torch functions chained: _fully_fused_projection,
          _isect_tiles, _isect_offset_encode, then per 16x16 tile a vectorised
          front-to-back composite (gsplat's _rasterize_to_pixels needs CUDA)

``--busy`` repeats every measurement while another process keeps one core busy
(started here, stopped by its pid) and reports loaded / quiet.

    python scripts/bench_raster.py                         # 200k and 1M, 640x480
    python scripts/bench_raster.py --sizes 50000,200000,1000000,3000000 --busy
    python scripts/bench_raster.py --paths numba --channels 3,5,9 --sizes 200000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gs_backend.raster import RasterBackend, rasterize, resolve_backend
from gs_backend.synthetic.demo_scenario import look_at as demo_look_at


@dataclass(frozen=True)
class BenchScene:
    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4] wxyz
    scales: Tensor  # [N, 3]
    opacities: Tensor  # [N]
    colors: Tensor  # [N, D] RGB + D - 3 instrument weights
    viewmats: Tensor  # [F, 4, 4] one camera per frame
    K: Tensor  # [3, 3]
    width: int
    height: int

    def to(self, device: torch.device) -> BenchScene:
        moved = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in vars(self).items()}
        return BenchScene(**moved)


def look_at(eye: Tensor, target: Tensor) -> Tensor:
    """World-to-camera matrix ``[4, 4]`` float32, OpenCV axes, world z up (the demo's)."""
    view = demo_look_at(eye.double().numpy(), target.double().numpy())
    return torch.from_numpy(view).float()


def height_field(x: Tensor, y: Tensor) -> Tensor:
    return 0.08 * torch.sin(3.1 * x) * torch.cos(2.3 * y) + 0.03 * torch.sin(11.0 * x + 7.0 * y)


def make_scene(n: int, width: int, height: int, frames: int, seed: int,
               channels: int = 5) -> BenchScene:
    gen = torch.Generator().manual_seed(seed)
    focal = 0.9 * width
    K = torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    eye = torch.tensor([0.0, -2.5, 1.6])
    target = torch.tensor([0.0, 0.6, 0.0])
    view = look_at(eye, target)

    # Surface points behind uniformly random pixels (3 % margin), so the splat
    # fills the view with a screen-uniform density, as a trained scene does.
    u = (torch.rand(n, generator=gen) * 1.06 - 0.03) * width
    v = (torch.rand(n, generator=gen) * 1.06 - 0.03) * height
    rays_cam = torch.stack(((u - K[0, 2]) / focal, (v - K[1, 2]) / focal, torch.ones(n)), -1)
    rays = rays_cam @ view[:3, :3]  # camera -> world directions
    t_hit = (-eye[2] / rays[:, 2].clamp(max=-1e-3)).clamp(max=40.0)
    ground = eye + t_hit[:, None] * rays
    x, y = ground[:, 0], ground[:, 1]
    z = height_field(x, y)
    means = torch.stack((x, y, z), -1)
    distance = (means - eye).norm(dim=-1)

    # In-surface orientation: normal from the height field's gradient, random spin.
    eps = 1e-3
    dzdx = (height_field(x + eps, y) - height_field(x - eps, y)) / (2 * eps)
    dzdy = (height_field(x, y + eps) - height_field(x, y - eps)) / (2 * eps)
    normal = torch.nn.functional.normalize(torch.stack((-dzdx, -dzdy, torch.ones(n)), -1), dim=-1)
    spin = torch.rand(n, generator=gen) * 2 * math.pi
    quats = _quat_mul(_quat_z_to(normal), torch.stack(
        (torch.cos(spin / 2), torch.zeros(n), torch.zeros(n), torch.sin(spin / 2)), -1))

    # Each Gaussian spans ~0.7-2.5 px (std) on screen, 2-16 px across at 3 sigma.
    std_px = 0.7 + 1.8 * torch.rand(n, generator=gen)
    base = std_px * distance / focal
    aspect = 0.5 + torch.rand(n, generator=gen)
    scales = torch.stack((base * aspect, base / aspect, 0.1 * base), -1)
    opacities = 0.6 + 0.39 * torch.rand(n, generator=gen)
    big = torch.rand(n, generator=gen) < 0.1
    scales[big] *= 3.0 + 3.0 * torch.rand(int(big.sum()), 1, generator=gen)
    opacities[big] = 0.05 + 0.35 * torch.rand(int(big.sum()), generator=gen)

    rgb = 0.5 + 0.35 * torch.stack(
        (torch.sin(4 * x), torch.cos(3 * y + 1), torch.sin(2 * x + 5 * y)), -1)
    rgb = (rgb + 0.08 * torch.randn(n, 3, generator=gen)).clamp(0, 1)
    weights = torch.zeros(n, max(channels - 3, 0))
    for k in range(weights.shape[1]):  # instrument k: a disc on the surface
        centre_x, centre_y = 0.3 - 0.8 * (k % 2) + 0.1 * k, 0.8 - 0.6 * (k % 2)
        weights[:, k] = ((x - centre_x) ** 2 + (y - centre_y) ** 2 < 0.1 / (1 + k % 2)).float()

    viewmats = []
    for f in range(frames):
        angle = 0.02 * f
        drift = torch.tensor([0.3 * math.sin(angle), 0.05 * f / max(frames, 1), 0.0])
        viewmats.append(look_at(eye + drift, target + 0.5 * drift))
    return BenchScene(
        means=means, quats=quats, scales=scales, opacities=opacities,
        colors=torch.cat((rgb, weights), 1)[:, :channels].contiguous(),
        viewmats=torch.stack(viewmats), K=K,
        width=width, height=height,
    )


def make_file_scene(path: Path, width: int, height: int, frames: int,
                    channels: int = 5, closeness: float = 0.7) -> BenchScene:
    """A trained splat from a file, seen close up: the camera looks at the median
    centre from the distance at which the 80th-percentile radius spans ``closeness``
    of the view's half height (so the object overfills it), and orbits 2 degrees per
    frame. RGB from the SH at the first camera; the D - 3 weight channels mark
    alternate Gaussians (so they cost what instrument channels cost)."""
    from gs_backend.io import load_gaussians
    from gs_backend.sh import gaussian_colors

    g = load_gaussians(path).gaussians
    focal = 0.9 * width
    K = torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])
    centre = g.means.median(dim=0).values
    radius = float((g.means - centre).norm(dim=-1).quantile(0.8))
    distance = radius * focal / (closeness * height / 2)
    eyes = []
    for f in range(frames):
        angle = math.radians(30.0 + 2.0 * f)
        direction = torch.tensor([math.cos(angle), math.sin(angle), 0.5]) / math.hypot(1, 0.5)
        eyes.append(centre + distance * direction)
    viewmats = [look_at(eye, centre) for eye in eyes]
    rgb = gaussian_colors(g.sh, g.means, eyes[0])
    weights = torch.zeros(g.count, max(channels - 3, 0))
    for k in range(weights.shape[1]):
        weights[k::weights.shape[1] + 1, k] = 1.0
    return BenchScene(means=g.means, quats=g.quats, scales=g.scales, opacities=g.opacities,
                      colors=torch.cat((rgb, weights), 1)[:, :channels].contiguous(),
                      viewmats=torch.stack(viewmats), K=K, width=width, height=height)


def _quat_mul(a: Tensor, b: Tensor) -> Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack((
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ), -1)


def _quat_z_to(direction: Tensor) -> Tensor:
    """Shortest rotations ``[N, 4]`` taking +z to the unit ``direction`` ``[N, 3]``."""
    z = torch.zeros_like(direction)
    z[:, 2] = 1.0
    half = torch.nn.functional.normalize(z + direction, dim=-1)
    w = (z * half).sum(-1, keepdim=True)
    return torch.nn.functional.normalize(torch.cat((w, torch.linalg.cross(z, half)), -1), dim=-1)


def time_frames(render: Callable[[Tensor], object], viewmats: Tensor, warmup: int,
                sync: Callable[[], None]) -> list[float]:
    for view in viewmats[:warmup]:
        render(view)
    sync()
    times = []
    for view in viewmats[warmup:]:
        start = time.perf_counter()
        render(view)
        sync()
        times.append(time.perf_counter() - start)
    return times


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS


# --------------------------------------------------------------------- the rasterizers


def chain_rasterize(s: BenchScene, view: Tensor, tile_size: int = 16) -> Tensor:
    """gsplat's pure-torch functions chained into a renderer: ``[H, W, D]`` colours."""
    from gsplat.cuda._torch_impl import (
        _fully_fused_projection,
        _isect_offset_encode,
        _isect_tiles,
        _quat_scale_to_covar_preci,
    )

    covars, _ = _quat_scale_to_covar_preci(s.quats, s.scales, True, False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        s.means, covars, view[None], s.K[None], s.width, s.height)
    tiles_x, tiles_y = -(-s.width // tile_size), -(-s.height // tile_size)
    _, isect_ids, flatten_ids = _isect_tiles(means2d, radii, depths, tile_size, tiles_x,
                                             tiles_y)
    offsets = _isect_offset_encode(isect_ids, 1, tiles_x, tiles_y).flatten().tolist()
    offsets.append(int(isect_ids.shape[0]))
    means2d, conics = means2d[0], conics[0]
    n_feat = s.colors.shape[1]
    image = torch.zeros(tiles_y * tile_size, tiles_x * tile_size, n_feat)
    ys, xs = torch.meshgrid(torch.arange(tile_size), torch.arange(tile_size), indexing="ij")
    pixel = torch.stack((xs.reshape(-1), ys.reshape(-1)), -1).float() + 0.5  # [P, 2]
    for tile in range(tiles_x * tiles_y):
        ids = flatten_ids[offsets[tile]:offsets[tile + 1]].long()
        if ids.numel() == 0:
            continue
        corner = torch.tensor([tile % tiles_x, tile // tiles_x]) * tile_size
        d = (pixel + corner)[None] - means2d[ids][:, None]  # [L, P, 2]
        a, b, c = conics[ids].unbind(-1)
        sigma = (0.5 * (a[:, None] * d[..., 0] ** 2 + c[:, None] * d[..., 1] ** 2)
                 + b[:, None] * d[..., 0] * d[..., 1])
        alpha = torch.clamp(s.opacities[ids][:, None] * torch.exp(-sigma), max=0.999)
        alpha = torch.where((sigma < 0) | (alpha < 1 / 255), 0.0, alpha)
        t_after = torch.cumprod(1 - alpha, dim=0)
        keep = t_after > 1e-4  # T never increases: the prefix before the stop
        t_before = torch.cat((torch.ones_like(t_after[:1]), t_after[:-1]))
        weights = torch.where(keep, alpha * t_before, 0.0)  # [L, P]
        y0, x0 = corner[1].item(), corner[0].item()
        image[y0:y0 + tile_size, x0:x0 + tile_size] = (
            weights.T @ s.colors[ids]).reshape(tile_size, tile_size, n_feat)
    return image[:s.height, :s.width]


def profile_torch(scene: BenchScene, view: Tensor) -> None:
    """Time the stages of the torch rasterizer on one frame."""
    from gs_backend.raster import torch_tiles
    from gs_backend.raster.projection import project_gaussians

    clock: dict[str, float] = {}
    start = time.perf_counter()
    proj = project_gaussians(scene.means, scene.quats, scene.scales, scene.opacities, view,
                             scene.K, scene.width, scene.height, near=0.01, far=1e10,
                             eps2d=0.3, antialiased=False)
    clock["project"] = time.perf_counter() - start
    start = time.perf_counter()
    order = torch.sort(proj.depths, stable=True).indices
    means2d, roots = proj.means2d[order], proj.conic_roots[order]
    opacities, features = proj.opacities[order], scene.colors[proj.ids[order]]
    bins = torch_tiles.bin_gaussians(means2d, proj.radii[order], roots, opacities,
                                     scene.width, scene.height)
    clock["sort + bin"] = time.perf_counter() - start
    start = time.perf_counter()
    torch_tiles.composite_tiles(bins, means2d, roots, opacities, features, scene.width,
                                scene.height)
    clock["composite"] = time.perf_counter() - start
    n_pairs = int(bins.offsets[-1])
    print(f"  visible {proj.count}, (tile, Gaussian) pairs {n_pairs} "
          f"({n_pairs / max(proj.count, 1):.2f} {bins.tile_size}x{bins.tile_size} tiles "
          "per Gaussian)")
    for stage, seconds in clock.items():
        print(f"  {stage:<12} {seconds:.4f} s")



def worker(path: str, n: int, width: int, height: int, channels: int, frames: int,
           warmup: int, seed: int, ply: Path | None = None) -> dict:
    """Time one rasterizer on one scene (``ply``, else the procedural one of ``n``
    Gaussians) in this process; a JSON-able summary."""
    if ply is None:
        scene = make_scene(n, width, height, warmup + frames, seed, channels)
    else:
        scene = make_file_scene(ply, width, height, warmup + frames, channels)
        n = scene.means.shape[0]
    stats = None
    if path == "chain":
        def render(view: Tensor) -> None:
            chain_rasterize(scene, view)
    else:
        def render(view: Tensor) -> None:
            rasterize(scene.means, scene.quats, scene.scales, scene.opacities, scene.colors,
                      view, scene.K, width, height, backend=path)  # type: ignore[arg-type]

    with torch.no_grad():
        times = time_frames(render, scene.viewmats, warmup, lambda: None)
    if path == "numba":  # the work counters, from one more (untimed) frame
        from gs_backend.raster.numba_tiles import rasterize_numba_with_stats

        _, stats = rasterize_numba_with_stats(
            scene.means, scene.quats, scene.scales, scene.opacities, scene.colors,
            scene.viewmats[-1], scene.K, width, height, background=None, near=0.01, far=1e10,
            eps2d=0.3, antialiased=False, with_depth=False)
    summary = {"path": path, "n": n, "scene": ply.name if ply else "procedural",
               "width": width, "height": height, "channels": channels,
               "median_s": statistics.median(times), "times_s": times,
               "peak_rss_mib": peak_rss_mib()}
    if stats is not None:
        summary.update(visible=stats.visible, pairs=stats.pairs, evaluated=stats.evaluated,
                       contributed=stats.contributed, lanes=stats.lanes)
    return summary


def run_worker(args: argparse.Namespace, path: str, n: int, channels: int,
               frames: int, ply: Path | None = None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", path,
               "--sizes", str(n), "--channels", str(channels), "--width", str(args.width),
               "--height", str(args.height), "--frames", str(frames),
               "--warmup", str(args.warmup), "--seed", str(args.seed)]
    if ply is not None:
        command += ["--worker-ply", str(ply)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


class BusyCore:
    """Another process keeping one core busy, stopped by its pid."""

    def __enter__(self) -> BusyCore:
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait()


def describe(r: dict) -> str:
    scene = "" if r.get("scene", "procedural") == "procedural" else f" {r['scene']}"
    line = (f"{r['path']:<6} N={r['n']:>8}{scene} {r['width']}x{r['height']} D={r['channels']}: "
            f"{r['median_s']:8.4f} s/frame (min {min(r['times_s']):.4f}), "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB")
    if "evaluated" in r:
        line += (f", pairs {r['pairs']}, evaluated {r['evaluated']}, contributing "
                 f"{r['contributed'] / max(r['evaluated'], 1):.1%}, vector lanes "
                 f"{r['lanes']} ({r['evaluated'] / max(r['lanes'], 1):.0%} of them evaluated)")
    return line


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--sizes", default="200000,1000000",
                        help="comma-separated Gaussian counts")
    parser.add_argument("--channels", default="5", help="comma-separated channel counts D")
    parser.add_argument("--paths", default="numba,torch",
                        help="comma-separated rasterizers: numba, torch, chain")
    parser.add_argument("--chain-max", type=int, default=200_000,
                        help="time the chain only on scenes up to this many Gaussians")
    parser.add_argument("--frames", type=int, default=3, help="timed frames")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--busy", action="store_true",
                        help="also measure with another process keeping one core busy")
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--profile", action="store_true", help="time the torch path's stages")
    parser.add_argument("--ply", default="",
                        help="comma-separated splat files (any format gs-backend reads) to "
                             "time instead of the procedural scenes, each seen close up")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-ply", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",")]
    channel_counts = [int(v) for v in args.channels.split(",")]
    if args.worker:
        print(json.dumps(worker(args.worker, sizes[0], args.width, args.height,
                                channel_counts[0], args.frames, args.warmup, args.seed,
                                args.worker_ply)))
        return
    scenes: list[tuple[int, Path | None]] = (
        [(0, Path(f)) for f in args.ply.split(",")] if args.ply else [(n, None) for n in sizes])

    print(f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), load average {load()}")
    results = []
    for n, ply in scenes:
        for channels in channel_counts:
            quiet: dict[str, dict] = {}
            for path in args.paths.split(","):
                if path == "chain" and n > args.chain_max:
                    continue
                frames = 1 if path == "chain" else args.frames
                quiet[path] = run_worker(args, path, n, channels, frames, ply)
                quiet[path]["load"] = load()
                print(describe(quiet[path]), f"[load {quiet[path]['load']}]", flush=True)
                if args.busy:
                    with BusyCore():
                        busy = run_worker(args, path, n, channels, frames, ply)
                    busy["busy"] = True
                    busy["load"] = load()
                    print(f"  one busy core: {busy['median_s']:.4f} s/frame, loaded / quiet "
                          f"{busy['median_s'] / quiet[path]['median_s']:.2f}x "
                          f"[load {busy['load']}]", flush=True)
                    results.append(busy)
                results.append(quiet[path])
            if "numba" in quiet:
                for other in ("torch", "chain"):
                    if other in quiet:
                        print(f"  numba vs {other}: "
                              f"{quiet[other]['median_s'] / quiet['numba']['median_s']:.1f}x "
                              "faster")
    if args.profile:
        scene = make_scene(sizes[0], args.width, args.height, 1, args.seed, channel_counts[0])
        with torch.no_grad():
            profile_torch(scene, scene.viewmats[0])
    if torch.cuda.is_available():
        scene = make_scene(sizes[0], args.width, args.height, args.warmup + args.frames,
                           args.seed, channel_counts[0]).to(torch.device("cuda"))
        assert resolve_backend("auto", scene.means.device) == "gsplat"
        backends: tuple[RasterBackend, ...] = ("torch", "gsplat")
        for backend in backends:
            def render(view: Tensor, backend: RasterBackend = backend) -> None:
                rasterize(scene.means, scene.quats, scene.scales, scene.opacities,
                          scene.colors, view, scene.K, scene.width, scene.height,
                          backend=backend)
            with torch.no_grad():
                times = time_frames(render, scene.viewmats, args.warmup, torch.cuda.synchronize)
            print(f"{backend} rasterizer, CUDA: {statistics.median(times):.4f} s/frame")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
