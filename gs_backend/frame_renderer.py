"""Turn one scenario frame into images: RGB, instrument weights, depth, amodal alphas.

One rasterization pass per frame renders RGB plus one weight channel per
instrument instance (the Gaussians of all its parts carry 1 in its channel,
everything else 0), so the visible masks come from exactly the same compositing as
the picture (DESIGN contract 3). Amodal masks, when asked for, render each instance
(all its parts present in the frame) alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from gs_backend.gaussians import Gaussians
from gs_backend.io import load_gaussians
from gs_backend.posing import pose_gaussians
from gs_backend.raster import RasterBackend, rasterize
from gs_backend.sh import gaussian_colors
from gs_contract.errors import InputError
from gs_contract.pose import Similarity
from gs_contract.scenario import FrameSpec, Scenario


@dataclass(frozen=True)
class PreparedAsset:
    """An asset loaded, filtered by ``keep``, SH-truncated and moved to the render device."""

    name: str
    gaussians: Gaussians
    file_count: int
    non_finite: int
    format: str


@dataclass(frozen=True)
class FrameImages:
    """Rendered planes of one frame, as CPU numpy arrays (possibly strided views of the
    rasterizer's output).

    Attributes:
        rgb: ``[H, W, 3]`` float32 composited colour (background included), not clipped.
        weights: ``[H, W, K]`` float32 accumulated weight of each instrument instance,
            K = number of instances in the scenario (channel k = instance id k+1).
        alpha: ``[H, W]`` float32 accumulated opacity of everything.
        depth: ``[H, W]`` float32 expected depth (camera z, scene units), or None.
        amodal: instance id -> ``[H, W]`` float32 opacity of that instance (its parts
            present in the frame) rendered alone, for the instances with at least one
            part present (only when asked for).
    """

    rgb: np.ndarray
    weights: np.ndarray
    alpha: np.ndarray
    depth: np.ndarray | None = None
    amodal: dict[int, np.ndarray] = field(default_factory=dict)


def prepare_assets(scenario: Scenario, device: torch.device) -> dict[str, PreparedAsset]:
    """Load every asset the scenario's objects use (:func:`prepare_asset`), by name.

    Raises:
        InputError: an asset file that cannot be read or a ``keep`` out of range.
    """
    used = {o.asset for o in scenario.objects.values()}
    return {name: prepare_asset(scenario, name, device) for name in sorted(used)}


def prepare_asset(scenario: Scenario, name: str, device: torch.device) -> PreparedAsset:
    """Load asset ``name``, apply its ``keep`` and ``render.sh_degree``, move it to ``device``.

    Raises:
        InputError: the asset file cannot be read, or its ``keep`` is out of range.
    """
    spec = scenario.assets[name]
    try:
        loaded = load_gaussians(spec.ply)
    except InputError as exc:  # name the scenario field too
        raise InputError(exc.source, exc.field, f"{exc.problem} (the file of "
                         f"assets.{name}.ply in {scenario.path})") from None
    g = loaded.gaussians
    if spec.keep is not None:
        if spec.keep.size and spec.keep.max() >= loaded.file_count:
            raise InputError(scenario.path, f"assets.{name}.keep",
                             f"index {int(spec.keep.max())} is out of range: "
                             f"{spec.ply.name} holds {loaded.file_count} Gaussians")
        selected = np.isin(loaded.source_index, spec.keep)
        g = g.select(torch.from_numpy(selected))
    if scenario.render.sh_degree is not None:
        g = g.with_sh_degree(scenario.render.sh_degree)
    return PreparedAsset(name, g.to(device), loaded.file_count, loaded.non_finite,
                         loaded.format)


class FrameRenderer:
    """Renders scenario frames; caches posed objects whose pose did not change, and keeps
    the rasterizer's input arrays between frames (only moved objects' rows are copied
    again). Not for concurrent use: one renderer renders one frame at a time.

    Args:
        scenario: the validated scenario.
        assets: from :func:`prepare_assets`, on ``device``.
        device: the torch device to render on.
        backend: rasterizer backend ("auto": gsplat on CUDA, numba on the CPU, torch
            elsewhere; :func:`gs_backend.raster.resolve_backend`).
    """

    def __init__(self, scenario: Scenario, assets: dict[str, PreparedAsset],
                 device: torch.device, backend: RasterBackend = "auto") -> None:
        self.scenario = scenario
        self.assets = assets
        self.device = device
        self.backend = backend
        self.num_instances = len(scenario.instances)
        self._pose_cache: dict[str, tuple[bytes, Gaussians]] = {}
        self._composite: _Composite | None = None

    def posed(self, object_name: str, pose: Similarity) -> Gaussians:
        """The object's Gaussians in world coordinates for this pose (cached by pose)."""
        key = pose.matrix().tobytes()
        hit = self._pose_cache.get(object_name)
        if hit is not None and hit[0] == key:
            return hit[1]
        obj = self.scenario.objects[object_name]
        posed = pose_gaussians(self.assets[obj.asset].gaussians, pose)
        self._pose_cache[object_name] = (key, posed)
        return posed

    def _composite_for(self, posed: dict[str, Gaussians]) -> _Composite:
        """The rasterizer's input arrays for these posed objects (in this order): the
        previous frame's when the same objects are present, with the rows of the objects
        whose posed Gaussians changed copied again; new ones otherwise."""
        names = tuple(posed)
        composite = self._composite
        if composite is None or composite.names != names:
            composite = _Composite.allocate(
                self.scenario, posed, self.num_instances, self.device)
            self._composite = composite
        for name, g in posed.items():
            if composite.sources.get(name) is not g:
                composite.copy_geometry(name, g)
        return composite

    def render(self, frame: FrameSpec) -> FrameImages:
        scenario, out = self.scenario, self.scenario.output
        cam = frame.camera
        viewmat = torch.as_tensor(cam.world_to_camera, dtype=torch.float32, device=self.device)
        K = torch.as_tensor(cam.K, dtype=torch.float32, device=self.device)
        camera_center = torch.as_tensor(
            cam.center, dtype=torch.float32, device=self.device)

        # Per object: its posed Gaussians, written into the frame's composite (reused
        # while the same objects are present; only moved objects are copied again), its
        # colours at its own SH degree (no padding of low-degree assets) straight into the
        # colour columns of the feature array, whose weight channels are set once.
        posed = {name: self.posed(name, frame.similarities[name])
                 for name in scenario.objects if name in frame.poses}
        present_parts: dict[int, list[Gaussians]] = {}
        K_inst = self.num_instances
        for name, g in posed.items():
            instance_id = scenario.objects[name].instance_id
            if instance_id is not None:
                present_parts.setdefault(instance_id, []).append(g)

        bg = torch.zeros(3 + K_inst, dtype=torch.float32, device=self.device)
        bg[:3] = torch.as_tensor(scenario.render.background, dtype=torch.float32)
        if posed:
            composite = self._composite_for(posed)
            for name, g in posed.items():
                gaussian_colors(g.sh, g.means, camera_center,
                                out=composite.features[composite.rows[name], :3])
            result = rasterize(
                composite.means, composite.quats, composite.scales, composite.opacities,
                composite.features, viewmat, K, cam.width, cam.height,
                background=bg, near=scenario.render.near, far=scenario.render.far,
                antialiased=scenario.render.antialiased, with_depth=out.depth,
                backend=self.backend)
            planes = result.colors
            alpha = result.alphas
            depth = result.depth
        else:
            planes = bg.expand(cam.height, cam.width, -1)
            alpha = torch.zeros(cam.height, cam.width, device=self.device)
            depth = torch.zeros_like(alpha) if out.depth else None

        amodal: dict[int, np.ndarray] = {}
        if out.amodal:
            for instance_id, instance_parts in present_parts.items():
                means, quats, scales, opacities = _geometry(instance_parts)
                alone = rasterize(
                    means, quats, scales, opacities,
                    torch.ones(means.shape[0], 1, device=self.device), viewmat, K,
                    cam.width, cam.height, near=scenario.render.near,
                    far=scenario.render.far, antialiased=scenario.render.antialiased,
                    backend=self.backend)
                amodal[instance_id] = _numpy(alone.alphas)

        return FrameImages(
            rgb=_numpy(planes[..., :3]),
            weights=_numpy(planes[..., 3:]),
            alpha=_numpy(alpha),
            depth=None if depth is None else _numpy(depth),
            amodal=amodal,
        )


