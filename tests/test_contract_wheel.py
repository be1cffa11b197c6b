"""The gs_contract wheel that the Blender extension bundles (scripts/build_extension.py).

Checked against what others implement: pip installs it (pip reads its WHEEL, METADATA and
RECORD), the installed copy imports in a fresh interpreter, and every RECORD line carries
the sha256 (urlsafe base64 without padding, PEP 376/427) and size of its member.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gs_contract

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_extension  # noqa: E402

DIST_INFO = f"gs_contract-{gs_contract.__version__}.dist-info"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_extension.build_wheel(tmp_path_factory.mktemp("wheel"))


def test_name_and_members(wheel):
    assert wheel.name == f"gs_contract-{gs_contract.__version__}-py3-none-any.whl"
    sources = sorted(f"gs_contract/{p.relative_to(ROOT / 'gs_contract').as_posix()}"
                     for p in (ROOT / "gs_contract").rglob("*.py")
                     if "__pycache__" not in p.parts)
    assert "gs_contract/camera.py" in sources
    with zipfile.ZipFile(wheel) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        wheel_file = archive.read(f"{DIST_INFO}/WHEEL").decode()
        metadata = archive.read(f"{DIST_INFO}/METADATA").decode()
    assert names == [*sources, f"{DIST_INFO}/METADATA", f"{DIST_INFO}/WHEEL",
                     f"{DIST_INFO}/RECORD"]
    assert "Root-Is-Purelib: true" in wheel_file and "Tag: py3-none-any" in wheel_file
    assert f"Version: {gs_contract.__version__}\n" in metadata
    assert "Requires-Dist: numpy" in metadata


def test_record_lists_every_member_with_its_digest(wheel):
    with zipfile.ZipFile(wheel) as archive:
        data = {name: archive.read(name) for name in archive.namelist()}
    rows = list(csv.reader(io.StringIO(data[f"{DIST_INFO}/RECORD"].decode())))
    assert sorted(row[0] for row in rows) == sorted(data)
    for name, digest, size in rows:
        if name == f"{DIST_INFO}/RECORD":
            assert (digest, size) == ("", "")
            continue
        expected = base64.urlsafe_b64encode(hashlib.sha256(data[name]).digest())
        assert digest == "sha256=" + expected.decode().rstrip("="), name
        assert int(size) == len(data[name]), name


def test_build_is_deterministic(wheel, tmp_path):
    assert build_extension.build_wheel(tmp_path).read_bytes() == wheel.read_bytes()


def test_pip_installs_it_and_the_copy_imports(wheel, tmp_path):
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                          "--disable-pip-version-check", "--target", str(target), str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert (target / DIST_INFO / "RECORD").is_file()
    # PYTHONPATH comes before this venv's (editable) install of the checkout.
    env = dict(os.environ, PYTHONPATH=str(target))
    code = ("import gs_contract, gs_contract.camera, gs_contract.scenario; "
            "print(gs_contract.__file__); print(gs_contract.__version__)")
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    path, version = run.stdout.split()
    assert Path(path).resolve() == (target / "gs_contract" / "__init__.py").resolve()
    assert version == gs_contract.__version__
