"""Errors that carry a user-facing message naming the file and the field.

The backend CLI turns every :class:`InputError` into one line on stderr and exit code 2,
never a traceback. Code deep in the backend raises these with the most precise
location it knows (a JSON path such as ``frames[3].poses.driver``, or a PLY
property such as ``f_rest_12``).
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input: a broken file, a wrong scenario field, a missing asset.

    Args:
        source: the file (or other input) at fault, e.g. ``assets/driver.ply``.
        field: where in it, e.g. ``frames[2].camera.K`` or ``property f_dc_0``;
            ``None`` when the whole file is at fault.
        problem: what is wrong, in plain words.
    """

    def __init__(self, source: str | Path, field: str | None, problem: str) -> None:
        self.source = str(source)
        self.field = field
        self.problem = problem
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = f"{self.source}: {self.field}" if self.field else self.source
        return f"{where}: {self.problem}"


class PoseError(InputError):
    """A pose matrix that is not a 4x4 similarity (rotation, uniform positive
    scale, translation). Carries the measured anisotropy for the message."""

    def __init__(self, source: str | Path, field: str | None, problem: str,
                 anisotropy: float | None = None) -> None:
        self.anisotropy = anisotropy
        super().__init__(source, field, problem)
