"""Build the Blender extension zip and the ``gs_contract`` wheel it bundles.

Writes two files into ``dist/`` (or ``--out``):

- ``gs_contract-<version>-py3-none-any.whl``: the pure-Python contract package
  (``gs_contract/**/*.py``; version = ``gs_contract.__version__``) with its
  ``.dist-info`` (``METADATA``, ``WHEEL``, ``RECORD`` with sha256 digests);
- ``gs_dataset_studio-<version>.zip``: ``blender_manifest.toml`` and the add-on package
  (``blender_addon/**/*.py``, subfolders included) at its root, the layout Blender's
  extension installer expects, plus that wheel under ``wheels/``. The manifest lists it in
  ``wheels = [...]``, Blender's own mechanism for an extension's Python dependencies
  (Blender 4.2+ extracts it into its extensions' ``site-packages`` on install), so the
  add-on imports the same ``gs_contract`` as the backend. The build refuses a manifest
  whose ``wheels`` list is not exactly this wheel.

Why a small wheel writer here rather than ``pip wheel`` / ``build``: a pure wheel is a zip
with three metadata files, and writing it with the standard library keeps ``make
extension`` free of any venv or network and the output deterministic (members sorted,
fixed timestamps and permissions), so the same sources give byte-identical files with the
same Python. ``pip install`` of the wheel is tested (tests/test_contract_wheel.py).

Usage::

    python scripts/build_extension.py [--out DIR] [--wheel]

Runs with any Python 3.10+ (standard library only). Prints the path of the zip it wrote
(with ``--wheel``: builds and prints only the wheel).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "blender_manifest.toml"
PYPROJECT = ROOT / "pyproject.toml"
SOURCE_DIR = ROOT / "blender_addon"
CONTRACT_DIR = ROOT / "gs_contract"
WHEEL_TAG = "py3-none-any"
WHEELS_FOLDER = "wheels"  # inside the extension zip, by Blender's convention
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can store
FILE_MODE = 0o644 << 16  # -rw-r--r--, in the zip's external attributes


def manifest_field(text: str, key: str) -> str:
    """The string value of a top-level ``key = "value"`` line of the manifest."""
    match = re.search(rf'^{re.escape(key)}\s*=\s*"([^"]*)"', text, flags=re.MULTILINE)
    if match is None:
        raise SystemExit(f"{MANIFEST}: no top-level {key!r} string field")
    return match.group(1)


def manifest_wheels(text: str) -> list[str]:
    """The paths of the manifest's top-level ``wheels = [...]`` list (empty when absent)."""
    match = re.search(r"^wheels\s*=\s*\[(.*?)\]", text, flags=re.MULTILINE | re.DOTALL)
    return re.findall(r'"([^"]*)"', match.group(1)) if match else []


def contract_version(contract_dir: Path = CONTRACT_DIR) -> str:
    """``gs_contract.__version__``, read from its ``__init__.py`` without importing it."""
    init = contract_dir / "__init__.py"
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', init.read_text(encoding="utf-8"),
                      flags=re.MULTILINE)
    if match is None:
        raise SystemExit(f"{init}: no __version__ = \"...\" line")
    return match.group(1)


def python_modules(folder: Path) -> list[Path]:
    """Every ``*.py`` under ``folder`` (subpackages included, caches not), sorted."""
    if not (folder / "__init__.py").is_file():
        raise SystemExit(f"{folder}: no __init__.py, not a package")
    return sorted(p for p in folder.rglob("*.py") if p.is_file() and "__pycache__" not in p.parts)


def wheel_filename(version: str) -> str:
    return f"{CONTRACT_DIR.name}-{version}-{WHEEL_TAG}.whl"


def _pyproject_value(pattern: str, what: str) -> str:
    match = re.search(pattern, PYPROJECT.read_text(encoding="utf-8"), flags=re.MULTILINE)
    if match is None:
        raise SystemExit(f"{PYPROJECT}: no {what}")
    return match.group(1)


