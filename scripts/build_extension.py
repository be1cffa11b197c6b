"""Build the Blender extension zip: ``dist/gs_dataset_studio-<version>.zip``.

The zip holds ``blender_manifest.toml`` and the add-on's Python package
(``blender_addon/**/*.py``, subfolders included) at its root, which is the layout
Blender's extension installer expects. The build is deterministic: members are sorted and carry a
fixed timestamp and permissions, so the same sources give byte-identical zips.

Usage::

    python scripts/build_extension.py [--out DIR]

Runs with any Python 3.10+ (only the standard library is used). Prints the path
of the zip it wrote.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "blender_manifest.toml"
SOURCE_DIR = ROOT / "blender_addon"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can store
FILE_MODE = 0o644 << 16  # -rw-r--r--, in the zip's external attributes


def manifest_field(text: str, key: str) -> str:
    """The string value of a top-level ``key = "value"`` line of the manifest."""
    match = re.search(rf'^{re.escape(key)}\s*=\s*"([^"]*)"', text, flags=re.MULTILINE)
    if match is None:
        raise SystemExit(f"{MANIFEST}: no top-level {key!r} string field")
    return match.group(1)


def extension_members(source_dir: Path = SOURCE_DIR) -> list[tuple[str, Path]]:
    """``(name in zip, file on disk)`` pairs, sorted by name: the manifest and every module
    of the package, subpackages included (``core/scenario_builder.py``)."""
    modules = sorted(p for p in source_dir.rglob("*.py")
                     if p.is_file() and "__pycache__" not in p.parts)
    if not (source_dir / "__init__.py").is_file():
        raise SystemExit(f"{source_dir}: no __init__.py, not an add-on package")
    members = [(p.relative_to(source_dir).as_posix(), p) for p in modules]
    members.append((MANIFEST.name, MANIFEST))
    return sorted(members)


def build(out_dir: Path) -> Path:
    """Write the zip into ``out_dir`` and return its path."""
    text = MANIFEST.read_text(encoding="utf-8")
    ext_id = manifest_field(text, "id")
    version = manifest_field(text, "version")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{ext_id}-{version}.zip"
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in extension_members():
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = FILE_MODE
            info.create_system = 3  # Unix, so the mode above is honoured
            archive.writestr(info, path.read_bytes())
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist",
                        help="folder to write the zip into (default: dist/)")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
