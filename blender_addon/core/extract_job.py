"""Extracting an instrument from a capture with ``gs-backend extract`` (no bpy here).

The Blender operator (:mod:`..blender.extract_job`) gathers the proxy and the crop
empties; everything that needs no Blender lives here:

- :func:`capture_from_volume`: where a crop empty lies in the capture's (PLY)
  coordinates, and :data:`EMPTY_SHAPES`, which empty display type is which volume;
- :func:`write_crop_file`: the ``gs-crop`` v1 file (built and checked by
  ``gs_contract.crop``, the backend's own reader);
- :func:`extract_argv`: ``PREFIX extract CAPTURE --out TOOL.ply --keep-out KEEP.npy
  --json [--crop CROP.json] [--no-auto]``;
- :class:`ExtractProcess`: the child process (the render's process handling, see
  :class:`.backend_process.BackendJob`), whose stdout is one JSON report;
- :func:`parse_report`, :func:`read_keep`: the report and ``KEEP.npy``, checked;
- :func:`vertices_to_delete`: which proxy vertices a keep list removes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gs_contract.crop import CropMode as Mode
from gs_contract.crop import VolumeShape as Shape
from gs_contract.crop import crop_document, save_crop
from gs_contract.errors import InputError

from .backend_process import BackendJob, backend_argv, backend_env

# Files in the extraction's temporary folder.
CROP_NAME, TOOL_NAME, KEEP_NAME = "crop.json", "tool.ply", "keep.npy"

# Blender empty display type -> crop volume. Each volume is the unit shape of its own
# coordinates (box |x|,|y|,|z| <= 1; sphere r <= 1; cylinder x^2 + y^2 <= 1, |z| <= 1),
# which is exactly what the empty draws at display size 1 (a Cube empty spans -1..1).
EMPTY_SHAPES: dict[str, Shape] = {"CUBE": "box", "SPHERE": "sphere", "CIRCLE": "cylinder"}

# Volume coordinates -> the empty's local coordinates (before the display size), per
# shape. Blender draws a Circle empty in its local XZ plane, so the cylinder's axis (the
# volume's z) is the empty's local Y: a +90 degree rotation about X (z -> -y, y -> z).
_EMPTY_FROM_VOLUME: dict[Shape, np.ndarray] = {
    "box": np.eye(4),
    "sphere": np.eye(4),
    "cylinder": np.array([[1.0, 0.0, 0.0, 0.0],
                          [0.0, 0.0, -1.0, 0.0],
                          [0.0, 1.0, 0.0, 0.0],
                          [0.0, 0.0, 0.0, 1.0]]),
}
# A matrix with a condition number this large (a zero scale: infinite) is not invertible.
# Any size is fine: SfM captures come in any units.
_ILL_CONDITIONED = 1e12


class ExtractError(Exception):
    """The extraction cannot start, or its result cannot be used (one plain line)."""


@dataclass(frozen=True)
class CropVolume:
    """One crop volume of the ``gs-crop`` file.

    Attributes:
        shape: the unit shape in the volume's own coordinates.
        mode: ``keep`` or ``remove``.
        capture_from_volume: ``[4, 4]`` float64 row-major affine matrix, volume
            coordinates -> capture (PLY) coordinates.
        name: where it comes from (a Blender empty's name), for messages.
    """

    shape: Shape
    mode: Mode
    capture_from_volume: np.ndarray
    name: str = ""


def capture_from_volume(world_from_capture: Any, world_from_empty: Any, display_size: float,
                        shape: Shape, name: str = "") -> np.ndarray:
    """``[4, 4]`` float64: the volume drawn by an empty, in the capture's coordinates.

    ``inverse(world_from_capture) @ world_from_empty @ scale(display_size) @
    empty_from_volume(shape)``: the proxy's world matrix maps PLY coordinates to world
    (the import never bakes an axis change into the data), the empty's world matrix
    (rotation, non-uniform scale, parents) and display size give the shape the
    viewport draws.

    Args:
        world_from_capture: ``[4, 4]`` the proxy object's ``matrix_world``.
        world_from_empty: ``[4, 4]`` the empty's ``matrix_world``.
        display_size: the empty's ``empty_display_size`` (> 0).
        shape: the volume (see :data:`_EMPTY_FROM_VOLUME` for the cylinder's axis).
        name: the empty's name, for the error message.

    Raises:
        ExtractError: a matrix is not finite or not invertible, or the size is not > 0.
    """
    proxy = np.asarray(world_from_capture, dtype=np.float64).reshape(4, 4)
    empty = np.asarray(world_from_empty, dtype=np.float64).reshape(4, 4)
    size = float(display_size)
    if not (math.isfinite(size) and size > 0.0):
        raise ExtractError(f"crop empty {name!r}: its display size must be > 0")
    for matrix, what in ((proxy, "the splat object's transform"),
                         (empty, f"crop empty {name!r}'s transform")):
        if not np.isfinite(matrix).all() or not np.linalg.cond(matrix[:3, :3]) < _ILL_CONDITIONED:
            raise ExtractError(f"{what} is not invertible (a zero scale?)")
    sized = np.diag([size, size, size, 1.0])
    return np.linalg.inv(proxy) @ empty @ sized @ _EMPTY_FROM_VOLUME[shape]


def write_crop_file(path: str | os.PathLike[str], volumes: Sequence[CropVolume]) -> Path:
    """Write the ``gs-crop`` v1 file of ``volumes`` to ``path`` atomically.

    Raises:
        ExtractError: a volume the backend's reader would refuse (named by its empty).
    """
    path = Path(path)
    try:
        document = crop_document([(v.shape, v.mode, v.capture_from_volume) for v in volumes])
    except InputError as exc:
        index = next((i for i in range(len(volumes)) if f"volumes[{i}]" in exc.message), None)
        name = f"crop empty {volumes[index].name!r}: " if index is not None else ""
        raise ExtractError(f"{name}{exc.problem}") from None
    save_crop(path, document)
    return path


def extract_argv(prefix: Sequence[str], capture: str | os.PathLike[str],
                 out: str | os.PathLike[str], keep_out: str | os.PathLike[str], *,
                 crop: str | os.PathLike[str] | None = None, auto: bool = True) -> list[str]:
    """``PREFIX extract CAPTURE --out TOOL.ply --keep-out KEEP.npy --json
    [--crop CROP.json] [--no-auto]``."""
    argv = [*prefix, "extract", str(capture), "--out", str(out), "--keep-out", str(keep_out),
            "--json"]
    if crop is not None:
        argv += ["--crop", str(crop)]
    if not auto:
        argv.append("--no-auto")
    return argv


# ---------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class StageSummary:
    """One stage of the report: its name and how many rows it removed."""

    name: str
    removed: int


@dataclass(frozen=True)
class ExtractReport:
    """The fields of ``gs-backend extract --json`` the add-on uses.

    ``rows``: Gaussians in the capture; ``kept``: rows in ``KEEP.npy``; ``stages``: what
    each stage removed, in order.
    """

    rows: int
    kept: int
    stages: tuple[StageSummary, ...]

    def summary(self) -> str:
        """``kept K of N Gaussians (stages: crop -R, ...)``, one line for the UI."""
        stages = ", ".join(f"{s.name} -{s.removed:,}" for s in self.stages) or "none"
        return f"kept {self.kept:,} of {self.rows:,} Gaussians (stages: {stages})"


def _count(report: dict[str, Any], key: str, where: str) -> int:
    value = report.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExtractError(f"{where}: {key!r} is not a count: {value!r}")
    return value


def parse_report(text: str) -> ExtractReport:
    """Read the JSON object ``gs-backend extract --json`` printed on stdout.

    Raises:
        ExtractError: not one JSON object, or a field the add-on needs is missing or of
            the wrong type (``rows``, ``kept``, ``stages[i].name|removed``).
    """
    where = "the backend's extraction report"
    try:
        report = json.loads(text)
    except ValueError:
        first = text.strip().splitlines()[0][:80] if text.strip() else "nothing"
        raise ExtractError(f"{where} is not JSON (stdout began with {first!r})") from None
    if not isinstance(report, dict):
        raise ExtractError(f"{where} is not a JSON object")
    rows, kept = _count(report, "rows", where), _count(report, "kept", where)
    if kept > rows:
        raise ExtractError(f"{where}: kept {kept} of only {rows} rows")
    stages_in = report.get("stages", [])
    if not isinstance(stages_in, list):
        raise ExtractError(f"{where}: 'stages' is not a list")
    stages = []
    for i, stage in enumerate(stages_in):
        if not isinstance(stage, dict) or not isinstance(stage.get("name"), str):
            raise ExtractError(f"{where}: stages[{i}].name is not a string")
        stages.append(StageSummary(stage["name"], _count(stage, "removed",
                                                         f"{where}: stages[{i}]")))
    return ExtractReport(rows=rows, kept=kept, stages=tuple(stages))


def read_keep(path: str | os.PathLike[str], rows: int) -> np.ndarray:
    """``[K]`` int64 sorted unique row indices in ``[0, rows)`` from a ``KEEP.npy``.

    Raises:
        ExtractError: unreadable, not a 1-D integer array, unsorted or repeated values,
            or an index outside the capture.
    """
    try:
        keep = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ExtractError(f"{path}: cannot read the kept rows: {exc}") from None
    if keep.ndim != 1 or not np.issubdtype(keep.dtype, np.integer):
        raise ExtractError(f"{path}: expected a 1-D integer array, found "
                           f"{keep.dtype} of shape {keep.shape}")
    keep = keep.astype(np.int64, copy=False)
    if keep.size and (keep[0] < 0 or keep[-1] >= rows or np.any(np.diff(keep) <= 0)):
        raise ExtractError(f"{path}: the kept rows must be sorted, unique and in "
                           f"[0, {rows})")
    return keep


def vertices_to_delete(index: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``[M]`` bool: the proxy vertices (``index``: their ``[M]`` ``gs_index``) whose row is
    not in ``keep`` (``[K]`` row indices). What stays is ``keep`` ∩ the vertices there
    are: rows already deleted by hand stay deleted."""
    return ~np.isin(np.asarray(index, dtype=np.int64), np.asarray(keep, dtype=np.int64))


# ---------------------------------------------------------------------------
# the child process


class ExtractProcess(BackendJob):
    """A running ``gs-backend extract`` into a private temporary folder.

    Use :meth:`start_extract`, then :meth:`poll` until ``state.finished``; on success
    ``report`` and ``keep`` hold the checked result. :meth:`cleanup` removes the folder
    (the crop file, ``TOOL.ply``, ``KEEP.npy``) once the result is read.
    """

    def __init__(self, argv: Sequence[str], *, work_dir: Path, rows: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.work_dir = work_dir
        self.expected_rows = rows
        self.report: ExtractReport | None = None
        self.keep: np.ndarray | None = None
        self._stdout_text: list[str] = []
        super().__init__(argv, env=env)

    @classmethod
    def start_extract(cls, command: str | None, capture: str | os.PathLike[str],
                      volumes: Sequence[CropVolume], *, auto: bool = True,
                      rows: int | None = None) -> ExtractProcess:
        """Write the crop file (when there are volumes) and start
        ``command extract capture ...`` (see :func:`.backend_process.backend_argv`).

        ``rows``: the capture's row count as the add-on knows it; a report of another
        count is refused (the file changed since the import).

        Raises:
            BackendError: the backend cannot be started.
            OSError: the temporary folder or the crop file cannot be written.
        """
        prefix = backend_argv(command)
        work_dir = Path(tempfile.mkdtemp(prefix="gsds-extract-"))
        try:
            crop = write_crop_file(work_dir / CROP_NAME, volumes) if volumes else None
            argv = extract_argv(prefix, Path(capture).absolute(), work_dir / TOOL_NAME,
                                work_dir / KEEP_NAME, crop=crop, auto=auto)
            return cls(argv, work_dir=work_dir, rows=rows, env=backend_env())
        except BaseException:
            shutil.rmtree(work_dir, ignore_errors=True)
            raise

    def _stdout_line(self, line: str) -> None:
        self._stdout_text.append(line)

    def _check_result(self) -> str | None:
        """Read and check the report and ``KEEP.npy``; the reason when unusable."""
        try:
            report = parse_report("".join(self._stdout_text))
            if self.expected_rows is not None and report.rows != self.expected_rows:
                raise ExtractError(
                    f"the backend read {report.rows} Gaussians but the splat object was "
                    f"imported with {self.expected_rows}: the file changed since the "
                    "import; import it again")
            keep_path = self.work_dir / KEEP_NAME
            keep = read_keep(keep_path, report.rows)
            if keep.size != report.kept:
                raise ExtractError(f"{keep_path}: {keep.size} rows, the report says "
                                   f"{report.kept}")
        except ExtractError as exc:
            return str(exc)
        self.report, self.keep = report, keep
        return None

    def cleanup(self) -> None:
        """Remove the temporary folder (after the result is read)."""
        shutil.rmtree(self.work_dir, ignore_errors=True)
