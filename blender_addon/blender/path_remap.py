"""Keep blend-relative (``//``) source paths valid when the .blend is saved elsewhere.

Blender remaps the relative paths of its own data (images, libraries) on Save As, but
not the string properties of add-ons. A ``save_pre`` handler does it for
``Object.gsds.source_path``: each ``//`` path is resolved against the folder the
.blend was in and made relative to the folder it is saved to (absolute when that is
impossible, e.g. another drive). When only a copy is saved (Save Copy), ``save_post``
puts the session's own paths back.
"""

from __future__ import annotations

import os
from typing import Any

import bpy
from bpy.app.handlers import persistent

# (object name, path before the save) of the save in progress, for Save Copy.
_before_save: list[tuple[str, str]] = []


def remapped_path(path: str, old_folder: str, new_folder: str) -> str:
    """``path`` (``//`` = relative to ``old_folder``) relative to ``new_folder``."""
    absolute = os.path.normpath(os.path.join(old_folder, path[2:]))
    try:
        relative = os.path.relpath(absolute, new_folder)
    except ValueError:  # another drive (Windows)
        return absolute
    return "//" + relative.replace(os.sep, "/")


def _saved_path(args: tuple[Any, ...]) -> str:
    """The file being saved: the handlers' argument on Blender 4.x and newer."""
    return next((a for a in args if isinstance(a, str)), "")


@persistent
def remap_before_save(*args: Any) -> None:
    _before_save.clear()
    old_file, new_file = bpy.data.filepath, _saved_path(args)
    if not old_file or not new_file:
        return
    old_folder = os.path.dirname(os.path.abspath(old_file))
    new_folder = os.path.dirname(os.path.abspath(new_file))
    if os.path.normcase(old_folder) == os.path.normcase(new_folder):
        return
    for obj in bpy.data.objects:
        settings = getattr(obj, "gsds", None)
        if settings is not None and settings.source_path.startswith("//"):
            _before_save.append((obj.name, settings.source_path))
            settings.source_path = remapped_path(settings.source_path, old_folder,
                                                 new_folder)


@persistent
def restore_after_copy(*args: Any) -> None:
    """After Save Copy the session stays on the old file: give it its paths back."""
    saved, current = _saved_path(args), bpy.data.filepath
    if _before_save and saved and os.path.abspath(saved) != os.path.abspath(current):
        for name, path in _before_save:
            obj = bpy.data.objects.get(name)
            if obj is not None:
                obj.gsds.source_path = path
    _before_save.clear()


def register() -> None:
    bpy.app.handlers.save_pre.append(remap_before_save)
    bpy.app.handlers.save_post.append(restore_after_copy)


def unregister() -> None:
    for handlers, function in ((bpy.app.handlers.save_pre, remap_before_save),
                               (bpy.app.handlers.save_post, restore_after_copy)):
        if function in handlers:
            handlers.remove(function)
