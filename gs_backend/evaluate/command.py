"""``gs-backend evaluate``: compare rendered frames with real ones (DESIGN contract 9).

Every input is checked and every figure computed before anything is written; then the
overlays, ``metrics.csv``, ``summary.json`` and ``report.md`` are written into ``--out``,
each atomically (:mod:`gs_contract.atomic`). Overlays of earlier runs in
``--out/overlays`` that this run did not make again are removed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import cv2
import numpy as np

from gs_backend import interrupt
from gs_backend.evaluate.images import Pair, find_images, pair_images, read_mask, read_rgb
from gs_backend.evaluate.metrics import SSIM_RADIUS, ImageTooSmall, psnr, ssim
from gs_backend.evaluate.overlay import difference, draw_overlay, heat_scale
from gs_backend.evaluate.report import (
    FrameResult,
    Overlay,
    figures_text,
    headline,
    metrics_csv,
    report_markdown,
    summary,
    summary_json,
)
from gs_contract.atomic import write_bytes_atomic, write_text_atomic
from gs_contract.errors import InputError

if TYPE_CHECKING:
    from gs_backend.evaluate.lpips import Lpips

OVERLAYS_EACH = 3  # best and worst pairs drawn (fewer when there are fewer than 6 pairs)
LPIPS_HOWTO = ("LPIPS not computed: no --lpips-weights given. On a machine with the "
               "`lpips` package and its backbone weights, run scripts/export_lpips_weights.py "
               "--net alex --out lpips_alex.pth, copy the file here and pass "
               "--lpips-weights lpips_alex.pth (docs/evaluate.md); nothing is downloaded.")
T = TypeVar("T")


def run_evaluate_command(args: argparse.Namespace) -> int:
    """Run ``gs-backend evaluate`` for parsed ``args``; return the exit code (0).

    Raises:
        InputError: bad folders, unpaired or mismatched images, an unreadable image or
            mask, a bad weights file, an output that cannot be written.
    """
    out: Path = args.out.absolute()
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out", "is a file; give a folder for the report")
    rendered, real = args.rendered.absolute(), args.real.absolute()
    pairing = pair_images(find_images(rendered, "--rendered"), find_images(real, "--real"))
    masks = _mask_files(args.masks.absolute(), pairing.pairs) if args.masks else None
    net, notes = None, []
    if args.lpips_weights is not None:
        net, name = _load_lpips(args.lpips_weights.absolute(), args.device)
        notes.append(f"LPIPS with the {name} backbone from {args.lpips_weights}.")
    else:
        notes.append(LPIPS_HOWTO)
    results = [_evaluate_pair(pair, net, masks)
               for pair in _progress(pairing.pairs, len(pairing.pairs))]
    notes += _result_notes(results, pairing.unpaired_real, masks is not None)
    overlays = _overlays(results)
    interrupt.checkpoint()
    _write_overlays(out, overlays, {p.frame: p for p in pairing.pairs})
    data = summary(results, masked=masks is not None, lpips=net is not None,
                   overlays=overlays, notes=notes)
    _write(out / "metrics.csv", metrics_csv(results, masks is not None))
    _write(out / "summary.json", summary_json(data))
    _write(out / "report.md", report_markdown(data, overlays, str(args.rendered),
                                              str(args.real)))
    print(f"gs-backend evaluate: {len(results)} pairs, " + headline(data) + f" -> {out}",
          file=sys.stderr)
    return 0


def _mask_files(folder: Path, pairs: tuple[Pair, ...]) -> dict[str, Path]:
    found = find_images(folder, "--masks", subfolder="masks", suffixes=(".png",))
    for pair in pairs:
        if pair.frame not in found:
            raise InputError(folder, "--masks", f"no mask {pair.frame}.png for rendered "
                                                f"frame {pair.rendered}")
    return found


def _load_lpips(path: Path, device_spec: str) -> tuple[Lpips, str]:
    with interrupt.deferred():  # torch's import must never see a KeyboardInterrupt
        from gs_backend.devices import resolve_device
        from gs_backend.evaluate.lpips import load_lpips
    return load_lpips(path, resolve_device(device_spec))


def _evaluate_pair(pair: Pair, net: Lpips | None, masks: dict[str, Path] | None
                   ) -> FrameResult:
    x, y = read_rgb(pair.rendered), read_rgb(pair.real)
    if x.shape != y.shape:
        raise InputError(pair.rendered, None, f"is {_size(x)} but its real partner "
                                              f"{pair.real} is {_size(y)}; sizes must match")
    h, w = x.shape[:2]
    try:
        ssim_value = _number(ssim(x, y))
    except ImageTooSmall as exc:
        raise InputError(pair.rendered, None, str(exc)) from None
    lpips = None
    if net is not None:
        side = net.smallest_side()
        if min(h, w) < side:
            raise InputError(pair.rendered, None, f"is {_size(x)}: the LPIPS network needs "
                                                  f"at least {side} pixels on each side")
        lpips = net.distance(x, y)
    result = FrameResult(pair.frame, _number(psnr(x, y)), ssim_value, lpips)
    if masks is None:
        return result
    mask = read_mask(masks[pair.frame])
    if mask.shape != (h, w):
        raise InputError(masks[pair.frame], None, f"is {mask.shape[1]}x{mask.shape[0]} but "
                                                  f"its frame {pair.rendered} is {_size(x)}")
    return FrameResult(pair.frame, result.psnr, result.ssim, lpips, int(mask.sum()),
                       psnr(x, y, mask), ssim(x, y, mask))


def _number(value: float | None) -> float:
    assert value is not None  # only figures over a mask can be None
    return value


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def _result_notes(results: list[FrameResult], unpaired: tuple[str, ...], masked: bool
                  ) -> list[str]:
    notes = []
    identical = [r.frame for r in results if r.psnr == float("inf")]
    if identical:
        notes.append(f"{len(identical)} pair(s) identical (PSNR infinite, 'inf' in "
                     f"metrics.csv) left out of the PSNR statistics: {_names(identical)}.")
    if unpaired:
        notes.append(f"{len(unpaired)} real image(s) without a rendered frame of the same "
                     f"name not evaluated: {_names(unpaired)}.")
    if masked:
        notes.append("Instrument-only figures over the pixels of visible masks with a value "
                     "> 0 (SSIM: the SSIM map at those pixels that are window centres).")
        empty = [r.frame for r in results if r.psnr_masked is None]
        if empty:
            notes.append(f"{len(empty)} frame(s) without instrument pixels (empty masked "
                         f"cells) left out of the masked statistics: {_names(empty)}.")
        edge = [r.frame for r in results if r.psnr_masked is not None and r.ssim_masked is None]
        if edge:
            notes.append(f"{len(edge)} frame(s) with instrument pixels only within "
                         f"{SSIM_RADIUS} pixels of the border (no SSIM window centred there; "
                         f"empty ssim_masked) left out of the masked SSIM: {_names(edge)}.")
    return notes


def _names(names: Iterable[str], limit: int = 10) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _overlays(results: list[FrameResult]) -> list[Overlay]:
    """The best and the worst pairs by PSNR (ties: frame name): up to OVERLAYS_EACH of
    each, and never one pair twice (n pairs: ceil(n/2) best, floor(n/2) worst)."""
    ranked = sorted(results, key=lambda r: (-r.psnr, r.frame))
    n_best = min(OVERLAYS_EACH, (len(ranked) + 1) // 2)
    n_worst = min(OVERLAYS_EACH, len(ranked) // 2)
    chosen = [("best", i + 1, r) for i, r in enumerate(ranked[:n_best])]
    chosen += [("worst", i + 1, r) for i, r in enumerate(ranked[::-1][:n_worst])]
    return [Overlay(kind, rank, r, f"overlays/{kind}_{rank}_{r.frame}.png")
            for kind, rank, r in chosen]


def _write_overlays(out: Path, overlays: list[Overlay], pairs: dict[str, Pair]) -> None:
    images = {o.result.frame: (read_rgb(pairs[o.result.frame].rendered),
                               read_rgb(pairs[o.result.frame].real)) for o in overlays}
    vmax = heat_scale([difference(x, y) for x, y in images.values()]) if images else 1.0
    for o in overlays:
        x, y = images[o.result.frame]
        title = f"{o.kind} {o.rank}: {o.result.frame}   {figures_text(o.result)}"
        ok, png = cv2.imencode(".png", draw_overlay(x, y, title, vmax))
        if not ok:
            raise RuntimeError("OpenCV could not encode an overlay as PNG")
        _write(out / o.path, png.tobytes())
    folder = out / "overlays"
    keep = {out / o.path for o in overlays}
    if folder.is_dir():
        for old in folder.glob("*.png"):
            if old not in keep and old.name.startswith(("best_", "worst_")):
                old.unlink(missing_ok=True)


def _write(path: Path, data: str | bytes) -> None:
    try:
        if isinstance(data, str):
            write_text_atomic(path, data)
        else:
            write_bytes_atomic(path, data)
    except OSError as exc:
        raise InputError(path, "--out", f"cannot write: {exc.strerror or exc}") from None


def _progress(items: Iterable[T], total: int) -> Iterator[T]:
    """``items`` with a tqdm bar on stderr when it is a terminal (and Ctrl-C checks)."""
    from tqdm import tqdm

    for item in tqdm(items, total=total, unit="pair", desc="evaluate", file=sys.stderr,
                     disable=not sys.stderr.isatty()):
        interrupt.checkpoint()
        yield item
