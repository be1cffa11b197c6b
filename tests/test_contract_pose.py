"""gs_contract.pose: the similarity check, validated once at scenario read (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gs_contract.errors import PoseError
from gs_contract.pose import ANISOTROPY_TOLERANCE, similarity_from_matrix
from tests.pose_helpers import FIELD, SOURCE, axis_angle, pose_matrix

# ---- parsing and refusal -------------------------------------------------------


def test_similarity_round_trips_through_its_matrix() -> None:
    rotation = axis_angle([1, 2, 3], 37)
    m = pose_matrix(2.5, rotation, [1.0, -2.0, 0.5])
    pose = similarity_from_matrix(m.tolist(), source=SOURCE, field=FIELD)
    assert pose.scale == pytest.approx(2.5, abs=1e-12)
    assert np.allclose(pose.rotation, rotation, atol=1e-12)
    assert np.allclose(pose.translation, [1.0, -2.0, 0.5])
    assert np.allclose(pose.matrix(), m, atol=1e-12)
    # numpy arrays (float64, float32) give the same result as nested lists
    for same in (m, m.astype(np.float32)):
        other = similarity_from_matrix(same, source=SOURCE, field=FIELD)
        assert np.allclose(other.matrix(), m, atol=1e-5)


def test_float32_noisy_pose_is_accepted_and_reorthonormalised() -> None:
    rotation = axis_angle([0.2, -1, 0.7], 123)
    m32 = pose_matrix(0.8, rotation, [0.1, 0.2, 0.3]).astype(np.float32)
    m32[:3, :3] += np.random.default_rng(0).normal(0, 1e-7, (3, 3)).astype(np.float32)
    pose = similarity_from_matrix(m32.tolist(), source=SOURCE, field=FIELD)
    r = pose.rotation
    assert np.abs(r.T @ r - np.eye(3)).max() < 1e-13
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-13)
    assert np.abs(r - rotation).max() < 1e-5
    assert pose.scale == pytest.approx(0.8, rel=1e-5)


def expected_anisotropy(linear: np.ndarray) -> float:
    sigma = np.linalg.svd(linear, compute_uv=False)
    return sigma[0] / sigma[-1] - 1


@pytest.mark.parametrize(
    "linear",
    [
        np.diag([1.0, 1.0, 1.25]) @ axis_angle([1, 1, 0], 30),  # non-uniform scale
        np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),  # shear
        np.diag([1.0, 1.0, 1.001]),  # small but above tolerance
    ],
    ids=["non_uniform", "shear", "slight"],
)
def test_shear_and_non_uniform_scale_are_refused_with_anisotropy(linear: np.ndarray) -> None:
    m = np.eye(4)
    m[:3, :3] = linear
    with pytest.raises(PoseError) as caught:
        similarity_from_matrix(m.tolist(), source=SOURCE, field=FIELD)
    error = caught.value
    anisotropy = expected_anisotropy(linear)
    assert error.anisotropy == pytest.approx(anisotropy, rel=1e-9)
    assert FIELD in str(error) and SOURCE in str(error)
    assert f"anisotropy {anisotropy:.3g}" in str(error)


def test_anisotropy_message_example() -> None:
    m = np.diag([1.0, 1.25, 1.0, 1.0])
    with pytest.raises(PoseError, match=r"anisotropy 0\.25 \(shear or non-uniform scale\)"):
        similarity_from_matrix(m, source=SOURCE, field=FIELD)


@pytest.mark.parametrize(
    "linear",
    [-2.0 * np.eye(3), np.diag([1.0, 1.0, -1.0]) @ axis_angle([0, 1, 1], 50)],
    ids=["negative_scale", "mirror"],
)
def test_mirror_and_negative_scale_are_refused(linear: np.ndarray) -> None:
    m = np.eye(4)
    m[:3, :3] = linear
    with pytest.raises(PoseError, match="negative determinant") as caught:
        similarity_from_matrix(m, source=SOURCE, field=FIELD)
    assert FIELD in str(caught.value)


@pytest.mark.parametrize(
    ("matrix", "problem"),
    [
        (np.eye(3), "4x4"),
        ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], "4x4"),
        ([[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "4x4"),
        ([["a", 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "4x4"),
        (np.eye(4).astype(str), "numbers"),
        (np.eye(4, dtype=bool), "numbers"),
        ([[10**400, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "numbers"),
        (np.diag([1.0, math.nan, 1.0, 1.0]), r"non-finite entries at \[1\]\[1\]"),
        ([[1, 0, 0, math.inf], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "non-finite"),
        ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0.5, 0, 1]], "last row"),
        (np.diag([1.0, 1.0, 1.0, 2.0]), "last row"),
        (np.diag([0.0, 0.0, 0.0, 1.0]), "zero scale"),
        (np.diag([1.0, 1.0, 0.0, 1.0]), "zero scale"),
    ],
    ids=[
        "3x3", "3x4", "ragged", "text", "numeric_strings", "booleans", "huge", "nan", "inf",
        "projective", "w2",
        "zero", "flattened",
    ],
)  # fmt: skip
def test_malformed_matrices_are_refused(matrix: object, problem: str) -> None:
    with pytest.raises(PoseError, match=problem) as caught:
        similarity_from_matrix(matrix, source=SOURCE, field=FIELD)
    assert str(caught.value).startswith(f"{SOURCE}: {FIELD}: ")


def test_tolerance_is_the_boundary() -> None:
    """Anisotropy just under the tolerance passes (and is snapped to the nearest
    similarity); just over it is refused."""
    under, over = np.eye(4), np.eye(4)
    under[2, 2] = 1.0 + 0.5 * ANISOTROPY_TOLERANCE
    over[2, 2] = 1.0 + 2.0 * ANISOTROPY_TOLERANCE
    pose = similarity_from_matrix(under, source=SOURCE, field=FIELD)
    assert np.allclose(pose.rotation, np.eye(3), atol=1e-15)
    with pytest.raises(PoseError):
        similarity_from_matrix(over, source=SOURCE, field=FIELD)
