"""Shared pytest setup.

The Blender-side tests (tests/blender/) need the bpy module and run in
`.venv-blender`; the backend venv has no bpy, so it does not collect them.
"""

from __future__ import annotations

import importlib.util

collect_ignore: list[str] = []
if importlib.util.find_spec("bpy") is None:
    collect_ignore.append("blender")
