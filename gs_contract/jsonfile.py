"""Reading JSON input files and their fields with messages that name the file and the
JSON path (``frames[3].camera.K``): shared by every file format of the contract
(scenarios, crop files, recordings).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from gs_contract.errors import InputError
from gs_contract.files import regular_file_problem


def read_json_file(path: str | Path) -> Any:
    """The decoded JSON of a regular file.

    Raises:
        InputError: one line naming the file: not a regular file, unreadable, not JSON
            (with line and column), nested too deeply, or an integer too long to read.
    """
    path = Path(path)
    problem = regular_file_problem(path)
    if problem is not None:
        raise InputError(path, None, problem)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"cannot read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"line {exc.lineno} column {exc.colno}",
                         f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(path, None, "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise InputError(path, None, f"invalid JSON: {exc}") from None


class JsonValidator:
    """Typed accessors that know the JSON path of what they read; each refusal is one
    :class:`InputError` naming the file (``path``) and the path (``frames[3].camera.K``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> NoReturn:
        raise InputError(self.path, None if where == "$" else where, problem)

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.path.parent / p).resolve()

    def required(self, spec: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in spec:
            self.fail(join_path(where, key), "missing required field")
        return spec[key]

    def no_unknown_keys(self, spec: Mapping[str, Any], where: str,
                        allowed: frozenset[str]) -> None:
        unknown = sorted(set(spec) - allowed)
        if unknown:
            self.fail(join_path(where, unknown[0]),
                      f"unknown key; expected one of {sorted(allowed)}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, got {describe_value(value)}")
        return value

    def sequence(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, f"expected a list, got {describe_value(value)}")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, f"expected a non-empty string, got {describe_value(value)}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"expected true or false, got {describe_value(value)}")
        return value

    def number(self, value: Any, where: str) -> float:
        """A finite JSON number (not a boolean, not a numeric string) as a float."""
        if not _is_number(value):
            self.fail(where, f"expected a finite number, got {describe_value(value)}")
        try:
            out = float(value)
        except OverflowError:
            self.fail(where, f"number too large, got {describe_value(value)}")
        if not math.isfinite(out):
            self.fail(where, f"expected a finite number, got {describe_value(value)}")
        return out

    def integer(self, value: Any, where: str) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"expected an integer, got {describe_value(value)}")
        return value

    def matrix(self, value: Any, where: str, shape: tuple[int, ...]) -> np.ndarray:
        """A vector (``shape`` (n,)) or matrix (``shape`` (r, c)) of finite JSON numbers
        as float64. Numeric strings, booleans and numbers beyond float range are refused
        naming the entry, e.g. ``[1][2]``."""
        rows = [value] if len(shape) == 1 else value
        rows_wanted = 1 if len(shape) == 1 else shape[0]
        if not isinstance(rows, list) or len(rows) != rows_wanted or not all(
                isinstance(r, list) and len(r) == shape[-1] for r in rows):
            what = f"list of {shape[0]} numbers" if len(shape) == 1 else \
                f"{shape[0]}x{shape[1]} matrix"
            self.fail(where, f"expected a {what} (shape {list(shape)}), got {_shape_of(value)}")
        if all(type(x) is float or type(x) is int for row in rows for x in row):
            try:  # the common case, fast; errors are located below
                out = np.array(rows, dtype=np.float64)
            except OverflowError:
                out = self._entries(rows, where, shape)
        else:
            out = self._entries(rows, where, shape)
        if not np.isfinite(out).all():
            bad = [f"[{j}]" if len(shape) == 1 else f"[{i}][{j}]"
                   for i, j in np.argwhere(~np.isfinite(out))]
            self.fail(where, f"contains NaN or infinity at {', '.join(bad)}")
        return out.reshape(shape)

    def _entries(self, rows: list[list[Any]], where: str, shape: tuple[int, ...]) -> np.ndarray:
        """``rows`` as float64, entry by entry, refusing the first that is not a number
        or is beyond float range."""
        out = np.empty((len(rows), shape[-1]), dtype=np.float64)
        for i, row in enumerate(rows):
            for j, x in enumerate(row):
                entry = f"[{j}]" if len(shape) == 1 else f"[{i}][{j}]"
                if not _is_number(x):
                    self.fail(where, f"entry {entry} must be a number, got {describe_value(x)}")
                try:
                    out[i, j] = x
                except OverflowError:
                    self.fail(where, f"entry {entry} is too large, got {describe_value(x)}")
        return out


def _is_number(x: Any) -> bool:
    """A real number that is not a boolean (JSON ``true`` is not 1 here)."""
    if type(x) is float or type(x) is int:
        return True
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _shape_of(value: Any) -> str:
    if not isinstance(value, list):
        return describe_value(value)
    lengths = {len(r) if isinstance(r, list) else None for r in value}
    if len(lengths) == 1 and None not in lengths:
        return str([len(value), lengths.pop()])
    if lengths == {None}:
        return str([len(value)])
    return "a ragged list"


def join_path(where: str, key: str) -> str:
    return key if where == "$" else f"{where}.{key}"


def short_repr(value: Any) -> str:
    """``repr`` of a short scalar; :func:`describe_value` of anything long or nested."""
    if isinstance(value, (bool, float)) or value is None \
            or (isinstance(value, int) and value.bit_length() <= 64) \
            or (isinstance(value, str) and len(value) < 40):
        return repr(value)
    return describe_value(value)


def describe_value(value: Any) -> str:
    """How a JSON value reads in a message (short, never the whole of a huge value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}" if len(value) < 40 else "a string"
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)
