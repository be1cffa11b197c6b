"""Benchmark: export a scenario of 1,000 frames x 5 splat objects from Blender.

Target (DESIGN.md): <= 2 s for ``gsds.export_scenario``. Runs with the bpy module::

    .venv-blender/bin/python scripts/bench_export.py [--frames 1000] [--objects 5]
                                                     [--gaussians 200000] [--repeat 3]

The scene: one background splat and ``objects - 1`` instruments imported with
``gsds.import_ply`` (so the proxies carry the real display modifier), every object and
the camera keyframed, one instrument parented to another and one driven by a Track To
constraint, so the depsgraph has real work in every frame.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_ply(path: Path, n: int, seed: int) -> None:
    """A minimal Inria 3DGS PLY (SH degree 0) of ``n`` random Gaussians."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    record = np.zeros(n, dtype=[(name, "<f4") for name in names])
    for name in ("x", "y", "z"):
        record[name] = rng.uniform(-0.05, 0.05, n)
    for name in ("f_dc_0", "f_dc_1", "f_dc_2"):
        record[name] = rng.normal(0.0, 1.0, n)
    record["opacity"] = rng.uniform(-2.0, 4.0, n)
    for name in ("scale_0", "scale_1", "scale_2"):
        record[name] = rng.uniform(-7.0, -5.0, n)
    record["rot_0"] = 1.0
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in names] + ["end_header"]
    path.write_bytes(("\n".join(header) + "\n").encode("ascii") + record.tobytes())


def build_scene(folder: Path, n_frames: int, n_objects: int, gaussians: int) -> None:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not hasattr(bpy.types.Object, "gsds"):
        sys.path.insert(0, str(REPO))
        import blender_addon

        blender_addon.register()
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, n_frames
    scene.render.resolution_x, scene.render.resolution_y = 640, 480
    objects = []
    for i in range(n_objects):
        count = gaussians if i == 0 else max(1, gaussians // 10)
        path = folder / f"splat_{i}.ply"
        write_ply(path, count, seed=i)
        bpy.ops.gsds.import_ply(filepath=str(path))
        obj = bpy.context.active_object
        obj.gsds.role = 'BACKGROUND' if i == 0 else 'INSTRUMENT'
        obj.gsds.class_name = "" if i == 0 else f"tool_{i % 2}"
        objects.append(obj)
    for i, obj in enumerate(objects):
        for key in range(5):
            frame = 1 + key * (n_frames - 1) // 4
            obj.location = (0.01 * i + 0.002 * key, 0.003 * key, 0.001 * i)
            obj.rotation_euler = (0.1 * key, 0.05 * i, 0.02 * key)
            obj.keyframe_insert("location", frame=frame)
            obj.keyframe_insert("rotation_euler", frame=frame)
    if n_objects >= 3:
        objects[2].parent = objects[1]
    if n_objects >= 4:
        con = objects[3].constraints.new('TRACK_TO')
        con.target = objects[1]
    cam_data = bpy.data.cameras.new("camera")
    cam = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    for key in range(5):
        cam.location = (0.02 * key, -0.2, 0.05)
        cam.rotation_euler = (1.45, 0.0, 0.01 * key)
        cam.keyframe_insert("location", frame=1 + key * (n_frames - 1) // 4)
        cam.keyframe_insert("rotation_euler", frame=1 + key * (n_frames - 1) // 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=5)
    parser.add_argument("--gaussians", type=int, default=200_000,
                        help="Gaussians of the background splat (instruments: a tenth)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="gsds-bench-"))
    import bpy

    with tempfile.TemporaryDirectory(prefix="gsds-bench-export-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        build_scene(folder, args.frames, args.objects, args.gaussians)
        print(f"scene: {args.objects} splat objects ({args.gaussians} + "
              f"{args.objects - 1} x {max(1, args.gaussians // 10)} Gaussians), "
              f"{args.frames} frames, built in {time.perf_counter() - t0:.1f} s")
        times = []
        out = folder / "scenario.json"
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = bpy.ops.gsds.export_scenario(filepath=str(out), frames='ALL')
            times.append(time.perf_counter() - t0)
            if result != {'FINISHED'}:
                print("export failed", file=sys.stderr)
                return 1
        size = out.stat().st_size / 1e6
        best = min(times)
        print(f"export {args.frames} frames x {args.objects} objects: best {best:.3f} s, "
              f"runs {', '.join(f'{t:.3f}' for t in times)} s; file {size:.1f} MB; "
              f"target <= 2 s: {'met' if best <= 2.0 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
