"""Pose matrices with known rotation, scale and translation, for the pose tests."""

from __future__ import annotations

import math

import numpy as np

FIELD = "frames[3].poses.driver"
SOURCE = "scenes/demo.json"


def axis_angle(axis: list[float], degrees: float) -> np.ndarray:
    """``[3, 3]`` rotation by ``degrees`` about ``axis`` (Rodrigues' formula)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = math.radians(degrees)
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * k @ k


def pose_matrix(scale: float, rotation: np.ndarray, translation: list[float]) -> np.ndarray:
    """``[4, 4]`` x -> scale * rotation @ x + translation."""
    m = np.eye(4)
    m[:3, :3] = scale * rotation
    m[:3, 3] = translation
    return m
