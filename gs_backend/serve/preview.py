"""One frame of a scenario as a PNG: the sidecar's preview (DESIGN contract 10).

The picture comes from the code ``gs-backend render`` runs for that frame: the scenario
parsed by :func:`gs_contract.scenario.parse_scenario`, assets prepared by
:func:`gs_backend.frame_renderer.prepare_asset` (here through the :class:`AssetCache`),
:meth:`FrameRenderer.render`, then :func:`gs_backend.dataset.frame_outputs.encode_rgb`.
So with no overlay and scale 1 the PNG is, pixel for pixel, the image the dataset gets
(for a scenario writing JPEG, the pixels before JPEG compression).

``scale`` < 1 renders the same camera into a smaller image
(:func:`gs_contract.sidecar.scaled_size`, :func:`gs_contract.sidecar.scaled_intrinsics`);
``overlay`` draws what the dataset's labels would hold for that (scaled) render: visible-
mask outlines, boxes and class names, as the contact sheet draws them.

Posed objects are cached across previews: the objects posed for the last preview are kept
(keyed by the asset's cache key and the pose), so previewing the same frame again, or a
frame where only some objects moved, poses only what changed.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from gs_backend.contact_sheet import draw_annotations
from gs_backend.dataset.frame_outputs import encode_rgb, frame_labels, to_uint8_rgb
from gs_backend.frame_renderer import FrameRenderer, PreparedAsset
from gs_backend.gaussians import Gaussians
from gs_backend.raster import RasterBackend
from gs_backend.serve.asset_cache import AssetCache, AssetKey
from gs_contract.camera import PinholeCamera
from gs_contract.errors import InputError
from gs_contract.pose import Similarity
from gs_contract.scenario import FrameSpec, Scenario, check_frame_memory, parse_scenario
from gs_contract.sidecar import PreviewRequest, scaled_intrinsics, scaled_size

PREVIEW_SOURCE_NAME = "preview-request.json"
"""The scenario of a preview request has no file; messages name it relative to base_dir
under this name (errors report the JSON path inside ``scenario``)."""


class RequestError(Exception):
    """A bad request: the message and the request's JSON field at fault (or None)."""

    def __init__(self, message: str, field: str | None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class PreviewResult:
    """A preview: the PNG bytes, the frame's name, the image size and the seconds the
    render took (parse to PNG)."""

    png: bytes
    frame: str
    width: int
    height: int
    seconds: float


class PreviewService:
    """Renders previews, one at a time (the device is shared), with the caches.

    The server renders on one dedicated thread (:meth:`submit`): torch's CPU kernels keep
    a pool of worker threads per calling thread, and calling from a new thread each time
    (a web framework's thread pool) made a warm preview 10x slower.

    Args:
        cache: the asset cache (also where assets go to the device).
        backend: the rasterizer backend, as for ``render --rasterizer``.
    """

    def __init__(self, cache: AssetCache, backend: RasterBackend = "auto") -> None:
        self.cache = cache
        self.backend = backend
        self._posed: dict[tuple[AssetKey, bytes], Gaussians] = {}
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="gs-preview")

    def submit(self, request: PreviewRequest) -> Future[PreviewResult]:
        """:meth:`preview` on the service's own rendering thread."""
        return self._thread.submit(self.preview, request)

    def preview(self, request: PreviewRequest) -> PreviewResult:
        """Render the request's frame to PNG.

        Raises:
            RequestError: a bad scenario, frame, base_dir or asset, naming the field.
        """
        with self._lock:
            t0 = time.perf_counter()
            scenario = parse_request_scenario(request)
            frame = select_frame(scenario, request.frame)
            frame = scaled_frame(frame, request.scale)
            try:
                check_frame_memory(scenario)
                assets, keys = self._assets(scenario, frame)
            except InputError as exc:
                raise _request_error(exc, scenario.path) from None
            renderer = _CachedPoseRenderer(scenario, assets, self.cache.device, self.backend,
                                           keys, self._posed)
            images = renderer.render(frame)
            self._posed = renderer.used  # keep what this frame posed, drop the rest
            if request.overlay:
                png = overlay_png(scenario, frame, images.rgb, images.weights)
            else:
                png = encode_rgb(images.rgb, "png")
            seconds = time.perf_counter() - t0
        return PreviewResult(png, frame.name, frame.camera.width, frame.camera.height, seconds)

    def _assets(self, scenario: Scenario, frame: FrameSpec
                ) -> tuple[dict[str, PreparedAsset], dict[str, AssetKey]]:
        """The prepared assets of the objects posed in ``frame``, and their cache keys."""
        used = sorted({scenario.objects[name].asset for name in frame.poses})
        assets: dict[str, PreparedAsset] = {}
        keys: dict[str, AssetKey] = {}
        for name in used:
            keys[name], assets[name] = self.cache.get(scenario, name)
        return assets, keys


