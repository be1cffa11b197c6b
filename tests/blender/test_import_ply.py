"""``gsds.import_ply``: the point proxy, its attributes, the display modifier, bad files.

Oracles: the values ``ply_factory`` wrote (computed independently in float64); for the
compressed PLY and ``.splat``, the values given to gsplat's exporter (run in ``.venv``);
for ``.spz``, the documented decoding of ``tests/spz_encoder.py``'s quantised values.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Matrix, Vector
from paths import BACKEND_PYTHON, REPO
from ply_factory import (
    SH_C0,
    InriaColumns,
    inria_property_names,
    random_columns,
    write_inria_ply,
)

from blender_addon.blender import proxy_mesh
from gs_contract.splats import read_splat_file
from tests.spz_encoder import decoded, random_content, spz_bytes


def import_ply(path: Path, **kwargs) -> bpy.types.Object:
    result = bpy.ops.gsds.import_ply(filepath=str(path), **kwargs)
    assert result == {'FINISHED'}
    return bpy.context.view_layer.objects.active


def attribute(mesh: bpy.types.Mesh, name: str, dtype=np.float32, width: int = 1) -> np.ndarray:
    attr = mesh.attributes[name]
    field = {"INT": "value", "FLOAT": "value", "BYTE_COLOR": "color_srgb",
             "FLOAT_COLOR": "color_srgb", "FLOAT_VECTOR": "vector"}[attr.data_type]
    out = np.empty(len(attr.data) * width, dtype=dtype)
    attr.data.foreach_get(field, out)
    return out.reshape(-1, width) if width > 1 else out


def positions(mesh: bpy.types.Mesh) -> np.ndarray:
    return attribute(mesh, "position", width=3)


def displayed_points(obj: bpy.types.Object) -> dict[str, np.ndarray]:
    """Attributes of the points the display modifier draws (all its point clouds)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    parts: dict[str, list[np.ndarray]] = {"gs_index": [], "radius": [], "gs_palette": [],
                                          "diffuse": []}
    for instance in depsgraph.object_instances:
        if not instance.is_instance or instance.parent is None \
                or instance.parent.original != obj or instance.object.type != 'POINTCLOUD':
            continue
        cloud = instance.object.data
        n = len(cloud.points)
        if n == 0:
            continue
        for name, dtype in (("gs_index", np.int32), ("radius", np.float32),
                            ("gs_palette", np.int32)):
            values = np.empty(n, dtype=dtype)
            cloud.attributes[name].data.foreach_get("value", values)
            parts[name].append(values)
        assert len(cloud.materials) == 1, "one material per drawn point cloud"
        parts["diffuse"].append(np.tile(np.array(cloud.materials[0].diffuse_color[:3]), (n, 1)))
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}


