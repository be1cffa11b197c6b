"""What the camera-path readers return, and the rules they share.

A :class:`RegisteredImage` is one image of a capture whose camera a structure-from-motion
tool (COLMAP) or a training tool (nerfstudio) has solved: its pixel size, pinhole
intrinsics ``K`` in the scenario's convention (DESIGN contract 2: (0, 0) at the top-left
corner of the top-left pixel, pixel centres at +0.5, which is also COLMAP's and
nerfstudio's) and ``world_to_camera`` in OpenCV axes (x right, y down, z forward).

Shared rules: quaternion -> rotation (with the check that it is one), the lens-distortion
policy (a perspective model with non-zero distortion coefficients is refused unless the
caller accepts to drop them), and the image filter.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from gs_contract.camera import PinholeCamera
from gs_contract.errors import InputError
from gs_contract.scenario.schema import MAX_IMAGE_SIDE

# |1 - |q|| up to which a stored quaternion counts as a rotation (then normalised): text
# files written with 6 significant digits are off by about 1e-6.
QUATERNION_NORM_TOLERANCE = 1e-3

ImageFilter = Callable[[str], bool]


@dataclass(frozen=True)
class RegisteredImage:
    """One solved image.

    Attributes:
        name: the image's name as the source stores it (COLMAP: relative to its image
            folder, e.g. ``frame_0001.jpg`` or ``cam0/0001.png``; nerfstudio: the frame's
            ``file_path`` without a leading ``./``).
        width, height: image size in pixels.
        K: ``[3, 3]`` float64 pinhole intrinsics (pixels).
        world_to_camera: ``[4, 4]`` float64 rigid transform, OpenCV camera axes.
        camera_model: the source's camera model name (``PINHOLE``, ``OPENCV``, ...).
        dropped_distortion: the non-zero distortion coefficients that were dropped (only
            when the reader was told to keep the pinhole part of a distorted camera);
            ``{}`` otherwise.
    """

    name: str
    width: int
    height: int
    K: np.ndarray
    world_to_camera: np.ndarray
    camera_model: str
    dropped_distortion: dict[str, float]

    @property
    def frame_name(self) -> str:
        """The scenario frame name: the image's file name without its extension."""
        return PurePosixPath(self.name.replace("\\", "/")).stem

    def camera(self) -> PinholeCamera:
        return PinholeCamera(self.width, self.height, self.K, self.world_to_camera)


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` as ``[3, 3]`` float64."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def rotation_from_quaternion(q: Sequence[float], *, source: str | Path,
                             field: str) -> np.ndarray:
    """``[3, 3]`` rotation of a Hamilton quaternion ``(w, x, y, z)`` (COLMAP's, Eigen's).

    Raises:
        InputError: naming ``source`` and ``field`` when ``q`` is not finite or its norm
            differs from 1 by more than :data:`QUATERNION_NORM_TOLERANCE`.
    """
    q = np.asarray(q, dtype=np.float64)
    norm = float(np.linalg.norm(q)) if np.isfinite(q).all() else math.nan
    if not abs(norm - 1.0) <= QUATERNION_NORM_TOLERANCE:
        raise InputError(source, field, f"quaternion {q.tolist()} is not a rotation "
                                        f"(norm {norm:.6g}, expected 1)")
    w, x, y, z = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rigid(rotation: np.ndarray, translation: Sequence[float]) -> np.ndarray:
    """``[4, 4]`` from a ``[3, 3]`` rotation and a ``[3]`` translation."""
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = translation
    return m


def inverse_rigid(m: np.ndarray) -> np.ndarray:
    """Inverse of a ``[4, 4]`` rigid transform (R^T, -R^T t)."""
    r = m[:3, :3]
    return rigid(r.T, -r.T @ m[:3, 3])


def distortion_to_drop(coefficients: dict[str, float], *, model: str, ignore: bool,
                       source: str | Path, field: str) -> dict[str, float]:
    """Apply the distortion policy to a perspective camera's coefficients.

    All zero: nothing to drop (``{}``). Otherwise refused, unless ``ignore``: then the
    non-zero ones are returned, to be reported as dropped.

    Raises:
        InputError: naming ``source`` and ``field``, the model and the coefficients.
    """
    nonzero = {k: v for k, v in coefficients.items() if v != 0.0}
    if nonzero and not ignore:
        listed = ", ".join(f"{k}={v:.6g}" for k, v in nonzero.items())
        raise InputError(source, field, f"{model} camera with lens distortion ({listed}); the "
                                        "scenario's camera is a pinhole: undistort the images "
                                        "first (e.g. colmap image_undistorter), or pass "
                                        "--ignore-distortion to keep the pinhole part")
    return nonzero


def name_filter(pattern: str | None) -> ImageFilter | None:
    """An image filter for a glob pattern (``fnmatch``, case-sensitive), matched against
    the whole image name and against its last path part; None for no pattern."""
    if pattern is None:
        return None

    def keep(name: str) -> bool:
        posix = name.replace("\\", "/")
        return fnmatch.fnmatchcase(posix, pattern) or \
            fnmatch.fnmatchcase(PurePosixPath(posix).name, pattern)

    return keep


def check_size(width: int, height: int, *, source: str | Path, field: str) -> None:
    """Refuse an image size outside ``1 .. MAX_IMAGE_SIDE`` pixels."""
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise InputError(source, field, f"image size must be 1 to {MAX_IMAGE_SIDE} pixels a "
                                        f"side, got {width} x {height}")


def sorted_images(images: list[RegisteredImage]) -> list[RegisteredImage]:
    """Images sorted by name (code-point order), as nerfstudio orders its frames."""
    return sorted(images, key=lambda image: image.name)