@dataclass
class _Composite:
    """One frame's rasterizer input: the present objects' Gaussians one after another.

    Attributes:
        names: the objects, in scenario order.
        rows: object name -> its rows.
        means, quats, scales, opacities: ``[N, 3]``, ``[N, 4]``, ``[N, 3]``, ``[N]``.
        features: ``[N, 3 + K]`` float32: colours (written per frame), then one weight
            channel per instrument instance (1 in its own channel, set once).
        sources: object name -> the posed Gaussians its rows hold now.
    """

    names: tuple[str, ...]
    rows: dict[str, slice]
    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    features: Tensor
    sources: dict[str, Gaussians] = field(default_factory=dict)

    @staticmethod
    def allocate(scenario: Scenario, posed: dict[str, Gaussians], num_instances: int,
                 device: torch.device) -> _Composite:
        rows: dict[str, slice] = {}
        n = 0
        for name, g in posed.items():
            rows[name] = slice(n, n + g.count)
            n += g.count
        dtype = next(iter(posed.values())).means.dtype

        def empty(*shape: int) -> Tensor:
            return torch.empty(*shape, dtype=dtype, device=device)

        features = torch.zeros(n, 3 + num_instances, dtype=torch.float32, device=device)
        for name in posed:
            instance_id = scenario.objects[name].instance_id
            if instance_id is not None:
                features[rows[name], 3 + instance_id - 1] = 1.0
        return _Composite(tuple(posed), rows, empty(n, 3), empty(n, 4), empty(n, 3),
                          empty(n), features)

    def copy_geometry(self, name: str, g: Gaussians) -> None:
        """Copy the geometry of ``g`` (object ``name`` posed) into its rows."""
        rows = self.rows[name]
        for dst, src in ((self.means, g.means), (self.quats, g.quats),
                         (self.scales, g.scales), (self.opacities, g.opacities)):
            _copy(dst[rows], src)
        self.sources[name] = g