def srgb_from_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def assert_proxy_matches(obj: bpy.types.Object, cols: InriaColumns, path: Path,
                         float_type: str = "f4") -> None:
    mesh = obj.data
    n = cols.count
    assert obj.type == 'MESH' and obj.name == path.stem
    assert (len(mesh.vertices), len(mesh.edges), len(mesh.polygons)) == (n, 0, 0)
    np.testing.assert_array_equal(attribute(mesh, "gs_index", np.int32), np.arange(n))
    expected_means = cols.means.astype(np.float32) if float_type == "f4" else cols.means
    np.testing.assert_allclose(positions(mesh), expected_means, rtol=0, atol=1e-6)
    colors = attribute(mesh, "gs_color", width=4)
    np.testing.assert_allclose(colors[:, :3], cols.dc_colors(), atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(colors[:, 3], 1.0)
    np.testing.assert_allclose(attribute(mesh, "gs_opacity"), cols.opacities(), rtol=1e-6)
    np.testing.assert_allclose(attribute(mesh, "gs_scale"), cols.max_scales(), rtol=1e-6)
    assert mesh.attributes["gs_index"].domain == 'POINT'
    assert mesh.attributes["gs_color"].data_type in {'BYTE_COLOR', 'FLOAT_COLOR'}
    settings = obj.gsds
    assert Path(settings.source_path) == path.resolve()
    assert Path(settings.source_path).is_absolute()
    assert (settings.gaussian_count, settings.sh_degree, settings.source_format) == \
        (n, cols.sh_degree, "inria_ply")
    assert settings.role == 'NONE' and settings.class_name == ""


CASES = [  # (encoding, normals, SH degree, property type, shuffled property order)
    ("binary_little_endian", False, 0, "f4", False),
    ("binary_little_endian", True, 3, "f4", False),
    ("binary_big_endian", False, 1, "f4", True),
    ("binary_big_endian", True, 2, "f8", False),
    ("ascii", False, 2, "f4", False),
    ("ascii", True, 1, "f8", True),
    ("binary_little_endian", False, 3, "f8", True),
    ("ascii", False, 3, "f4", False),
]


@pytest.mark.parametrize(("encoding", "normals", "degree", "float_type", "shuffled"), CASES)
def test_import_inria_ply(addon, tmp_path, encoding, normals, degree, float_type, shuffled):
    cols = random_columns(120, degree, seed=degree + 10 * normals)
    order = inria_property_names(degree, normals)
    if shuffled:
        order = list(np.random.default_rng(1).permutation(order))
    path = tmp_path / f"splat_{encoding}_{degree}.ply"
    write_inria_ply(path, cols, encoding=encoding, with_normals=normals, dtype=float_type,
                    order=order)
    obj = import_ply(path)
    assert_proxy_matches(obj, cols, path, float_type)
    assert bpy.context.selected_objects == [obj]


def test_upright_changes_only_the_object_matrix(addon, tmp_path):
    path = tmp_path / "scene.ply"
    write_inria_ply(path, n=50, seed=3)
    plain = import_ply(path)
    y_down = import_ply(path, upright='Y_DOWN')
    y_up = import_ply(path, upright='Y_UP')
    np.testing.assert_array_equal(positions(y_down.data), positions(plain.data))
    np.testing.assert_array_equal(positions(y_up.data), positions(plain.data))
    bpy.context.view_layer.update()
    assert plain.matrix_world == Matrix.Identity(4)
    # Y_DOWN (COLMAP / OpenCV capture): file -y is up, file +z is forward (+y in Blender).
    up, forward = y_down.matrix_world.to_3x3() @ Vector((0, -1, 0)), \
        y_down.matrix_world.to_3x3() @ Vector((0, 0, 1))
    assert (up - Vector((0, 0, 1))).length < 1e-6
    assert (forward - Vector((0, 1, 0))).length < 1e-6
    up = y_up.matrix_world.to_3x3() @ Vector((0, 1, 0))
    assert (up - Vector((0, 0, 1))).length < 1e-6
    for obj in (y_down, y_up):
        assert obj.matrix_world.translation.length == 0
        assert abs(obj.matrix_world.to_3x3().determinant() - 1) < 1e-6


def test_upright_choices_match_their_rotations():
    from blender_addon.blender.properties import UPRIGHT_ITEMS

    assert [item[0] for item in UPRIGHT_ITEMS] == list(proxy_mesh.UPRIGHT_ROTATIONS)


def test_display_modifier_draws_points_sized_by_scale(addon, tmp_path):
    path = tmp_path / "tool.ply"
    cols = write_inria_ply(path, n=400, seed=5)
    obj = import_ply(path, point_size=2.0)
    modifier = obj.modifiers[proxy_mesh.MODIFIER_NAME]
    assert modifier.type == 'NODES' and modifier.node_group.name == proxy_mesh.NODE_GROUP_NAME
    drawn = displayed_points(obj)
    order = np.argsort(drawn["gs_index"])
    np.testing.assert_array_equal(drawn["gs_index"][order], np.arange(400))
    np.testing.assert_allclose(drawn["radius"][order], 2.0 * cols.max_scales(), rtol=1e-6)
    # Solid mode: each point's material shows its colour to within half a palette step.
    top = proxy_mesh.PALETTE_LEVELS - 1
    solid = srgb_from_linear(drawn["diffuse"][order])
    assert np.abs(solid - cols.dc_colors()).max() <= 0.5 / top + 1 / 255 + 1e-6
    material = bpy.data.materials[f"{proxy_mesh.MATERIAL_PREFIX} 00"]
    attribute_nodes = [n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeAttribute"]
    assert [n.attribute_name for n in attribute_nodes] == ["gs_color"]


def test_display_density_changes_the_drawn_points_not_the_mesh(addon, tmp_path):
    path = tmp_path / "scene.ply"
    write_inria_ply(path, n=2000, seed=6)
    obj = import_ply(path)
    before = positions(obj.data).copy()
    assert displayed_points(obj)["gs_index"].size == 2000
    obj.gsds.display_density = 0.5
    half = set(displayed_points(obj)["gs_index"].tolist())
    obj.gsds.display_density = 0.2
    fifth = set(displayed_points(obj)["gs_index"].tolist())
    # Binomial(2000, p): 6 standard deviations are < 140 points.
    assert abs(len(half) - 1000) < 140 and abs(len(fifth) - 400) < 110
    assert fifth <= half, "a lower density shows a subset of the points (stable choice)"
    obj.gsds.display_density = 0.0
    assert displayed_points(obj)["gs_index"].size == 0
    assert len(obj.data.vertices) == 2000
    np.testing.assert_array_equal(positions(obj.data), before)
    np.testing.assert_array_equal(attribute(obj.data, "gs_index", np.int32), np.arange(2000))


def test_node_group_and_materials_are_shared(addon, tmp_path):
    a, b = tmp_path / "a.ply", tmp_path / "b.ply"
    write_inria_ply(a, n=20, seed=1)
    write_inria_ply(b, n=30, seed=2)
    obj_a, obj_b = import_ply(a), import_ply(b)
    assert obj_a.modifiers[0].node_group == obj_b.modifiers[0].node_group
    assert len(bpy.data.node_groups) == 1
    assert len(bpy.data.materials) == proxy_mesh.PALETTE_LEVELS ** 3


def test_role_class_and_several_files(addon, tmp_path):
    for name, seed in (("driver", 1), ("grasper", 2)):
        write_inria_ply(tmp_path / f"{name}.ply", n=10, seed=seed)
    result = bpy.ops.gsds.import_ply(directory=str(tmp_path),
                                     files=[{"name": "driver.ply"}, {"name": "grasper.ply"}],
                                     role='INSTRUMENT', class_name="needle_driver")
    assert result == {'FINISHED'}
    objects = sorted(bpy.context.selected_objects, key=lambda o: o.name)
    assert [o.name for o in objects] == ["driver", "grasper"]
    assert {(o.gsds.role, o.gsds.class_name) for o in objects} == \
        {('INSTRUMENT', "needle_driver")}
    assert [c.name for c in bpy.context.scene.gsds.classes] == ["needle_driver"]


def test_non_finite_rows_are_skipped(addon, tmp_path):
    cols = random_columns(30, 1, seed=4)
    cols.means[3, 1] = np.nan
    cols.log_scales[7, 2] = np.inf
    cols.opacity_logits[9] = -np.inf
    path = tmp_path / "holes.ply"
    write_inria_ply(path, cols)
    obj = import_ply(path)
    kept = [i for i in range(30) if i not in (3, 7, 9)]
    np.testing.assert_array_equal(attribute(obj.data, "gs_index", np.int32), kept)
    np.testing.assert_allclose(positions(obj.data), cols.means[kept].astype(np.float32))
    assert obj.gsds.gaussian_count == 30
    assert obj.gsds.nonfinite_count == 3


# ---------------------------------------------------------------------------- bad files


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _without(names: list[str], drop: str) -> list[str]:
    return [n for n in names if n != drop]


def _ply_header(names: list[str], n: int = 2, encoding: str = "binary_little_endian") -> bytes:
    lines = ["ply", f"format {encoding} 1.0", f"element vertex {n}"]
    lines += [f"property float {name}" for name in names] + ["end_header"]
    return ("\n".join(lines) + "\n").encode()


def _bad_files(folder: Path) -> list[tuple[Path, str]]:
    names = inria_property_names(0)
    good = folder / "good.ply"
    write_inria_ply(good, n=10)
    data = good.read_bytes()
    ascii_bad = _ply_header(names, 1, "ascii") + b" ".join([b"1"] * (len(names) - 1) + [b"x"])
    return [
        (folder / "missing.ply", "file not found"),
        (_write(folder / "empty.ply", b""), "empty"),
        (_write(folder / "text.ply", b"hello, I am not a PLY\n"), "not a Gaussian splat file"),
        (_write(folder / "noend.ply", b"ply\nformat ascii 1.0\nelement vertex 1\n"),
         "end_header"),
        (_write(folder / "truncated.ply", data[:-100]), "truncated"),
        (_write(folder / "norot.ply", _ply_header(_without(names, "rot_3")) + bytes(4 * 2 * 13)),
         "missing property rot_3"),
        (_write(folder / "cloud.ply", _ply_header(["x", "y", "z", "red"]) + bytes(32)),
         "point cloud"),
        (_write(folder / "rest5.ply",
                _ply_header(names + [f"f_rest_{i}" for i in range(5)]) + bytes(4 * 2 * 19)),
         "5 f_rest"),
        (_write(folder / "ascii.ply", ascii_bad), "not a number"),
        (_write(folder / "zero.ply", _ply_header(names, 0)), "no Gaussians"),
        (_write(folder / "odd.splat", bytes(33)), "32-byte rows"),
        (_write(folder / "cut.spz", spz_bytes(random_content(20, 1, 0))[:-9]), "truncated"),
        (_fifo(folder / "pipe.ply"), "a named pipe (FIFO), not a regular file"),
    ]


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_bad_files_give_a_clear_error_and_no_object(addon, tmp_path):
    for path, message in _bad_files(tmp_path):
        objects, meshes = len(bpy.data.objects), len(bpy.data.meshes)
        with pytest.raises(RuntimeError) as info:
            bpy.ops.gsds.import_ply(filepath=str(path))
        assert str(path) in str(info.value), info.value
        assert message in str(info.value), info.value
        assert (len(bpy.data.objects), len(bpy.data.meshes)) == (objects, meshes)


def test_no_file_given_is_an_error(addon):
    with pytest.raises(RuntimeError, match="No file given"):
        bpy.ops.gsds.import_ply()


# ------------------------------------------------------------------- reader, other formats


def test_reader_returns_the_inria_values(tmp_path):
    cols = random_columns(64, 2, seed=9)
    path = tmp_path / "raw.ply"
    write_inria_ply(path, cols, encoding="binary_big_endian", with_normals=True)
    splat = read_splat_file(path, dc_only=True)
    assert (splat.count, splat.sh_degree, splat.format) == (64, 2, "inria_ply")
    assert splat.sh.shape == (64, 1, 3) and splat.has_normals
    np.testing.assert_array_equal(splat.means, cols.means.astype(np.float32))
    np.testing.assert_array_equal(splat.quats, cols.rots.astype(np.float32))
    np.testing.assert_array_equal(splat.sh[:, 0], cols.f_dc.astype(np.float32))
    np.testing.assert_allclose(splat.scales, np.exp(cols.log_scales), rtol=2**-20)
    np.testing.assert_allclose(splat.opacities, cols.opacities(), rtol=2**-20)


BACKEND_SCRIPT = r"""
import sys
from pathlib import Path
import numpy as np
import torch
from gsplat.exporter import export_splats, sort_centers
sys.path.insert(0, "tests")
from io_helpers import random_export_params
out = Path(sys.argv[1])
for fmt, name, degree in (("ply_compressed", "compressed.ply", 1), ("splat", "s.splat", 0)):
    params = random_export_params(700, degree, seed=len(name))
    params["opacities"] = params["opacities"].clamp(min=-4.0)  # all written
    export_splats(**params, format=fmt, save_to=str(out / name))
    order = sort_centers(params["means"], torch.arange(700))  # the files' row order
    p = {k: v[order] for k, v in params.items()}
    np.savez(out / (name + ".npz"), means=p["means"].numpy(),
             colors=(0.5 + 0.28209479177387814 * p["sh0"][:, 0]).clamp(0, 1).numpy(),
             opacities=torch.sigmoid(p["opacities"]).numpy(),
             scales=torch.exp(p["scales"]).max(dim=1).values.numpy())
"""


def _assert_proxy(obj: bpy.types.Object, means, colors, opacities, scales, atol: dict) -> None:
    mesh = obj.data
    n = len(means)
    np.testing.assert_array_equal(attribute(mesh, "gs_index", np.int32), np.arange(n))
    np.testing.assert_allclose(positions(mesh), means, atol=atol["means"], rtol=0)
    np.testing.assert_allclose(attribute(mesh, "gs_color", width=4)[:, :3], colors,
                               atol=atol["colors"], rtol=0)
    np.testing.assert_allclose(attribute(mesh, "gs_opacity"), opacities,
                               atol=atol["opacities"], rtol=0)
    np.testing.assert_allclose(attribute(mesh, "gs_scale"), scales, rtol=atol["scales"])


def test_compressed_ply_and_splat_written_by_gsplat_import(addon, tmp_path):
    if not BACKEND_PYTHON.is_file():
        pytest.skip("the backend venv (.venv) is missing: no gsplat to write the files")
    run = subprocess.run([str(BACKEND_PYTHON), "-c", BACKEND_SCRIPT, str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    tolerances = {  # half a quantisation step, or the truncation of a byte
        "compressed.ply": {"means": 0.02, "colors": 0.02, "opacities": 0.5 / 255 + 1e-6,
                           "scales": 0.02},
        "s.splat": {"means": 0.0, "colors": 1 / 255 + 1e-6, "opacities": 1 / 255 + 1e-6,
                    "scales": 1e-6},
    }
    for name, atol in tolerances.items():
        obj = import_ply(tmp_path / name)
        ref = np.load(tmp_path / (name + ".npz"))
        assert obj.gsds.source_format == ("splat" if name.endswith("splat") else
                                          "compressed_ply")
        _assert_proxy(obj, ref["means"], ref["colors"], ref["opacities"], ref["scales"], atol)


@pytest.mark.parametrize("version", [2, 3, 4])
def test_spz_imports_in_ply_axes(addon, tmp_path, version):
    content = random_content(300, 2, seed=version)
    path = tmp_path / f"v{version}.spz"
    path.write_bytes(spz_bytes(content, version=version))
    obj = import_ply(path)
    want = decoded(content, version)
    assert (obj.gsds.source_format, obj.gsds.sh_degree, obj.gsds.gaussian_count) == \
        ("spz", 2, 300)
    colors = np.clip(0.5 + SH_C0 * want.dc, 0, 1)
    _assert_proxy(obj, want.positions * np.array([1, -1, -1]), colors,
                  np.clip(want.alphas, 2**-126, 1 - 2**-24), np.exp(want.log_scales).max(1),
                  {"means": 0.0, "colors": 0.5 / 255 + 1e-6, "opacities": 1e-7,
                   "scales": 1e-6})


def test_palette_index_rounds_each_channel():
    srgb = np.array([[0, 0, 0], [1, 1, 1], [0.16, 0.5, 0.84], [0.17, 0.49, 0.83]])
    levels = proxy_mesh.PALETTE_LEVELS
    expected = [0, levels**3 - 1, 0 + 2 * levels + 3 * levels**2,
                1 + 1 * levels + 2 * levels**2]
    assert proxy_mesh.palette_index(srgb).tolist() == expected
    assert math.isclose(proxy_mesh.palette_colors()[expected[2]][2], 1.0)
