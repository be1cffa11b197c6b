"""Guard the imports of the three packages (DESIGN, "Architecture").

- ``gs_contract`` imports numpy and the standard library only (an allow-list, over all its
  files), and importing it with every submodule loads neither torch, bpy nor gs_backend;
- the add-on imports only what Blender ships (the standard library, bpy and its
  companions, numpy) and ``gs_contract``, which the extension bundles as a wheel;
- the backend never imports Blender.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    # plyfile, pycocotools and pycolmap are dev-only (the tests' independent oracles).
    "gs_backend": {"bpy", "mathutils", "bmesh", "bpy_extras", "plyfile", "pycocotools",
                   "pycolmap"},
    "blender_addon": {"torch", "gsplat", "cv2", "plyfile", "tqdm", "pycocotools"},
}
BLENDER_SHIPS = {"bpy", "bpy_extras", "mathutils", "bmesh", "gpu", "gpu_extras", "bl_ui",
                 "addon_utils", "numpy"} | set(sys.stdlib_module_names)
ADDON_MAY_IMPORT = BLENDER_SHIPS | {"gs_contract"}
# The one exception: a Zstandard decoder for .spz version 4, imported only when such a file
# is read (Python 3.14's ``compression.zstd``, else ``zstandard``, which Blender ships).
ZSTD_DECODERS = {"compression", "zstandard"}
CONTRACT_MAY_IMPORT = {"numpy", "gs_contract"} | ZSTD_DECODERS | set(sys.stdlib_module_names)
# Never loaded by ``import gs_contract`` (and its submodules), not even indirectly.
CONTRACT_MUST_NOT_LOAD = ("torch", "gsplat", "cv2", "bpy", "mathutils", "bmesh", "gs_backend",
                          "blender_addon", "plyfile", "tqdm", "zstandard")


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


@pytest.mark.parametrize("package, allowed", [("blender_addon", ADDON_MAY_IMPORT),
                                               ("gs_contract", CONTRACT_MAY_IMPORT)])
def test_package_imports_only_its_allow_list(package, allowed):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package} has no sources?"
    outside = {str(f.relative_to(ROOT)): sorted(imported_modules(f) - allowed) for f in files}
    assert {k: v for k, v in outside.items() if v} == {}


def test_importing_the_contract_loads_no_heavy_or_foreign_module():
    """In a fresh interpreter (this venv has torch and gs_backend): import gs_contract and
    every submodule, then list what got loaded."""
    code = """if True:
        import importlib, json, pkgutil, sys
        import gs_contract
        names = [m.name for m in pkgutil.walk_packages(gs_contract.__path__, "gs_contract.")]
        for name in names:
            importlib.import_module(name)
        print(json.dumps({"submodules": names,
                          "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
    """
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    files = {p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
             for p in (ROOT / "gs_contract").rglob("*.py")
             if "__pycache__" not in p.parts and p.name != "__init__.py"}
    assert set(report["submodules"]) >= files  # the walk saw every module
    assert "numpy" in report["loaded"]  # control: the list is real
    assert sorted(set(CONTRACT_MUST_NOT_LOAD) & set(report["loaded"])) == []


def test_checker_sees_nested_and_from_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import torch.nn\n    from cv2 import imread\n")
    assert imported_modules(sample) == {"torch", "cv2"}
