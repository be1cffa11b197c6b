"""Benchmark bare rasterization on a procedural, trained-scene-like splat.

The scene (seeded) is a bumpy height-field surface seen from above at an
oblique angle, densely covered by small, mostly opaque Gaussians lying in the
surface (each a few to a few dozen pixels on screen) plus ~10 % larger,
semi-transparent ones, with D = 3 + 2 channels (RGB and two instrument weights).
The camera drifts a little from frame to frame.

Prints frames/s, s/frame (median over the timed frames, after warm-up) and the
process's peak RSS; on a CUDA machine it also times the torch rasterizer and
gsplat on the same CUDA frames. ``--profile`` breaks the torch path into stages.

    python scripts/bench_raster.py                    # 640x480, 200k Gaussians, CPU
    python scripts/bench_raster.py --gaussians 1000000 --width 640 --height 640
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

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
    colors: Tensor  # [N, 5] RGB + two instrument weights
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


def make_scene(n: int, width: int, height: int, frames: int, seed: int) -> BenchScene:
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
    weights = torch.zeros(n, 2)
    weights[:, 0] = ((x - 0.3) ** 2 + (y - 0.8) ** 2 < 0.1).float()
    weights[:, 1] = ((x + 0.5) ** 2 + (y - 0.2) ** 2 < 0.05).float()

    viewmats = []
    for f in range(frames):
        angle = 0.02 * f
        drift = torch.tensor([0.3 * math.sin(angle), 0.05 * f / max(frames, 1), 0.0])
        viewmats.append(look_at(eye + drift, target + 0.5 * drift))
    return BenchScene(
        means=means, quats=quats, scales=scales, opacities=opacities,
        colors=torch.cat((rgb, weights), 1), viewmats=torch.stack(viewmats), K=K,
        width=width, height=height,
    )


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


def report(label: str, times: list[float]) -> None:
    median = statistics.median(times)
    print(f"{label:<28} {1 / median:7.2f} frames/s  {median:8.4f} s/frame  "
          f"(min {min(times):.4f}, max {max(times):.4f}, {len(times)} frames)")


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--gaussians", type=int, default=200_000)
    parser.add_argument("--frames", type=int, default=5, help="timed frames")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--profile", action="store_true", help="time the torch path's stages")
    parser.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=True,
                        help="time the CPU (on by default; --no-cpu for GPU-only runs)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    scene = make_scene(args.gaussians, args.width, args.height, args.warmup + args.frames,
                       args.seed)
    print(f"{args.gaussians} Gaussians, {args.width}x{args.height}, D = 5, "
          f"{torch.get_num_threads()} CPU threads")

    def renderer(s: BenchScene, backend: RasterBackend) -> Callable[[Tensor], object]:
        return lambda view: rasterize(s.means, s.quats, s.scales, s.opacities, s.colors, view,
                                      s.K, s.width, s.height, backend=backend)

    with torch.no_grad():
        if args.cpu:
            cpu_times = time_frames(renderer(scene, "torch"), scene.viewmats, args.warmup,
                                    lambda: None)
            report("torch rasterizer, CPU", cpu_times)
            print(f"peak RSS {peak_rss_mib():.0f} MiB")
            if args.profile:
                profile_torch(scene, scene.viewmats[0])

        if torch.cuda.is_available():
            device = torch.device("cuda")
            assert resolve_backend("auto", device) == "gsplat"
            gpu = scene.to(device)
            backends: tuple[RasterBackend, ...] = ("torch", "gsplat")
            for backend in backends:
                times = time_frames(renderer(gpu, backend), gpu.viewmats, args.warmup,
                                    torch.cuda.synchronize)
                report(f"{backend} rasterizer, CUDA", times)


if __name__ == "__main__":
    main()
