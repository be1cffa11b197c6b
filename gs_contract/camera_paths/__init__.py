"""Camera paths from common capture tools: one :class:`RegisteredImage` (size, pinhole
``K``, OpenCV ``world_to_camera``) per solved image of a COLMAP model (text or binary)
or a nerfstudio ``transforms.json``, sorted by image name.

Pure (numpy and the standard library), so the backend's ``gs-backend camera-path`` and the
Blender add-on read these files with the same code. docs/replay.md says what is assumed.
"""

from gs_contract.camera_paths.colmap import (
    CAMERA_MODELS,
    find_colmap_model,
    read_colmap_model,
)
from gs_contract.camera_paths.model import (
    QUATERNION_NORM_TOLERANCE,
    RegisteredImage,
    name_filter,
)
from gs_contract.camera_paths.nerfstudio import (
    World,
    read_dataparser_transforms,
    read_transforms_json,
)

__all__ = [
    "CAMERA_MODELS", "QUATERNION_NORM_TOLERANCE", "RegisteredImage", "World",
    "find_colmap_model", "name_filter", "read_colmap_model", "read_dataparser_transforms",
    "read_transforms_json",
]
