"""How much memory rendering one frame takes, checked before any frame is rendered.

A frame is rendered as float32 planes (RGB, one weight channel per instrument instance,
alpha, depth when asked for), copied to the CPU and turned into image, mask and label arrays.
Its peak grows with width x height x channels; a size that cannot fit (32768 x 32768
needs tens of GiB) is refused up front with the memory it would need, instead of
failing in the allocator after minutes of work.
"""

from __future__ import annotations

import os

from gs_contract.errors import InputError
from gs_contract.scenario.model import Scenario

# Peak bytes per pixel = PER_CHANNEL * channels + PER_PIXEL (measured with the CPU
# rasterizer and the dataset writer at 1-9 Mpixel frames; see docs/scenario.md).
BYTES_PER_PIXEL_PER_CHANNEL = 16
BYTES_PER_PIXEL = 64


def frame_channels(scenario: Scenario) -> int:
    """Planes one frame renders: RGB, one weight per instrument instance, alpha, depth if
    asked."""
    return 3 + len(scenario.instances) + 1 + int(scenario.output.depth)


def frame_memory_bytes(width: int, height: int, channels: int) -> int:
    """Estimated peak memory (bytes) of rendering and writing one ``width`` x ``height``
    frame of ``channels`` planes."""
    return width * height * (BYTES_PER_PIXEL_PER_CHANNEL * channels + BYTES_PER_PIXEL)


def physical_memory_bytes() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def check_frame_memory(scenario: Scenario, limit_bytes: int | None = None) -> None:
    """Refuse a scenario whose largest frame would need more than ``limit_bytes``
    (default: this machine's physical memory; no check where it is unknown).

    Raises:
        InputError: naming the scenario, the frame's ``camera.width`` and the memory
            one frame would need against the limit.
    """
    limit = physical_memory_bytes() if limit_bytes is None else limit_bytes
    if limit is None:
        return
    channels = frame_channels(scenario)
    frame = max(scenario.frames, key=lambda f: f.camera.width * f.camera.height)
    need = frame_memory_bytes(frame.camera.width, frame.camera.height, channels)
    if need > limit:
        raise InputError(
            scenario.path, f"frames[{frame.index}].camera.width",
            f"a {frame.camera.width} x {frame.camera.height} frame of {channels} channels "
            f"needs about {_gib(need)} of memory to render, more than this machine's "
            f"{_gib(limit)}; use a smaller image size")


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