def wheel_metadata(version: str) -> str:
    """The core metadata (``METADATA``): numpy is the one dependency (Blender ships it);
    the Python and numpy bounds are the project's own, from pyproject.toml."""
    return "".join([
        "Metadata-Version: 2.1\n",
        "Name: gs-contract\n",
        f"Version: {version}\n",
        "Summary: What the GS Dataset Studio Blender extension and backend agree on\n",
        "License: Apache-2.0\n",
        "Requires-Python: " + _pyproject_value(r'^requires-python\s*=\s*"([^"]+)"',
                                               "requires-python") + "\n",
        "Requires-Dist: " + _pyproject_value(r'^\s*"(numpy[^"]*)"', "numpy dependency") + "\n",
    ])


def _record_digest(data: bytes) -> str:
    """``sha256=<urlsafe base64, no padding>``, as a wheel's RECORD writes it."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def wheel_members(version: str, contract_dir: Path = CONTRACT_DIR) -> list[tuple[str, bytes]]:
    """``(name in wheel, bytes)``: the package's modules, then ``METADATA``, ``WHEEL`` and
    last ``RECORD`` (path, digest and size of every other member)."""
    members = [(f"{contract_dir.name}/{p.relative_to(contract_dir).as_posix()}", p.read_bytes())
               for p in python_modules(contract_dir)]
    dist_info = f"{contract_dir.name}-{version}.dist-info"
    wheel = ("Wheel-Version: 1.0\nGenerator: gs-dataset-studio scripts/build_extension.py\n"
             f"Root-Is-Purelib: true\nTag: {WHEEL_TAG}\n")
    members += [(f"{dist_info}/METADATA", wheel_metadata(version).encode("utf-8")),
                (f"{dist_info}/WHEEL", wheel.encode("utf-8"))]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in members:
        writer.writerow([name, _record_digest(data), len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    members.append((f"{dist_info}/RECORD", record.getvalue().encode("utf-8")))
    return members


def write_zip(target: Path, members: list[tuple[str, bytes]]) -> Path:
    """Write ``members`` in their order with fixed times and modes; atomic (temp + rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = FILE_MODE
            info.create_system = 3  # Unix, so the mode above is honoured
            archive.writestr(info, data)
    partial.replace(target)
    return target


def build_wheel(out_dir: Path) -> Path:
    """Write ``gs_contract-<version>-py3-none-any.whl`` into ``out_dir``; return its path."""
    version = contract_version()
    return write_zip(out_dir / wheel_filename(version), wheel_members(version))


def extension_members(source_dir: Path = SOURCE_DIR) -> list[tuple[str, Path]]:
    """``(name in zip, file on disk)`` pairs, sorted by name: the manifest and every module
    of the add-on package, subpackages included (``core/scenario_builder.py``)."""
    members = [(p.relative_to(source_dir).as_posix(), p) for p in python_modules(source_dir)]
    members.append((MANIFEST.name, MANIFEST))
    return sorted(members)


def build(out_dir: Path) -> Path:
    """Write the wheel and the extension zip into ``out_dir``; return the zip's path."""
    text = MANIFEST.read_text(encoding="utf-8")
    ext_id = manifest_field(text, "id")
    version = manifest_field(text, "version")
    wheel = build_wheel(out_dir)
    listed = f"./{WHEELS_FOLDER}/{wheel.name}"
    if manifest_wheels(text) != [listed]:
        raise SystemExit(f"{MANIFEST}: wheels must be [\"{listed}\"] (the gs_contract wheel "
                         f"of this checkout), found {manifest_wheels(text)}")
    members = [(name, path.read_bytes()) for name, path in extension_members()]
    members.append((f"{WHEELS_FOLDER}/{wheel.name}", wheel.read_bytes()))
    return write_zip(out_dir / f"{ext_id}-{version}.zip", sorted(members))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist",
                        help="folder to write into (default: dist/)")
    parser.add_argument("--wheel", action="store_true",
                        help="build only the gs_contract wheel and print its path")
    args = parser.parse_args(argv)
    print(build_wheel(args.out) if args.wheel else build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
