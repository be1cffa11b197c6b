"""Where the Blender-side tests find the checkout and the backend's Python."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"  # the backend venv (`make setup`)
