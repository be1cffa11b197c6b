"""Reading the small CSV tables of a recording (tracker samples, image timestamps) with
messages that name the file, the line number and the column.

A table has a header row; columns are found by name (any order, extra columns ignored),
blank lines are skipped, and cells are stripped of surrounding spaces.
"""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gs_contract.errors import InputError
from gs_contract.files import regular_file_problem


@dataclass(frozen=True)
class CsvRow:
    """One data row: its cells by column name and the physical line it ends on."""

    path: Path
    line: int
    cells: dict[str, str]

    def fail(self, column: str | None, problem: str) -> InputError:
        """An :class:`InputError` naming the file, this line and ``column``."""
        where = f"line {self.line}" + (f", column {column}" if column else "")
        return InputError(self.path, where, problem)

    def text(self, column: str) -> str:
        """The non-empty text of ``column``."""
        value = self.cells[column]
        if not value:
            raise self.fail(column, "empty cell")
        return value

    def number(self, column: str) -> float:
        """The finite number in ``column``."""
        value = self.text(column)
        try:
            out = float(value)
        except ValueError:
            raise self.fail(column, f"expected a number, got {value!r}") from None
        if not math.isfinite(out):
            raise self.fail(column, f"expected a finite number, got {value!r}")
        return out


def read_csv_rows(path: Path, columns: Sequence[str], *,
                  header_line: int = 1) -> Iterator[CsvRow]:
    """The data rows of the CSV table at ``path`` whose header holds ``columns``.

    Args:
        path: the CSV file.
        columns: the column names every row must have (more are allowed and ignored).
        header_line: the physical line of the header (earlier lines are skipped).

    Raises:
        InputError: the file is missing or not a regular file, cannot be decoded, has no
            header or lacks a column, or a row has another number of cells than the header.
    """
    with csv_reader(path) as reader:
        yield from _rows(path, reader, columns, header_line)


@contextlib.contextmanager
def csv_reader(path: Path) -> Iterator[Any]:
    """A ``csv.reader`` over ``path`` (UTF-8, a BOM allowed) whose failures while the
    block reads it become one :class:`InputError` naming the file.

    Raises:
        InputError: the file is missing or not a regular file, not UTF-8, not CSV, or
            cannot be read.
    """
    problem = regular_file_problem(path)
    if problem is not None:
        raise InputError(path, None, problem)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            yield csv.reader(handle)
    except UnicodeDecodeError as exc:
        raise InputError(path, None, f"not UTF-8 text: {exc.reason}") from None
    except csv.Error as exc:
        raise InputError(path, None, f"not a CSV table: {exc}") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None


def _rows(path: Path, reader: Iterator[list[str]], columns: Sequence[str],
          header_line: int) -> Iterator[CsvRow]:
    header: list[str] | None = None
    for cells in reader:
        line = reader.line_num  # type: ignore[attr-defined]
        if line < header_line or not any(c.strip() for c in cells):
            continue
        cells = [c.strip() for c in cells]
        if header is None:
            header = cells
            missing = [c for c in columns if c not in header]
            if missing:
                raise InputError(path, f"line {line}",
                                 f"header lacks column {missing[0]!r}; expected columns "
                                 f"{', '.join(columns)}, got {', '.join(header)}")
            continue
        if len(cells) != len(header):
            raise InputError(path, f"line {line}",
                             f"{len(cells)} cells, but the header has {len(header)} columns")
        yield CsvRow(path, line, dict(zip(header, cells, strict=True)))
    if header is None:
        raise InputError(path, None, f"empty: expected a header with columns "
                                     f"{', '.join(columns)}")
