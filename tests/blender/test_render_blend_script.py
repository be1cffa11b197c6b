"""``scripts/render_blend.py`` (DESIGN contract 6), run as a separate bpy-module process.

The child gets a fresh ``BLENDER_USER_RESOURCES``, so the extension is not installed
there: the script has to register the add-on from the checkout itself.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import bpy
import pytest
from paths import REPO
from scene_factory import build_small_scene

SCRIPT = REPO / "scripts" / "render_blend.py"
FAKE = Path(__file__).with_name("fake_backend.py")
BACKEND = REPO / ".venv" / "bin" / "gs-backend"


def fake(mode: str = "ok") -> str:
    return shlex.join([sys.executable, str(FAKE), "--mode", mode])


def save_blend(path: Path, assets: Path, *, camera: bool = True) -> Path:
    """A small scene: a background, a keyframed instrument (frames 1 and 4), a camera."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    build_small_scene(assets, frame_end=5, class_name="driver", gaussians=150,
                      end_location=(0.2, 0.0, 2.0), camera=camera)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    return path


@pytest.fixture(scope="module")
def blends(registered_addon, tmp_path_factory):
    folder = tmp_path_factory.mktemp("blends")
    assets = folder / "assets"
    assets.mkdir()
    good = save_blend(folder / "good.blend", assets)
    bad = save_blend(folder / "no_camera.blend", assets, camera=False)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return good, bad


