"""Tile-binned, vectorised Gaussian rasterizer in pure torch (CPU, MPS, any device).

It renders what gsplat 1.5's ``rasterization`` renders (DESIGN contract 3) and is
the oracle the CUDA path is tested against. Per pixel, Gaussians are visited in
the order of their centre depth (ties by index), and for each one

    sigma = 0.5 d^T conic d,   alpha = min(0.999, o exp(-sigma))   (d: centre - pixel);

it is skipped when ``sigma < 0`` or ``alpha < 1/255``; the pixel stops *before*
the first Gaussian that would take its transmittance ``T`` to ``<= 1e-4``;
otherwise ``colour += alpha T c`` and ``T *= 1 - alpha``. Finally
``colour += T bg`` and ``alpha = 1 - T``.

How it is vectorised:

* **Binning** (:func:`bin_gaussians`). gsplat visits every tile of a Gaussian's
  opacity-aware bounding box. Of those we keep the tiles whose pixel centres
  reach the ellipse where alpha >= 1/255 (gsplat skips the Gaussian at every
  pixel of the others), walking the ellipse one tile row at a time. The
  (tile, Gaussian) pairs are stably sorted by tile, which keeps each tile's list
  front to back. Tiles are 8x8 pixels: on CPU that halves the (pixel, Gaussian)
  pairs evaluated compared with gsplat's 16x16, at the same result, because a
  tile's list holds a Gaussian whenever it reaches any pixel of the tile.
* **Compositing** (:func:`composite_tiles`). Tiles advance through their lists
  together, ``chunk`` Gaussians at a time; the per-pixel alphas of a step form a
  ``[pixel, tile, Gaussian]`` block. Skipped Gaussians get alpha 0, so their
  factor ``1 - alpha`` is exactly 1 and they never change ``T``. A cumulative
  product along the chunk, with the incoming ``T`` folded into the first factor,
  gives the transmittance after each Gaussian. Because ``T`` never increases,
  "stop before the Gaussian that takes T to <= 1e-4" keeps exactly the prefix
  where that product is still ``> 1e-4``. The weights ``alpha T_before`` are
  ``odds T_after`` with ``odds = alpha / (1 - alpha)``, which is 0 past the stop
  once ``T_after`` is zeroed there; colours (and, in an extra column of ones, the
  sum of the weights) are one batched matrix product. A pixel that stops ends at
  its incoming ``T`` minus that sum, the same value up to rounding.
* **Early exit.** After every step, tiles whose pixels have all stopped, or whose
  list is exhausted, leave the working set. Tiles are processed in groups of
  similar list length so the per-step blocks stay cache-sized, and each group's
  inputs are gathered a window of steps at a time, which bounds memory however
  long the lists get.

Precision: sigma is evaluated as ``0.5 ((p dx + q dy)^2 + (r dy)^2)`` from a
triangular square root of the conic (see :class:`ProjectedGaussians`), a sum of
squares: it cannot go negative (gsplat's ``sigma < 0`` skip, a float32 rounding
artefact of its expanded quadratic form, cannot trigger) and it does not lose
digits far along a needle-like Gaussian's axis. Results agree with a float64
evaluation of gsplat's formulas to a few 1e-6 (tests/raster_reference.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gs_backend.raster.projection import ALPHA_THRESHOLD, ProjectedGaussians, project_gaussians
from gs_backend.raster.types import RasterResult

TILE_SIZE = 8
"""Tile edge in pixels (gsplat uses 16; smaller tiles waste fewer evaluations on CPU)."""
CHUNK = 32
"""Gaussians per tile and compositing step."""
GROUP_EVALUATIONS = 1 << 19
"""Tiles are composited in groups of about this many (pixel, Gaussian) pairs per step."""
WINDOW_STEPS = 8
"""A group's inputs are gathered this many steps at a time."""
MAX_ALPHA = 0.999
"""Alpha is clamped to this, so no single Gaussian makes a pixel fully opaque."""
TRANSMITTANCE_STOP = 1e-4
"""A pixel stops before the Gaussian that would take its transmittance to this or below."""
DEPTH_ALPHA_FLOOR = 1e-10
"""Expected depth divides the accumulated depth by ``max(alpha, this)``, as gsplat's "ED"."""

