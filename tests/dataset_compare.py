"""Comparing two rendered dataset folders file by file (for the multi-writer tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dataset_files(out: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file a user sees in a dataset folder (everything
    but the hidden bookkeeping ``.gs-render/``). ``data.yaml`` names its own folder, so
    that line is neutralised."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_dir() or rel.startswith(".gs-render/"):
            continue
        data = path.read_bytes()
        if rel == "data.yaml":
            data = data.replace(str(out.resolve()).encode(), b"OUT")
        files[rel] = data
    return files


def assert_same_dataset(reference: Path, out: Path) -> None:
    """``out`` holds exactly ``reference``'s files, byte for byte, and no temp file."""
    want, got = dataset_files(reference), dataset_files(out)
    assert sorted(got) == sorted(want), sorted(set(got) ^ set(want))
    for rel, data in want.items():
        assert got[rel] == data, rel
    assert not list(out.rglob("*.tmp")) and not (out / ".gs-render.lock").exists()


def start_render(scenario: Path, out: Path, *extra: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """``gs-backend render`` in a new process (quiet; stderr captured)."""
    return subprocess.Popen(
        [sys.executable, "-m", "gs_backend", "render", str(scenario), "--out", str(out),
         "--progress", "none", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