def _copy(dst: Tensor, src: Tensor) -> None:
    """``dst.copy_(src)``; on the CPU by numpy, one thread (an eager torch copy of this
    size is a parallel region, which stalls on a busy machine)."""
    if dst.device.type == "cpu" and src.device.type == "cpu" and dst.dtype == src.dtype:
        np.copyto(dst.numpy(), src.detach().numpy())
    else:
        dst.copy_(src)


def _geometry(parts: list[Gaussians]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """means ``[N, 3]``, quats ``[N, 4]``, scales ``[N, 3]``, opacities ``[N]`` of ``parts``
    joined (what the rasterizer reads; the SH are not copied)."""
    fields = zip(*((g.means, g.quats, g.scales, g.opacities) for g in parts), strict=True)
    joined = tuple(ts[0] if len(ts) == 1 else torch.cat(ts) for ts in fields)
    return joined  # type: ignore[return-value]


def _numpy(t: Tensor) -> np.ndarray:
    """``t`` as a float32 CPU array: a view (maybe strided) of a float32 CPU tensor, no
    copy (every rasterizer call returns fresh tensors, so the view stays valid while the
    writers read it); a copy from any other device or dtype."""
    t = t.detach()
    if t.device.type != "cpu" or t.dtype != torch.float32:
        t = t.to("cpu", torch.float32)
    return t.numpy()