# Largest float32 below 1/255: ``F.threshold`` keeps ``x > threshold``, and gsplat
# keeps ``alpha >= 1/255``; on float32 values the two tests then agree.
_ALPHA_KEEP_ABOVE = float(
    torch.nextafter(torch.tensor(ALPHA_THRESHOLD, dtype=torch.float32),
                    torch.tensor(0.0, dtype=torch.float32))
)
# Ellipse culling is widened by this much (pixels) on top of a 1e-4 relative margin
# of its level, far above float32 rounding: it must never drop a pixel gsplat shades.
_CULL_PAD_PX = 1e-3


def rasterize_torch(
    means: Tensor,  # [N, 3] world
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D]
    viewmat: Tensor,  # [4, 4] world -> camera, OpenCV axes
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    background: Tensor | None,  # [D]
    near: float,
    far: float,
    eps2d: float,
    antialiased: bool,
    with_depth: bool,
) -> RasterResult:
    """Render one view with the torch tile rasterizer (float32 tensors, one device)."""
    projected = project_gaussians(
        means, quats, scales, opacities, viewmat, K, width, height,
        near=near, far=far, eps2d=eps2d, antialiased=antialiased,
    )
    return rasterize_projected(
        projected, colors, width, height, background=background, with_depth=with_depth,
    )


def rasterize_projected(
    projected: ProjectedGaussians,
    colors: Tensor,  # [N, D] of all input Gaussians
    width: int,
    height: int,
    *,
    background: Tensor | None,  # [D]
    with_depth: bool,
    tile_size: int = TILE_SIZE,
    chunk: int = CHUNK,
) -> RasterResult:
    """Bin and composite already projected Gaussians (see :func:`rasterize_torch`)."""
    order = torch.sort(projected.depths, stable=True).indices  # front to back, ties by index
    features = colors.index_select(0, projected.ids[order])
    if with_depth:
        features = torch.cat((features, projected.depths[order, None]), dim=1)
    means2d = projected.means2d[order]
    conic_roots = projected.conic_roots[order]
    opacities = projected.opacities[order]
    bins = bin_gaussians(means2d, projected.radii[order], conic_roots, opacities, width, height,
                         tile_size)
    image, trans = composite_tiles(bins, means2d, conic_roots, opacities, features, width, height,
                                   chunk=chunk)
    n_colors = colors.shape[1]
    rgb = image[..., :n_colors]
    if background is not None:
        rgb = rgb + trans[..., None] * background
    alphas = 1.0 - trans
    depth = None
    if with_depth:
        depth = (image[..., n_colors] / alphas.clamp(min=DEPTH_ALPHA_FLOOR)).contiguous()
    return RasterResult(colors=rgb.contiguous(), alphas=alphas.contiguous(), depth=depth)


# --------------------------------------------------------------------------- binning


@dataclass(frozen=True)
class TileBins:
    """Front-to-back Gaussian lists of every tile.

    Attributes:
        gaussians: ``[I]`` int64 row of each (tile, Gaussian) pair's Gaussian in the
            depth-sorted arrays, grouped by tile (tile-major), front to back in a tile.
        offsets: ``[tiles + 1]`` int64 start of each tile's list in ``gaussians``.
        tiles_x: tiles per image row.
        tiles_y: tile rows.
        tile_size: tile edge, pixels.
    """

    gaussians: Tensor
    offsets: Tensor
    tiles_x: int
    tiles_y: int
    tile_size: int


