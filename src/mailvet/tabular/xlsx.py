"""XLSX workbooks: the rows of a sheet (read by mailvet.tabular.workbook in bounded memory),
a cell's text as a spreadsheet shows it, and a fresh one-sheet workbook (write_sheet, for
a CSV/TXT list asked for as XLSX; an XLSX list's result is its own workbook with cells
added, mailvet.tabular.xlsx_result)."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailvet.tabular.layout import HEADER_RECORDS, FileLayout
from mailvet.tabular.workbook import Workbook, Workbooks, XlsxLimits, borrowed, open_workbook

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


def sheet_title(path: Path, name: str) -> str:
    """Name of the sheet shown when the workbook opens."""
    with open_workbook(path, name) as book:
        return book.sheet_part(None)[0]


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
    records: list[tuple[int, list[str]]] = []
    for index, row in enumerate(itertools.islice(book.rows(sheet), XLSX_SCAN_ROWS)):
        if not is_blank_row(row):
            end = len(row)
            while end and row[end - 1] is None:
                end -= 1
            records.append((index, [cell_str(v) for v in row[:end]]))
            if len(records) >= HEADER_RECORDS:
                break
    return records


def sample_width(rows: Iterable[Sequence[Any]]) -> int:
    """Widest of the first HEADER_RECORDS non-empty rows (within XLSX_SCAN_ROWS rows;
    trailing empty cells cut): where a header-less sheet's new cells start."""
    width = seen = 0
    for row in itertools.islice(rows, XLSX_SCAN_ROWS):
        if not is_blank_row(row):
            end = len(row)
            while end and row[end - 1] is None:
                end -= 1
            width = max(width, end)
            seen += 1
            if seen >= HEADER_RECORDS:
                break
    return width


def is_blank_row(row: Sequence[Any]) -> bool:
    return all(value is None for value in row)


_XLSX_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


def write_sheet(out_path: Path, title: str, rows: Iterable[Iterable[Any]]) -> None:
    """A workbook of one sheet holding `rows`, streamed through a write-only workbook (one
    row in memory at a time).  Characters XLSX cannot hold are dropped; text that starts
    with "=" stays text.  If `rows` raises, the workbook is still saved, which closes the
    sheet and removes openpyxl's temporary file; the caller removes the partial output."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=title)

    def value(v: Any) -> Any:
        if isinstance(v, str):
            if _XLSX_ILLEGAL.search(v):
                v = _XLSX_ILLEGAL.sub("", v)
            if v.startswith("=") and len(v) > 1:  # text, not a formula
                cell = WriteOnlyCell(ws)
                cell.value = v
                cell.data_type = "s"
                return cell
        return v

    try:
        for row in rows:
            ws.append([value(v) for v in row])
    except BaseException:
        with contextlib.suppress(Exception):
            wb.save(out_path)
        raise
    wb.save(out_path)
