"""The image ``bpy.data.images["GS Preview"]``: a sidecar's PNG written into it, shown.

The PNG is decoded by Blender's own reader from memory (packed into a scratch image that
is removed at once: no file is written), and its pixels copied into "GS Preview", a
generated image created on first use and afterwards updated in place (resized when the
preview size changes), so an Image Editor or a camera background showing it follows.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
from bpy.types import Context

PREVIEW_IMAGE = "GS Preview"
_SCRATCH = "GS Preview (decoding)"


def decode_png(data: bytes) -> tuple[int, int, np.ndarray]:
    """(width, height, pixels): RGBA float32 ``[H * W * 4]`` in 0..1, bottom row first
    (Blender's order), exactly the PNG's 8-bit values / 255."""
    scratch = bpy.data.images.new(_SCRATCH, 1, 1)
    try:
        scratch.pack(data=data, data_len=len(data))
        scratch.source = 'FILE'
        width, height = scratch.size
        if width == 0 or height == 0:
            raise ValueError("the sidecar's PNG could not be decoded")
        pixels = np.empty(width * height * 4, dtype=np.float32)
        scratch.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(scratch)
    return width, height, pixels


def write_preview(data: bytes) -> Any:
    """Put the PNG ``data`` into "GS Preview" (created, or updated in place); returns it."""
    width, height, pixels = decode_png(data)
    image = bpy.data.images.get(PREVIEW_IMAGE)
    if image is None:
        image = bpy.data.images.new(PREVIEW_IMAGE, width, height, alpha=True)
    elif tuple(image.size) != (width, height):
        image.scale(width, height)
    image.pixels.foreach_set(pixels)
    image.update()
    return image


def show_in_image_editor(context: Context, image: Any) -> None:
    """Show ``image`` in an open Image Editor: keep one already showing it, else take the
    first (there may be none; under the bpy module there is no window at all)."""
    editors = [area for window in getattr(context.window_manager, "windows", ())
               for area in window.screen.areas if area.type == 'IMAGE_EDITOR']
    showing = [area for area in editors if area.spaces.active.image == image]
    for area in showing or editors[:1]:
        area.spaces.active.image = image
        area.tag_redraw()
    for window in getattr(context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type == 'VIEW_3D':
                area.tag_redraw()


def show_in_camera(context: Context, enabled: bool) -> None:
    """Show (or stop showing) "GS Preview" as the scene camera's background image in the
    3D viewport's camera view. The entry is stored on the camera's data (saved with the
    .blend, like any background image); only the entry showing "GS Preview" is touched."""
    scene = context.scene
    camera = getattr(scene, "camera", None) if scene is not None else None
    if camera is None or camera.type != 'CAMERA':
        return
    data = camera.data
    image = bpy.data.images.get(PREVIEW_IMAGE)
    if image is None:
        image = bpy.data.images.new(PREVIEW_IMAGE, 1, 1, alpha=True)
    entries = [bg for bg in data.background_images if bg.image == image]
    if enabled:
        entry = entries[0] if entries else data.background_images.new()
        entry.image = image
        entry.alpha = 1.0
        entry.display_depth = 'FRONT'
        entry.frame_method = 'FIT'
        entry.show_background_image = True
        data.show_background_images = True
    else:
        for entry in entries:
            data.background_images.remove(entry)