def bin_gaussians(
    means2d: Tensor,  # [M, 2] sorted by depth
    radii: Tensor,  # [M, 2]
    conic_roots: Tensor,  # [M, 3] (p, q, r)
    opacities: Tensor,  # [M]
    width: int,
    height: int,
    tile_size: int = TILE_SIZE,
    *,
    cull_to_ellipse: bool = True,
) -> TileBins:
    """List, for each tile, the Gaussians that can reach one of its pixels.

    The Gaussians must already be in front-to-back order; row indices into them
    are what the lists hold. gsplat visits the tiles of the opacity-aware box,
    ``[floor((m - r) / ts), ceil((m + r) / ts))`` clamped to the image. With
    ``cull_to_ellipse``, only those whose pixel centres reach the ellipse where
    alpha >= 1/255, ``sigma <= ln(255 o)``, are kept: gsplat skips the Gaussian at
    every pixel of the others (the box corners of a round or tilted ellipse),
    so dropping them changes nothing but the work. The ellipse is walked one tile
    row at a time (its x-extent over the row's pixel centres picks the columns),
    so the culled lists are produced directly.
    """
    device, dtype = means2d.device, means2d.dtype
    tiles_x = (width + tile_size - 1) // tile_size
    tiles_y = (height + tile_size - 1) // tile_size
    n_tiles = tiles_x * tiles_y
    mean_x, mean_y = means2d.T.contiguous()
    radius_x, radius_y = radii.T.contiguous()

    def tile_index(value: Tensor, limit: int) -> Tensor:
        return value.clamp(0, limit).long()

    # gsplat's tile box, in whole tiles (first inclusive, last exclusive).
    box_x0 = tile_index(torch.floor((mean_x - radius_x) / tile_size), tiles_x)
    box_x1 = tile_index(torch.ceil((mean_x + radius_x) / tile_size), tiles_x)
    box_y0 = tile_index(torch.floor((mean_y - radius_y) / tile_size), tiles_y)
    box_y1 = tile_index(torch.ceil((mean_y + radius_y) / tile_size), tiles_y)
    row0, row1 = box_y0, box_y1
    if cull_to_ellipse:
        p, q, r = conic_roots.T.contiguous()
        two_level = 2.0 * _cull_level(opacities)  # the ellipse: (p dx + q dy)^2 + (r dy)^2 <= this
        # Tile row i has pixel centres y in [i ts + 0.5, i ts + ts - 0.5]; the ellipse
        # reaches y_m +- sqrt(2 L) / r.
        reach_y = torch.sqrt(two_level) / r + _CULL_PAD_PX
        first = torch.ceil((mean_y - reach_y - (tile_size - 0.5)) / tile_size)
        last = torch.floor((mean_y + reach_y - 0.5) / tile_size) + 1
        row0 = torch.maximum(tile_index(first, tiles_y), box_y0)
        row1 = torch.minimum(tile_index(last, tiles_y), box_y1)

    # Stage 1: one entry per (Gaussian, tile row), Gaussian-major, so depth order holds.
    owner, tile_row = _expand_ranges(row0, (row1 - row0).clamp(min=0))
    col0, col1 = box_x0.index_select(0, owner), box_x1.index_select(0, owner)
    if cull_to_ellipse:
        o_p, o_q, o_r, o_level, o_mx, o_my = (
            t.index_select(0, owner) for t in (p, q, r, two_level, mean_x, mean_y))
        # Offsets dy = y - y_m of the row's pixel centres, limited to the ellipse.
        reach = torch.sqrt(o_level) / o_r
        top = tile_row.to(dtype) * tile_size + 0.5 - o_my
        dy_lo = torch.maximum(top, -reach)
        dy_hi = torch.minimum(top + (tile_size - 1), reach)
        # At offset dy the ellipse spans dx in [(-q dy - h) / p, (-q dy + h) / p] with
        # h = sqrt(2 L - (r dy)^2). The left end is convex in dy, least at
        # dy = q sqrt(2 L) / (r sqrt(q^2 + r^2)); the right end is greatest at minus that.
        extreme = o_q * torch.sqrt(o_level) / (o_r * torch.hypot(o_q, o_r))
        dy_left = torch.minimum(torch.maximum(extreme, dy_lo), dy_hi)
        dy_right = torch.minimum(torch.maximum(-extreme, dy_lo), dy_hi)

        def half_width(dy: Tensor) -> Tensor:
            return torch.sqrt((o_level - (o_r * dy).square()).clamp(min=0.0))

        x_left = o_mx - (o_q * dy_left + half_width(dy_left)) / o_p - _CULL_PAD_PX
        x_right = o_mx - (o_q * dy_right - half_width(dy_right)) / o_p + _CULL_PAD_PX
        first = torch.ceil((x_left - (tile_size - 0.5)) / tile_size)
        last = torch.floor((x_right - 0.5) / tile_size) + 1
        col0 = torch.maximum(tile_index(first, tiles_x), col0)
        col1 = torch.minimum(tile_index(last, tiles_x), col1)

    # Stage 2: one entry per (Gaussian, tile).
    row_entry, tile_col = _expand_ranges(col0, (col1 - col0).clamp(min=0))
    gaussian = owner.index_select(0, row_entry)
    tile = tile_row.index_select(0, row_entry) * tiles_x + tile_col
    # A stable sort by tile keeps the depth order inside each tile's list; on CPU,
    # 16-bit keys let torch use its radix sort.
    narrow = device.type == "cpu" and n_tiles <= torch.iinfo(torch.int16).max
    key_dtype = torch.int16 if narrow else torch.int32
    order = torch.sort(tile.to(key_dtype), stable=True).indices
    offsets = torch.zeros(n_tiles + 1, dtype=torch.long, device=device)
    torch.cumsum(torch.bincount(tile, minlength=n_tiles), 0, out=offsets[1:])
    return TileBins(
        gaussians=gaussian.index_select(0, order), offsets=offsets,
        tiles_x=tiles_x, tiles_y=tiles_y, tile_size=tile_size,
    )


