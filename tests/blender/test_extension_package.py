"""The extension zip: built by scripts/build_extension.py, accepted by Blender's own
validator, installed and enabled by ``extensions.package_install_files``, and working,
with the ``gs_contract`` it bundles as a wheel.

The install runs in a child process with its own empty ``BLENDER_USER_RESOURCES``: a
fresh Blender that has never seen the source folder (not on ``sys.path``: no
``PYTHONPATH``, the working folder elsewhere), so everything it does comes from the zip.
A second child process is Blender started again on that configuration: its add-on code
imports ``gs_contract`` from the extensions' ``site-packages``, where Blender put the wheel.
(On the first start after an install Blender appends that folder to ``sys.path``, behind
this venv's own copy of gs_contract that ``make setup`` installs; on every later start it
comes first.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import bpy
import pytest
from paths import REPO

sys.path.insert(0, str(REPO / "scripts"))
import build_extension

PACKAGE = "bl_ext.user_default.gs_dataset_studio"


def blender_ext_cli() -> Path:
    """Blender's extension command-line tool, as shipped inside this bpy."""
    scripts = Path(bpy.utils.system_resource('SCRIPTS'))
    path = scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    assert path.is_file(), f"blender_ext.py not found under {scripts}"
    return path


def validate(zip_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(blender_ext_cli()), "validate", str(zip_path)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    return build_extension.build(tmp_path_factory.mktemp("dist"))


def test_zip_layout_and_name(built_zip):
    manifest = (REPO / "blender_manifest.toml").read_text(encoding="utf-8")
    version = build_extension.manifest_field(manifest, "version")
    assert built_zip.name == f"gs_dataset_studio-{version}.zip"
    import gs_contract

    wheel = f"wheels/gs_contract-{gs_contract.__version__}-py3-none-any.whl"
    assert build_extension.manifest_wheels(manifest) == [f"./{wheel}"]
    with zipfile.ZipFile(built_zip) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
    addon = REPO / "blender_addon"
    sources = sorted(p.relative_to(addon).as_posix() for p in addon.rglob("*.py")
                     if "__pycache__" not in p.parts)
    assert {"__init__.py", "core/__init__.py", "blender/__init__.py"} <= set(sources)
    assert names == sorted([*sources, "blender_manifest.toml", wheel])
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    with zipfile.ZipFile(built_zip) as archive:
        bundled = archive.read(wheel)
    assert bundled == (built_zip.parent / Path(wheel).name).read_bytes()


def test_build_refuses_a_manifest_without_this_wheel(tmp_path, monkeypatch):
    manifest = tmp_path / "blender_manifest.toml"
    text = (REPO / "blender_manifest.toml").read_text(encoding="utf-8")
    manifest.write_text(text.replace("gs_contract-", "gs_contract-9"), encoding="utf-8")
    monkeypatch.setattr(build_extension, "MANIFEST", manifest)
    with pytest.raises(SystemExit, match="wheels must be"):
        build_extension.build(tmp_path / "dist")
    assert not (tmp_path / "dist" / "gs_dataset_studio-0.1.0.zip").exists()


def test_build_is_deterministic(built_zip, tmp_path):
    again = build_extension.build(tmp_path)
    assert again.read_bytes() == built_zip.read_bytes()


def test_blender_validator_accepts_the_zip(built_zip):
    run = validate(built_zip)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success" in run.stdout


def test_blender_validator_is_not_a_rubber_stamp(built_zip, tmp_path):
    """Control: the same zip with a broken manifest is refused."""
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(built_zip) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "blender_manifest.toml":
                data = data.replace(b'blender_version_min = "4.2.0"',
                                    b'blender_version_min = "four"')
            target.writestr(item, data)
    run = validate(broken)
    assert run.returncode != 0
    assert "blender_version_min" in run.stdout + run.stderr


INSTALL_SCRIPT = r"""
import json, os, sys
import bpy
zip_path, ply_path = sys.argv[1], sys.argv[2]
report = {}
result = bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo='user_default', enable_on_install=True)
report["install"] = sorted(result)
package = "bl_ext.user_default.gs_dataset_studio"
report["enabled"] = package in bpy.context.preferences.addons
report["installed_files"] = sorted(os.listdir(
    bpy.utils.user_resource('EXTENSIONS', path="user_default/gs_dataset_studio")))
report["site_packages"] = sorted(os.listdir(bpy.utils.user_resource(
    'EXTENSIONS', path=".local/lib/python{}.{}/site-packages".format(*sys.version_info))))
report["lazy_modules"] = [m for m in (f"{package}.blender.proxy_mesh", "gs_contract.splats")
                          if m in sys.modules]
operators = {}
for idname in ("gsds.import_ply", "gsds.export_scenario", "gsds.render_dataset",
               "gsds.cancel_render"):
    module, name = idname.split(".")
    try:
        getattr(getattr(bpy.ops, module), name).get_rna_type()
        operators[idname] = True
    except KeyError:
        operators[idname] = False
report["operators"] = operators
report["import_class_module"] = bpy.types.GSDS_OT_import_ply.__module__
menu = [f for f in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
        if getattr(f, "__module__", "").startswith(package)]
drawn = []
class Layout:
    def operator(self, idname, **kwargs):
        drawn.append((idname, kwargs.get("text")))
class Self:
    layout = Layout()
for draw in menu:
    draw(Self(), bpy.context)
report["import_menu"] = drawn
prefs = bpy.context.preferences.addons[package].preferences
report["preferences"] = [type(prefs).bl_idname, prefs.backend_command, prefs.device]
module = sys.modules[package + ".blender.preferences"]
report["get_preferences"] = module.get_preferences(bpy.context) == prefs
result = bpy.ops.gsds.import_ply(filepath=ply_path, role='BACKGROUND')
obj = bpy.context.view_layer.objects.active
report["import"] = sorted(result)
report["object"] = [obj.name, len(obj.data.vertices), obj.gsds.role, obj.gsds.source_path,
                    sorted(a.name for a in obj.data.attributes if a.name.startswith("gs_"))]
print("REPORT " + json.dumps(report))
"""

# Blender started again on the configuration the install left: enable the extension and
# export a scenario (the camera conversion is gs_contract's); say where gs_contract was
# imported from.
RESTART_SCRIPT = r"""
import json, os, sys
import bpy
ply_path, scenario_path = sys.argv[1], sys.argv[2]
package = "bl_ext.user_default.gs_dataset_studio"
report = {"preloaded": "gs_contract" in sys.modules}
bpy.ops.preferences.addon_enable(module=package)
report["enabled"] = package in bpy.context.preferences.addons
report["import"] = sorted(bpy.ops.gsds.import_ply(filepath=ply_path, role='BACKGROUND'))
scene = bpy.context.scene
scene.frame_start, scene.frame_end = 1, 2
report["export"] = sorted(bpy.ops.gsds.export_scenario(filepath=scenario_path, frames='ALL'))
contract = sys.modules["gs_contract"]
report["gs_contract"] = contract.__file__
report["camera_module"] = sys.modules["gs_contract.camera"].__file__
report["extension_site_packages"] = bpy.utils.user_resource(
    'EXTENSIONS', path=".local/lib/python{}.{}/site-packages".format(*sys.version_info))
report["sys_path"] = sys.path
print("REPORT " + json.dumps(report))
"""


def run_blender(script: str, *args: Path, user: Path, cwd: Path) -> dict:
    """Run ``script`` in a fresh bpy process on the Blender configuration ``user``, with
    neither the checkout nor PYTHONPATH on its ``sys.path``; its ``REPORT`` line."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BLENDER_USER_RESOURCES"] = str(user)
    run = subprocess.run([sys.executable, "-c", script, *map(str, args)],
                         env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith("REPORT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT "):])


def test_install_enable_and_use_the_zip(built_zip, tmp_path):
    from ply_factory import write_inria_ply

    import gs_contract

    ply = tmp_path / "tissue.ply"
    write_inria_ply(ply, n=25, sh_degree=1)
    user = tmp_path / "blender_user"
    report = run_blender(INSTALL_SCRIPT, built_zip, ply, user=user, cwd=tmp_path)
    assert report["install"] == ["FINISHED"] and report["enabled"]
    dist_info = f"gs_contract-{gs_contract.__version__}.dist-info"
    assert {"gs_contract", dist_info} <= set(report["site_packages"]), report["site_packages"]
    assert "blender_manifest.toml" in report["installed_files"]
    assert "__init__.py" in report["installed_files"]
    assert report["lazy_modules"] == [], "registration must not import the import machinery"
    assert report["operators"] == dict.fromkeys(report["operators"], True), report["operators"]
    assert report["import_class_module"].startswith(PACKAGE), "operator not from the zip"
    assert report["import_menu"] == [["gsds.import_ply", "Gaussian Splat (.ply, .splat, .spz)"],
                                     ["gsds.import_recording", "Tracked Recording (.json)"]]
    assert report["preferences"] == [PACKAGE, "gs-backend", "AUTO"]
    assert report["get_preferences"] is True
    assert report["import"] == ["FINISHED"]
    name, vertices, role, source, attributes = report["object"]
    assert (name, vertices, role) == ("tissue", 25, 'BACKGROUND')
    assert Path(source) == ply.resolve()
    assert attributes == ["gs_color", "gs_index", "gs_opacity", "gs_palette", "gs_scale"]

    restarted = run_blender(RESTART_SCRIPT, ply, tmp_path / "scenario.json", user=user,
                            cwd=tmp_path)
    assert restarted["preloaded"] is False and restarted["enabled"]
    assert (restarted["import"], restarted["export"]) == (["FINISHED"], ["FINISHED"])
    assert not any((tmp_path / p).resolve() == REPO for p in restarted["sys_path"])
    site_packages = Path(restarted["extension_site_packages"]).resolve()
    assert site_packages.is_relative_to(user.resolve())
    for module in (restarted["gs_contract"], restarted["camera_module"]):
        assert Path(module).resolve().is_relative_to(site_packages), module
    scenario = json.loads((tmp_path / "scenario.json").read_text())
    assert len(scenario["frames"]) == 2 and list(scenario["objects"]) == ["tissue"]
