"""Finding, pairing and reading the images ``gs-backend evaluate`` compares.

Which files count (one rule for ``--rendered``, ``--real`` and ``--masks``):

- a folder with an ``images/`` subfolder (``--masks``: ``masks/``) is a dataset folder:
  that subfolder is searched recursively (``images/train``, ``images/val``, ...);
- any other folder: its own files only (not its subfolders, so a report written inside
  it is never read back as images).

Images are ``.png``, ``.jpg`` and ``.jpeg`` files (any case; masks: ``.png``); other
files are ignored. A frame is a file's stem; two files with one stem in one folder are
refused. Pairing: every rendered frame needs a real image of the same stem; real images
without a rendered partner are allowed (a real video usually has more frames than were
replayed) and listed in the report's notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gs_contract.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Pair:
    """One frame: the rendered and the real image of the same stem."""

    frame: str
    rendered: Path
    real: Path


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[Pair, ...]  # in frame-name order
    unpaired_real: tuple[str, ...]  # real frames with no rendered image, sorted


def find_images(folder: Path, option: str, *, subfolder: str = "images",
                suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> dict[str, Path]:
    """Frame stem -> file of the images under ``folder`` (rules in the module docstring).

    Raises:
        InputError: ``folder`` is missing or not a folder, holds no image, or two files
            share a stem.
    """
    if not folder.exists():
        raise InputError(folder, option, "does not exist")
    if not folder.is_dir():
        raise InputError(folder, option, "is not a folder")
    root = folder / subfolder
    candidates = root.rglob("*") if root.is_dir() else folder.iterdir()
    found: dict[str, Path] = {}
    for path in sorted(candidates):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        other = found.get(path.stem)
        if other is not None:
            raise InputError(folder, option, f"two images of frame {path.stem!r}: {other} "
                                             f"and {path}; frame names must be unique")
        found[path.stem] = path
    if not found:
        where = f"{root} (recursively)" if root.is_dir() else str(folder)
        kinds = "/".join(s.lstrip(".").upper() for s in suffixes)
        raise InputError(folder, option, f"no {kinds} images found in {where}")
    return found


def pair_images(rendered: dict[str, Path], real: dict[str, Path]) -> Pairing:
    """Pair by stem.

    Raises:
        InputError: a rendered frame has no real image (named, with the count).
    """
    missing = sorted(set(rendered) - set(real))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(rendered[missing[0]], "--real",
                         f"no real image named {missing[0]}.png/.jpg to compare with{more}")
    pairs = tuple(Pair(f, rendered[f], real[f]) for f in sorted(rendered))
    return Pairing(pairs, tuple(sorted(set(real) - set(rendered))))


def read_rgb(path: Path) -> np.ndarray:
    """``[H, W, 3]`` float64 RGB in [0, 1] of an 8- or 16-bit colour PNG/JPEG (an alpha
    channel is dropped).

    Raises:
        InputError: unreadable, grayscale or of another bit depth.
    """
    image = _imread(path, cv2.IMREAD_UNCHANGED)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InputError(path, None, "is not a colour image (need RGB or RGBA, got "
                                     f"{_channels(image)})")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype)
    if scale is None:
        raise InputError(path, None, f"has {image.dtype} pixels; need 8 or 16 bits")
    rgb = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)
    return rgb.astype(np.float64) / scale


def read_mask(path: Path) -> np.ndarray:
    """``[H, W]`` bool: pixels of any instrument (value > 0) in a single-channel 8- or
    16-bit visible-instance mask (DESIGN contract 4).

    Raises:
        InputError: unreadable or not a single-channel integer image.
    """
    mask = _imread(path, cv2.IMREAD_UNCHANGED)
    if mask.ndim != 2 or mask.dtype not in (np.uint8, np.uint16):
        raise InputError(path, None, "is not a visible-instance mask (need a single-channel "
                                     f"8- or 16-bit PNG, got {_channels(mask)} {mask.dtype})")
    return mask > 0


def _imread(path: Path, flags: int) -> np.ndarray:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise InputError(path, None, "cannot be decoded as a PNG or JPEG image")
    return image


def _channels(image: np.ndarray) -> str:
    return "1 channel" if image.ndim == 2 else f"{image.shape[2]} channels"