def _expand_ranges(first: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """For ranges ``[first_i, first_i + count_i)``: ``(i, value)`` of every element, in order."""
    owner = torch.repeat_interleave(torch.arange(count.shape[0], device=count.device), count)
    start = torch.cumsum(count, 0) - count
    position = torch.arange(owner.shape[0], device=count.device)
    return owner, first.index_select(0, owner) + (position - start.index_select(0, owner))


def _cull_level(opacities: Tensor) -> Tensor:
    """``[M]`` sigma beyond which alpha = o exp(-sigma) < 1/255, widened by a margin."""
    level = torch.log(opacities / ALPHA_THRESHOLD)
    return level * (1.0 + 1e-4) + 1e-4


# --------------------------------------------------------------------------- compositing


def composite_tiles(
    bins: TileBins,
    means2d: Tensor,  # [M, 2] depth-sorted, as binned
    conic_roots: Tensor,  # [M, 3] (p, q, r): sigma = 0.5 ((p dx + q dy)^2 + (r dy)^2)
    opacities: Tensor,  # [M]
    features: Tensor,  # [M, C]
    width: int,
    height: int,
    *,
    chunk: int = CHUNK,
    group_evaluations: int = GROUP_EVALUATIONS,
) -> tuple[Tensor, Tensor]:
    """Alpha-composite each tile's list front to back (no background).

    Args:
        chunk: Gaussians taken per tile and step.
        group_evaluations: tiles are processed in groups of about this many
            (pixel, Gaussian) pairs per step, which keeps the per-step blocks
            cache-sized and bounds the working memory.

    Returns:
        ``(features [H, W, C], transmittance [H, W])``: accumulated ``sum alpha T c``
        and the final ``T``.
    """
    n_tiles = bins.tiles_x * bins.tiles_y
    n_pix = bins.tile_size * bins.tile_size
    n_feat = features.shape[1]
    scene = _SceneColumns.build(means2d, conic_roots, opacities, features)
    accum = means2d.new_zeros(n_tiles, n_feat + 1, n_pix)
    trans = means2d.new_ones(n_tiles, n_pix)
    lengths = bins.offsets[1:] - bins.offsets[:-1]
    busy = torch.nonzero(lengths > 0).squeeze(1)
    # Longest lists first: a group then holds lists of similar length.
    busy = busy[torch.argsort(lengths[busy], descending=True, stable=True)]
    tiles_per_group = max(1, group_evaluations // (chunk * n_pix))
    work = _Workspace(min(tiles_per_group, busy.numel()), chunk, bins.tile_size, means2d)
    for group in busy.split(tiles_per_group) if busy.numel() else ():
        _composite_group(group, bins, scene, work, accum, trans)

    image = _untile(accum[:, :n_feat].transpose(1, 2), bins, width, height)
    image_trans = _untile(trans[:, :, None], bins, width, height)[..., 0]
    return image, image_trans


@dataclass(frozen=True)
class _SceneColumns:
    """Per-Gaussian inputs of the compositing loop, depth-sorted, one array each."""

    mean_x: Tensor  # [M]
    mean_y: Tensor  # [M]
    root_p: Tensor  # [M] conic roots (p, q, r) / sqrt(ln 2): the quadratic form then
    root_q: Tensor  # [M]   gives sigma / ln 2, and alpha = 2^(log2 o - ...)
    root_r: Tensor  # [M]
    log2_opacity: Tensor  # [M]
    features: Tensor  # [M, C + 1]; the last column is 1 and sums the weights

    @staticmethod
    def build(means2d: Tensor, conic_roots: Tensor, opacities: Tensor,
              features: Tensor) -> _SceneColumns:
        p, q, r = (conic_roots * math.sqrt(1.0 / math.log(2.0))).T.contiguous()
        mean_x, mean_y = means2d.T.contiguous()
        return _SceneColumns(
            mean_x=mean_x, mean_y=mean_y, root_p=p, root_q=q, root_r=r,
            log2_opacity=torch.log2(opacities),
            features=torch.cat((features, torch.ones_like(opacities)[:, None]), dim=1),
        )


class _Workspace:
    """Buffers reused by every step, so the hot loop allocates (and page-faults) little.

    A tile's pixel k sits at offset ``(x_k, y_k)`` from the tile centre;
    ``offsets`` holds the ``tile_size`` values either coordinate takes.
    """

    def __init__(self, max_tiles: int, chunk: int, tile_size: int, like: Tensor) -> None:
        size = max(max_tiles, 1) * chunk * tile_size * tile_size
        self.chunk, self.tile_size, self.n_pix = chunk, tile_size, tile_size * tile_size
        self.u = like.new_empty(size)
        self.alpha = like.new_empty(size)
        self.trans = like.new_empty(size)
        self.one = like.new_ones(())
        offsets = torch.arange(tile_size, dtype=like.dtype, device=like.device) + 0.5
        self.offsets = offsets - 0.5 * tile_size  # [ts]

    @staticmethod
    def block(buffer: Tensor, *shape: int) -> Tensor:
        return buffer[:math.prod(shape)].view(shape)


@dataclass(frozen=True)
class _Window:
    """A group's inputs for a window of steps, for the tiles live when it was built.

    With ``u = p dx + q dy`` and ``v = r dy`` at pixel offset ``(x_k, y_k)`` from the
    tile centre (``dx, dy``: centre of the Gaussian minus centre of the tile),
    ``u = (p dx + q dy - q y_k) - p x_k`` and ``log2 o - v^2 / 2`` depend on ``y_k``
    only, so they are kept per pixel row: ``[ts, L, S]``.
    """

    u_row: Tensor  # [ts, L, S]
    log2_row: Tensor  # [ts, L, S] log2 o - v^2 / 2 (-inf on padding)
    neg_p: Tensor  # [L, S]
    colors: Tensor  # [L, C + 1, S]
    clamp_alpha: bool  # some opacity exceeds MAX_ALPHA

    @staticmethod
    def build(tiles: Tensor, first: Tensor, end: Tensor, n_slots: int, bins: TileBins,
              scene: _SceneColumns, work: _Workspace) -> _Window:
        """Gather list positions ``first + [0, n_slots)`` of each tile (``end``: list end)."""
        ts = work.tile_size
        slot = first[:, None] + torch.arange(n_slots, device=first.device)  # [L, S]
        last = bins.gaussians.shape[0] - 1
        rows = bins.gaussians.index_select(0, slot.clamp(max=last).view(-1))

        def gather(column: Tensor) -> Tensor:
            return column.index_select(0, rows).view(slot.shape)

        log2_opacity = gather(scene.log2_opacity).masked_fill_(slot >= end[:, None], -math.inf)
        p, q, r = gather(scene.root_p), gather(scene.root_q), gather(scene.root_r)
        half = 0.5 * ts
        dx = gather(scene.mean_x) - ((tiles % bins.tiles_x) * ts).to(p.dtype)[:, None] - half
        dy = gather(scene.mean_y) - ((tiles // bins.tiles_x) * ts).to(p.dtype)[:, None] - half
        y_k = work.offsets[:, None, None]
        v_row = torch.addcmul((r * dy)[None], r[None], y_k, value=-1.0)
        return _Window(
            u_row=torch.addcmul((p * dx + q * dy)[None], q[None], y_k, value=-1.0),
            log2_row=torch.addcmul(log2_opacity[None], v_row, v_row, value=-0.5),
            neg_p=-p,
            colors=scene.features.index_select(0, rows).view(*slot.shape, -1).transpose(1, 2),
            clamp_alpha=bool((log2_opacity > math.log2(MAX_ALPHA)).any()),
        )


def _composite_group(
    tiles: Tensor,  # [G] tile ids
    bins: TileBins,
    scene: _SceneColumns,
    work: _Workspace,
    accum: Tensor,  # [tiles, C + 1, P] written for these tiles
    trans: Tensor,  # [tiles, P] written for these tiles
) -> None:
    """Composite a group of tiles to the end of their lists or until all pixels stop."""
    chunk, n_pix, ts = work.chunk, work.n_pix, work.tile_size
    position = bins.offsets[tiles]  # next list entry of each live tile
    end = bins.offsets[tiles + 1]
    n_live = tiles.shape[0]
    t_run = accum.new_ones(n_pix, n_live)  # T entering the next chunk; 0 once stopped
    t_out = t_run.clone()  # final T
    feat = accum.new_zeros(n_live, accum.shape[1], n_pix)
    x_k = work.offsets[None, :, None, None]
    while True:
        n_steps = min(WINDOW_STEPS, -(-int((end - position).max()) // chunk))
        window = _Window.build(tiles, position, end, n_steps * chunk, bins, scene, work)
        live = None  # rows of the window still live; None: all of them
        for step in range(n_steps):
            span = slice(step * chunk, (step + 1) * chunk)
            if live is None:
                u_row, log2_row = window.u_row[:, :, span], window.log2_row[:, :, span]
                neg_p, colors = window.neg_p[:, span], window.colors[:, :, span]
            else:
                u_row = window.u_row[:, :, span].index_select(1, live)
                log2_row = window.log2_row[:, :, span].index_select(1, live)
                neg_p = window.neg_p[:, span].index_select(0, live)
                colors = window.colors[:, :, span].index_select(0, live)
            # Layout [y_k, x_k, tile, Gaussian]: every broadcast is over an outer
            # dimension, which keeps the elementwise kernels vectorised.
            u = work.block(work.u, ts, ts, n_live, chunk)
            torch.addcmul(u_row[:, None], neg_p[None, None], x_k, out=u)
            # alpha = o exp(-sigma) = 2^(log2 o - u^2 / 2 - v^2 / 2)
            alpha = work.block(work.alpha, ts, ts, n_live, chunk)
            torch.addcmul(log2_row[:, None], u, u, value=-0.5, out=alpha)
            alpha = alpha.view(n_pix, n_live, chunk).exp2_()
            if window.clamp_alpha:
                alpha.clamp_(max=MAX_ALPHA)
            F.threshold(alpha, _ALPHA_KEEP_ABOVE, 0.0, inplace=True)  # skipped: alpha 0
            # T after each Gaussian, the incoming T folded into the first factor. It
            # never increases: the kept prefix is where it is still > 1e-4.
            factors = work.block(work.trans, n_pix, n_live, chunk)
            torch.sub(work.one, alpha, out=factors)
            odds = alpha.div_(factors)  # alpha / (1 - alpha)
            factors[:, :, 0].mul_(t_run)
            # In place on CPU (a sequential scan, faster); GPU scans may not alias.
            scan_out = factors if factors.device.type == "cpu" else u.view(n_pix, n_live, chunk)
            t_kept = torch.cumprod(factors, dim=-1, out=scan_out)
            F.threshold(t_kept, TRANSMITTANCE_STOP, 0.0, inplace=True)
            weights = odds.mul_(t_kept)  # alpha T_before; 0 from the stop on
            contribution = torch.bmm(colors, weights.permute(1, 2, 0))  # [L, C + 1, P]
            feat += contribution

            t_last = t_kept[:, :, -1].clone()  # [P, L]; 0 once stopped
            running = t_run > 0
            stopped = running & (t_last == 0)
            # A pixel that stopped ends at T_in minus its weights in this chunk.
            t_out = torch.where(stopped, t_run - contribution[:, -1].T,
                                torch.where(running, t_last, t_out))
            t_run = t_last
            position = position + chunk
            more = (t_run > 0).any(dim=0) & (position < end)
            if not bool(more.all()):
                finished = ~more
                accum[tiles[finished]] = feat[finished]
                trans[tiles[finished]] = t_out[:, finished].T
                if not bool(more.any()):
                    return
                tiles, position, end, feat = tiles[more], position[more], end[more], feat[more]
                t_run, t_out = t_run[:, more], t_out[:, more]
                live = torch.nonzero(more).squeeze(1) if live is None else live[more]
                n_live = tiles.shape[0]


def _untile(
    per_tile: Tensor,  # [tiles, P, C]
    bins: TileBins,
    width: int,
    height: int,
) -> Tensor:
    """Rearrange per-tile pixel blocks into an image ``[H, W, C]`` (cropped)."""
    ts, n_ch = bins.tile_size, per_tile.shape[-1]
    image = per_tile.reshape(bins.tiles_y, bins.tiles_x, ts, ts, n_ch)
    image = image.permute(0, 2, 1, 3, 4).reshape(bins.tiles_y * ts, bins.tiles_x * ts, n_ch)
    return image[:height, :width]
