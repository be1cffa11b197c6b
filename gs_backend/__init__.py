"""gs_backend: render gs-scenario files into labelled datasets (images, masks, YOLO, COCO).

The backend never imports Blender modules; the scenario file is its only contract
with the Blender add-on.
"""

from typing import Any

from gs_contract.errors import InputError, PoseError

__version__ = "0.1.0"

__all__ = ["SH_C0", "Gaussians", "InputError", "PoseError", "__version__"]


def __getattr__(name: str) -> Any:
    """``Gaussians`` and ``SH_C0`` import torch on first use, not with the package: the
    command line installs its Ctrl-C handler before torch loads (gs_backend.interrupt)."""
    if name in ("SH_C0", "Gaussians"):
        from gs_backend import gaussians

        return getattr(gaussians, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
