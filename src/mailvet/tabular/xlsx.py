"""XLSX sheets as the rest of the package sees them: the rows of a sheet (read by
mailvet.tabular.workbook in bounded memory), the first rows the column search looks at,
their width, and a cell's text as a spreadsheet shows it.  (An XLSX list's XLSX result is
its own workbook with cells added: mailvet.tabular.xlsx_result; a CSV or TXT list has a
CSV result only.)"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailvet.tabular.layout import HEADER_RECORDS, FileLayout
from mailvet.tabular.workbook import Workbook, Workbooks, XlsxLimits, borrowed

XLSX_SCAN_ROWS = 1000  # rows read at most (blank ones included) to find 20 non-blank


def cell_str(value: Any) -> str:
    """Text of an XLSX cell value as a spreadsheet shows it (None → "")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    return str(value)


def limits_of(layout: FileLayout) -> XlsxLimits:
    """The limits detection kept in an XLSX list's layout (what every later reader uses)."""
    return XlsxLimits(max_cell_bytes=layout.max_cell, max_expanded_bytes=layout.max_expanded)


@contextmanager
def sheet_rows(
    path: Path,
    sheet: str | None,
    name: str,
    limits: XlsxLimits | None = None,
    books: Workbooks | None = None,
) -> Iterator[Iterator[Sequence[Any]]]:
    """The rows of the sheet (lists of values; no padding, [] for missing rows), read in
    bounded memory (see mailvet.tabular.workbook); from the opening `books` keeps, if given."""
    with borrowed(books, path, name, limits) as book:
        yield book.rows(sheet)


def head_records(book: Workbook, sheet: str) -> list[tuple[int, list[str]]]:
    """The first HEADER_RECORDS non-empty rows of a sheet (within XLSX_SCAN_ROWS rows), with
    their row index, as text, trailing empty cells cut: what the column search looks at."""
    return [
        (index, [cell_str(v) for v in row[: used_width(row)]])
        for index, row in _head_rows(book.rows(sheet))
    ]


def sample_width(rows: Iterable[Sequence[Any]]) -> int:
    """Widest of the first HEADER_RECORDS non-empty rows (within XLSX_SCAN_ROWS rows;
    trailing empty cells cut): where a header-less sheet's new cells start."""
    return max((used_width(row) for _, row in _head_rows(rows)), default=0)


def _head_rows(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[int, Sequence[Any]]]:
    """(index, row) of the first HEADER_RECORDS non-empty rows within XLSX_SCAN_ROWS rows."""
    non_blank = (
        (index, row)
        for index, row in enumerate(itertools.islice(rows, XLSX_SCAN_ROWS))
        if not is_blank_row(row)
    )
    return itertools.islice(non_blank, HEADER_RECORDS)


def used_width(row: Sequence[Any]) -> int:
    """The row's length without its trailing empty cells (None)."""
    end = len(row)
    while end and row[end - 1] is None:
        end -= 1
    return end


def is_blank_row(row: Sequence[Any]) -> bool:
    return all(value is None for value in row)
