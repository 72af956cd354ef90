"""What the new-list page shows of an upload before it starts: the detected layout (email
column, header row, XLSX sheet), the first rows and the cost (blocking: run in a thread).

Detection is the pipeline's own (tabular.detect_layout, with the column, sheet and header
row the customer chose), so what the preview shows is what intake will read; the cost is the one
intake reserves (pipeline.cost.unique_valid_addresses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from mailvet.pipeline.cost import unique_valid_addresses
from mailvet.tabular import FileLayout, XlsxLimits, detect_layout
from mailvet.tabular.records import DATA, iter_records
from mailvet.tabular.workbook import Workbooks, borrowed
from mailvet.tabular.xlsx import cell_str

PREVIEW_ROWS = 10
MAX_PREVIEW_CELL = 200  # characters of a cell shown
MAX_PREVIEW_COLUMNS = 50
HEADER_CHOICES = 10  # the header row can be any of the first ten records, or none


class Column(msgspec.Struct, frozen=True):
    number: int  # 1-based, what the column choice sends (detect_layout takes it)
    label: str


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    sheets: list[str]
    sheet: str | None
    has_header: bool
    header_row: int  # 1-based number of the header record (0: no header)
    header_rows: list[int]  # what the header choice offers (0: none, then 1 ...)
    header: list[str]
    email_column: int  # 1-based
    columns: list[Column]
    rows: list[list[str]]
    cost: int


def build_preview(
    path: Path,
    *,
    filename: str,
    email_column: str | None,
    sheet: str | None,
    limits: XlsxLimits | None = None,
    header_row: int | None = None,
) -> Preview:
    """InputError (one line, for the page) when the file cannot be read as a list."""
    with Workbooks() as books:
        layout = detect_layout(path, email_column, filename, sheet, limits, books, header_row)
        sheets: list[str] = []
        if layout.kind == "xlsx":
            with borrowed(books, path, filename, limits) as book:
                sheets = book.ordered_sheets()
        rows = _first_rows(path, layout, books)
    cost = unique_valid_addresses(path, layout)
    width = min(MAX_PREVIEW_COLUMNS, max([len(layout.header), *(len(row) for row in rows), 1]))
    columns = [
        Column(i + 1, _label(i, layout.header[i] if i < len(layout.header) else ""))
        for i in range(max(width, layout.email_index + 1))
    ]
    return Preview(
        kind=layout.kind,
        sheets=sheets,
        sheet=layout.sheet,
        has_header=layout.has_header,
        header_row=layout.skip_records if layout.has_header else 0,
        header_rows=list(range(HEADER_CHOICES + 1)),
        header=[_shown(cell) for cell in layout.header[:MAX_PREVIEW_COLUMNS]],
        email_column=layout.email_index + 1,
        columns=columns,
        rows=[row[:width] for row in rows],
        cost=cost,
    )


def _first_rows(path: Path, layout: FileLayout, books: Workbooks) -> list[list[str]]:
    rows: list[list[str]] = []
    records = iter_records(path, layout, pad=False, books=books)
    try:
        for role, cells in records:
            if role == DATA:
                rows.append([_shown(cell) for cell in cells[:MAX_PREVIEW_COLUMNS]])
                if len(rows) >= PREVIEW_ROWS:
                    break
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
    return rows


def _shown(cell: Any) -> str:
    text = cell_str(cell) if cell is not None else ""
    return text if len(text) <= MAX_PREVIEW_CELL else text[: MAX_PREVIEW_CELL - 1] + "…"


def _label(index: int, name: str) -> str:
    name = _shown(name).strip()
    return f"Column {index + 1}: {name}" if name else f"Column {index + 1}"