class _CachedPoseRenderer(FrameRenderer):
    """A FrameRenderer whose posed objects come from (and go to) a cache shared across
    previews, keyed by (asset cache key, pose matrix bytes)."""

    def __init__(self, scenario: Scenario, assets: dict[str, PreparedAsset],
                 device: torch.device, backend: RasterBackend, keys: dict[str, AssetKey],
                 previous: dict[tuple[AssetKey, bytes], Gaussians]) -> None:
        super().__init__(scenario, assets, device, backend)
        self._keys = keys
        self._previous = previous
        self.used: dict[tuple[AssetKey, bytes], Gaussians] = {}

    def posed(self, object_name: str, pose: Similarity) -> Gaussians:
        key = (self._keys[self.scenario.objects[object_name].asset], pose.matrix().tobytes())
        posed = self._previous.get(key)
        if posed is None:
            posed = self.used.get(key)
        if posed is None:
            posed = super().posed(object_name, pose)
        self.used[key] = posed
        return posed


def parse_request_scenario(request: PreviewRequest) -> Scenario:
    """The request's scenario, parsed as ``render`` parses a file in ``base_dir``.

    Raises:
        RequestError: ``base_dir`` not an absolute folder, a relative asset path without
            ``base_dir``, or any scenario rule broken (field ``scenario.<json path>``).
    """
    if request.base_dir is None:
        _require_absolute_paths(request.scenario)
        base = Path("/")
    else:
        base = Path(request.base_dir)
        if not base.is_absolute():
            raise RequestError(f"base_dir must be an absolute path, got {request.base_dir!r}",
                               "base_dir")
        if not base.is_dir():
            raise RequestError(f"base_dir {request.base_dir!r} is not a folder on the "
                               "sidecar's machine", "base_dir")
    path = base / PREVIEW_SOURCE_NAME
    try:
        return parse_scenario(request.scenario, path)
    except InputError as exc:
        raise _request_error(exc, path.resolve()) from None
    except RecursionError:
        raise RequestError("the scenario is nested too deeply", "scenario") from None


def _require_absolute_paths(raw: dict[str, Any]) -> None:
    assets = raw.get("assets")
    if not isinstance(assets, dict):
        return  # the parser names what is wrong
    for name, spec in assets.items():
        if not isinstance(spec, dict):
            continue
        for key in ("ply", "keep"):
            value = spec.get(key)
            if isinstance(value, str) and not Path(value).is_absolute():
                raise RequestError(f"relative path {value!r} needs base_dir (the folder it "
                                   "is relative to)", f"scenario.assets.{name}.{key}")


def select_frame(scenario: Scenario, frame: int | str) -> FrameSpec:
    """The frame at position ``frame`` (0-based) or named ``frame``.

    Raises:
        RequestError: no such frame (field ``frame``).
    """
    if isinstance(frame, int):
        if frame >= len(scenario.frames):
            raise RequestError(f"frame {frame} is out of range: the scenario has "
                               f"{len(scenario.frames)} frames", "frame")
        return scenario.frames[frame]
    for spec in scenario.frames:
        if spec.name == frame:
            return spec
    raise RequestError(f"no frame named {frame!r} in the scenario", "frame")


def scaled_frame(frame: FrameSpec, scale: float) -> FrameSpec:
    """``frame`` with its camera rendering ``scale`` times smaller (same rays)."""
    cam = frame.camera
    width, height = scaled_size(cam.width, cam.height, scale)
    if (width, height) == (cam.width, cam.height):
        return frame
    K = scaled_intrinsics(cam.K, cam.width, cam.height, width, height)
    return dataclasses.replace(
        frame, camera=PinholeCamera(width, height, K, cam.world_to_camera))


def overlay_png(scenario: Scenario, frame: FrameSpec, rgb: np.ndarray,
                weights: np.ndarray) -> bytes:
    """The frame's image with the labels the dataset would hold drawn on it (PNG).

    Args:
        rgb: ``[H, W, 3]`` float rendered colour; weights: ``[H, W, K]`` instance weights.
    """
    labels = frame_labels(scenario, frame, weights)
    image = np.ascontiguousarray(to_uint8_rgb(rgb)[..., ::-1])  # BGR for OpenCV
    draw_annotations(image, labels.instance_map, [entry for _, entry in labels.instances], 1.0)
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV could not encode the preview")
    return buf.tobytes()


def _request_error(exc: InputError, scenario_path: Path) -> RequestError:
    """An InputError of the request's scenario as a RequestError: a field inside the
    scenario becomes ``scenario.<field>``; a problem in another file (an asset) keeps its
    message, which names the file, with field ``scenario``."""
    if Path(exc.source) == scenario_path:
        field = f"scenario.{exc.field}" if exc.field else "scenario"
        where = f"{field}: " if exc.field else ""
        return RequestError(f"{where}{exc.problem}", field)
    return RequestError(exc.message, "scenario")
