"""Paths: what a path is when it is not a regular file we can read, and how a file
refers to another one.

Asset, ``keep`` and scenario paths are opened only when they name a regular file:
``/dev/zero`` or a FIFO would be read forever (or block), so they are refused up front
with a message saying what the path is. Files we write refer to others by
:func:`portable_path` (relative, so a folder can move with its assets).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from gs_contract.errors import InputError


def regular_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as a regular file, in plain words; None when it can.

    Symbolic links are followed; a broken link and a link loop are named as such.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return "a broken symbolic link (its target does not exist)"
        return "file not found"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.EACCES:
            return "permission denied"
        if exc.errno == errno.ENAMETOOLONG:
            return "the path is too long"
        return f"cannot be read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode):
        return "a character device (such as /dev/zero), not a regular file"
    if stat.S_ISBLK(mode):
        return "a block device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    return "not a regular file"


def require_regular_file(path: str | os.PathLike[str], *, source: str | os.PathLike[str],
                         field: str | None) -> Path:
    """``path`` as a Path when it names a readable regular file.

    Raises:
        InputError: naming ``source`` and ``field`` (e.g. the scenario and
            ``assets.driver.ply``) and saying what ``path`` is instead.
    """
    problem = regular_file_problem(path)
    if problem is not None:
        raise InputError(source, field, f"{problem}: {os.fspath(path)}")
    return Path(path)


def portable_path(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> str:
    """``path`` relative to ``folder``, with forward slashes, for a file written in
    ``folder`` to refer to it; the absolute path when no relative one exists (another
    drive on Windows). Relative inputs are taken from the working folder."""
    absolute = os.path.abspath(path)
    try:
        return Path(os.path.relpath(absolute, os.path.abspath(folder))).as_posix()
    except ValueError:
        return absolute