def run_script(args: list[str], tmp_path: Path, timeout: float = 180.0,
               command: list[str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user_resources")
    env.pop("GSDS_BACKEND", None)
    cmd = command or [sys.executable, str(SCRIPT), *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)


def result_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith(("ok ", "error "))]


def test_one_blend(blends, tmp_path):
    good, _ = blends
    out = tmp_path / "dataset"
    proc = run_script([str(good), "--out", str(out), "--backend", fake(), "--frames",
                       "keyframes", "--device", "cpu"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = result_lines(proc)
    assert len(lines) == 1 and lines[0].startswith(f"ok {good}: 2 frames, 2 labelled instances")
    scenario = json.loads((out / "scenario.json").read_text())
    assert [f["name"] for f in scenario["frames"]] == ["frame_0001", "frame_0004"]
    assert (out / "images" / "train" / "frame_0004.png").is_file()
    assert "[2/2] frame_0004" in proc.stderr  # progress streamed as lines
    argv = json.loads((out / "fake_backend_argv.json").read_text())
    assert argv[argv.index("--device") + 1] == "cpu"


def test_batch_with_a_failing_blend(blends, tmp_path):
    good, bad = blends
    missing = tmp_path / "missing.blend"
    out = tmp_path / "batch"
    proc = run_script([str(good), str(bad), str(missing), "--out", str(out),
                       "--backend", fake()], tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = result_lines(proc)
    assert len(lines) == 3, proc.stdout
    assert lines[0].startswith(f"ok {good}: 5 frames")
    assert lines[1] == f"error {bad}: export failed: the scene has no camera: add one and " \
                       "make it the active camera (Scene properties > Camera)"
    assert lines[2].startswith(f"error {missing}: cannot open")
    assert (out / "good" / "manifest.json").is_file()
    assert not (out / "no_camera" / "scenario.json").exists()


def test_batch_refuses_two_blends_that_would_share_a_folder(blends, tmp_path):
    good, _ = blends
    twin = tmp_path / "other" / good.name
    twin.parent.mkdir()
    twin.write_bytes(good.read_bytes())
    out = tmp_path / "batch"
    proc = run_script([str(good), str(twin), "--out", str(out), "--backend", fake()],
                      tmp_path)
    assert proc.returncode == 2
    assert f"{good} and {twin} would render into one folder {out / good.stem}" in proc.stderr
    assert not out.exists()


def test_backend_failure_gives_its_exit_code(blends, tmp_path):
    good, _ = blends
    proc = run_script([str(good), "--out", str(tmp_path / "o"), "--backend", fake("fail")],
                      tmp_path)
    assert proc.returncode == 2
    assert result_lines(proc) == [
        f"error {good}: render failed: {tmp_path / 'o' / 'scenario.json'}: frames[0].camera.K: "
        "focal lengths must be positive"]


def test_like_blender_b_with_the_file_already_open(blends, tmp_path):
    """``blender -b good.blend --python render_blend.py -- --out DIR``: arguments after
    ``--`` and the open file (simulated with the bpy module)."""
    good, _ = blends
    out = tmp_path / "from_blender"
    code = (
        "import runpy, sys, bpy\n"
        f"bpy.ops.wm.open_mainfile(filepath={str(good)!r})\n"
        f"sys.argv = ['blender', '-b', {str(good)!r}, '--python', {str(SCRIPT)!r}, '--',\n"
        f"            '--out', {str(out)!r}, '--backend', {fake()!r}]\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    )
    proc = run_script([], tmp_path, command=[sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert result_lines(proc) == [line for line in result_lines(proc)
                                  if line.startswith(f"ok {good}: 5 frames")]
    assert (out / "scenario.json").is_file()


INSTALL = r"""
import sys, bpy
result = bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo='user_default',
                                                  enable_on_install=True)
assert result == {'FINISHED'}, result
bpy.ops.wm.save_userpref()
"""


@pytest.mark.slow
@pytest.mark.skipif(bpy.app.version < (4, 3, 0),
                    reason="the bpy 4.2 module crashes reading preferences, so the script "
                    "cannot see installed extensions there (the blender binary can)")
def test_with_the_extension_installed(blends, tmp_path):
    """The installed extension (the built zip) is used, not the checkout's source."""
    sys.path.insert(0, str(REPO / "scripts"))
    import build_extension

    good, _ = blends
    zip_path = build_extension.build(tmp_path / "dist")
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user_resources"))
    install = subprocess.run([sys.executable, "-c", INSTALL, str(zip_path)], env=env,
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    out = tmp_path / "dataset"
    proc = run_script([str(good), "--out", str(out), "--backend", fake()], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "using the add-on bl_ext.user_default.gs_dataset_studio" in proc.stderr
    assert "registered the add-on from" not in proc.stderr
    assert result_lines(proc)[0].startswith(f"ok {good}: 5 frames")


def test_without_the_extension_the_checkout_is_registered(blends, tmp_path):
    good, _ = blends
    proc = run_script([str(good), "--out", str(tmp_path / "d"), "--backend", fake()],
                      tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"registered the add-on from {REPO / 'blender_addon'}" in proc.stderr


@pytest.mark.slow
def test_real_backend_is_found_in_the_checkout(blends, tmp_path):
    """No --backend: the checkout's .venv/bin/gs-backend renders the dataset for real."""
    if not BACKEND.is_file():
        pytest.skip("the backend venv (.venv) is missing")
    good, _ = blends
    out = tmp_path / "real"
    proc = run_script([str(good), "--out", str(out), "--frames", "KEYFRAMES", "--device",
                       "cpu"], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["frames_done"] == 2
    assert result_lines(proc)[0].startswith(
        f"ok {good}: 2 frames, {manifest['labelled_instances']} labelled instances")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigterm_stops_the_backend_at_once(blends, tmp_path):
    """SIGTERM to the script (a batch system stopping the job) reaches the backend right
    away, as Ctrl-C: it stops cleanly and the script exits 130 after it."""
    good, _ = blends
    out = tmp_path / "stopped"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user_resources"))
    env.pop("GSDS_BACKEND", None)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(good), "--out", str(out),
                             "--backend", fake("wait")], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []
    for line in proc.stderr:  # synchronise on the first frame's progress line
        seen.append(line)
        if "[1/5] frame_0001" in line:
            break
    else:
        raise AssertionError("".join(seen))
    proc.terminate()
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert f"error {good}: interrupted; run the same command again to resume" in stdout
    assert (out / "fake_backend_interrupted").read_text() == "yes"  # told by SIGINT
    for pid in map(int, (out / "fake_backend_pids.txt").read_text().split()):
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] == "Z"


def test_shard_goes_to_the_backend(blends, tmp_path):
    """``--shard auto`` (a job-array task, docs/cluster.md) reaches ``gs-backend render``."""
    good, _ = blends
    out = tmp_path / "dataset"
    proc = run_script([str(good), "--out", str(out), "--backend", fake(), "--shard", "auto"],
                      tmp_path)
    assert proc.returncode == 0, proc.stderr
    argv = json.loads((out / "fake_backend_argv.json").read_text())
    assert argv[argv.index("--shard") + 1] == "auto"
