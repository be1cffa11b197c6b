"""gs_backend: render gs-scenario files into labelled datasets (images, masks, YOLO, COCO).

The backend never imports Blender modules; the scenario file is its only contract
with the Blender add-on.
"""

from gs_backend.gaussians import SH_C0, Gaussians
from gs_contract.errors import InputError, PoseError

__version__ = "0.1.0"

__all__ = ["SH_C0", "Gaussians", "InputError", "PoseError", "__version__"]
