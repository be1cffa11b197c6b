"""The two halves of the product share only the scenario file: guard the imports.

The backend must not import Blender; the add-on may import only what Blender ships
(an allow-list: the standard library, bpy and its companions, numpy).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "gs_backend": {"bpy", "mathutils", "bmesh", "bpy_extras"},
    "blender_addon": {"torch", "gsplat", "cv2", "plyfile", "tqdm", "pycocotools"},
}
BLENDER_SHIPS = {"bpy", "bpy_extras", "mathutils", "bmesh", "gpu", "gpu_extras", "bl_ui",
                 "addon_utils", "numpy", "gs_contract"} | set(sys.stdlib_module_names)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_the_other_side(package):
    folder = ROOT / package
    files = sorted(folder.rglob("*.py"))
    if package == "gs_backend":
        assert files, "gs_backend has no sources?"
    offenders = {
        str(f.relative_to(ROOT)): sorted(imported_modules(f) & FORBIDDEN[package])
        for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_addon_imports_only_what_blender_ships():
    files = sorted((ROOT / "blender_addon").rglob("*.py"))
    assert files, "blender_addon has no sources?"
    outside = {str(f.relative_to(ROOT)): sorted(imported_modules(f) - BLENDER_SHIPS)
               for f in files}
    assert {k: v for k, v in outside.items() if v} == {}


def test_checker_sees_nested_and_from_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import torch.nn\n    from cv2 import imread\n")
    assert imported_modules(sample) == {"torch", "cv2"}
