"""Segments of a finished result: the rows of one verdict status (or all but undeliverable),
in the result's own format.

A result is the customer's file with the mailvet columns (domain.verdict.RESULT_COLUMNS)
appended to every data row, so a row's status is the cell `len(RESULT_COLUMNS)` from its
end (CSV results always carry all of them), and in an XLSX result the rightmost pair of
cells that reads (status, reason). The records before the first data row (preamble and
header) are kept as they are; blank records after it are dropped.

- CSV: every kept record's raw text, with its own quoting and line ends, in the result's
  encoding and BOM: a segment is byte for byte the lines of the full result it keeps.
- XLSX: the address sheet is written again (openpyxl, write-only) with the kept rows'
  values; the other sheets and the cell styles are not carried over.

The lists area (web/jobs/pages.py) names and titles the segments (web/jobs/labels.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from mailvet.domain.verdict import RESULT_COLUMNS, Reason, Status
from mailvet.tabular import FileLayout, output_encoding
from mailvet.tabular.csv_cutter import CsvCutter
from mailvet.tabular.encoding import open_text

ALL = "all"
EXCEPT_UNDELIVERABLE = "except-undeliverable"
# segment -> the statuses it keeps (ALL: the whole result as stored)
SEGMENTS: dict[str, frozenset[str]] = {
    Status.DELIVERABLE.value: frozenset({Status.DELIVERABLE.value}),
    Status.UNDELIVERABLE.value: frozenset({Status.UNDELIVERABLE.value}),
    Status.RISKY.value: frozenset({Status.RISKY.value}),
    Status.UNKNOWN.value: frozenset({Status.UNKNOWN.value}),
    EXCEPT_UNDELIVERABLE: frozenset(
        {Status.DELIVERABLE.value, Status.RISKY.value, Status.UNKNOWN.value}
    ),
}
_STATUSES = frozenset(status.value for status in Status)
_REASONS = frozenset(reason.value for reason in Reason)
_WIDTH = len(RESULT_COLUMNS)


def is_segment(segment: str) -> bool:
    """Whether `segment` names a download: the whole result (ALL) or one of SEGMENTS."""
    return segment == ALL or segment in SEGMENTS


def write_segment(
    result: Path,
    out: Path,
    *,
    kind: Literal["csv", "xlsx"],
    layout: FileLayout,
    segment: str,
) -> int:
    """Write the rows of `result` in `segment` (one of SEGMENTS) to `out`; the data rows
    kept. `layout`: the input list's (how the result was written)."""
    return write_rows(result, out, kind=kind, layout=layout, keep=SEGMENTS[segment])


def write_rows(
    result: Path,
    out: Path,
    *,
    kind: Literal["csv", "xlsx"],
    layout: FileLayout,
    keep: frozenset[str],
) -> int:
    """Write the rows of `result` whose status is in `keep` (any set of statuses: the API
    combines segments) to `out`, as a segment is written; the data rows kept."""
    if kind == "xlsx":
        return _xlsx_segment(result, out, layout, keep)
    return _csv_segment(result, out, layout, keep)


def _result_layout(layout: FileLayout) -> tuple[FileLayout, str, bytes]:
    """How to read a CSV result: its layout, codec and BOM (tabular.write_result)."""
    if layout.kind == "csv":
        codec, bom = output_encoding(layout)
        read = msgspec.structs.replace(
            layout, encoding=codec, bom=bool(bom), max_cell=layout.result_max_cell
        )
        return read, codec, bom
    # TXT and XLSX lists have a fresh CSV result: UTF-8, no BOM, csv.writer's dialect
    plain = FileLayout(
        kind="csv", encoding="utf-8", max_cell=layout.result_max_cell, skip_records=0
    )
    return plain, "utf-8", b""


def csv_verdict(cells: Sequence[Any]) -> tuple[int, str] | None:
    """(column, status) of a CSV result's record that ends with the verdict cells; None
    for a record that does not (a preamble, a header, a short line)."""
    if len(cells) < _WIDTH:
        return None
    status, reason = cells[-_WIDTH], cells[-_WIDTH + 1]
    if status in _STATUSES and reason in _REASONS:
        return len(cells) - _WIDTH, status
    return None


def xlsx_verdict(row: Sequence[Any]) -> tuple[int, str] | None:
    """(column, status) of an XLSX result's row: its rightmost (status, reason) pair of
    cells (a row's own cells may stop short of the sheet's width); None if it has none."""
    for i in range(len(row) - 2, -1, -1):
        status, reason = row[i], row[i + 1]
        if isinstance(status, str) and status in _STATUSES and reason in _REASONS:
            return i, status
    return None


def _csv_status(text: str, layout: FileLayout) -> str | None:
    cells = next(csv.reader(io.StringIO(text, newline=""), **_dialect(layout)), [])
    found = csv_verdict(cells)
    return None if found is None else found[1]


def _dialect(layout: FileLayout) -> dict[str, Any]:
    return {"delimiter": layout.delimiter, "quotechar": layout.quotechar}


def _csv_segment(result: Path, out: Path, layout: FileLayout, keep: frozenset[str]) -> int:
    read_layout, codec, bom = _result_layout(layout)
    head = layout.skip_records if layout.kind == "csv" else 0
    kept = 0
    seen_data = False
    with open_text(result, read_layout) as lines, open(out, "wb") as sink:
        sink.write(bom)
        cutter = CsvCutter(lines, read_layout)
        index = 0
        while (record := cutter.record()) is not None:
            text, non_blank = record
            index += 1
            if index <= head:
                sink.write(text.encode(codec))
                continue
            status = _csv_status(text, read_layout) if non_blank else None
            if status is None:
                if not seen_data and non_blank:
                    sink.write(text.encode(codec))  # a header of a TXT/XLSX list's result
                continue
            seen_data = True
            if status in keep:
                sink.write(text.encode(codec))
                kept += 1
    return kept


def _xlsx_segment(result: Path, out: Path, layout: FileLayout, keep: frozenset[str]) -> int:
    import openpyxl

    # (a file object: openpyxl refuses a path without an .xlsx-like suffix)
    handle = open(result, "rb")  # noqa: SIM115 - closed below, after the read-only workbook
    source = openpyxl.load_workbook(handle, read_only=True, data_only=False)
    try:
        sheet = source[layout.sheet] if layout.sheet in source.sheetnames else source.active
        target = openpyxl.Workbook(write_only=True)
        written = target.create_sheet(title=sheet.title)
        kept = 0
        seen_data = False
        for cells in sheet.iter_rows():
            row = tuple(cell.value for cell in cells)
            found = xlsx_verdict(row)
            status = None if found is None else found[1]
            if status is None:
                if not seen_data:
                    written.append(_as_stored(written, cells))
                continue
            seen_data = True
            if status in keep:
                written.append(_as_stored(written, cells))
                kept += 1
        target.save(out)
    finally:
        source.close()
        handle.close()
    return kept


def _as_stored(sheet: Any, cells: tuple[Any, ...]) -> list[Any]:
    """The row's values for openpyxl's writer, each written as the kind it was read: the
    writer makes a formula of any text starting with `=`, so a customer's text cell
    `=cmd|' /C calc'!A0` (stored as text, inert) would come out a live formula, and the
    text `#N/A` an error cell; such a cell is written as text again. A formula read stays a
    formula."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ERROR_CODES

    values: list[Any] = []
    for cell in cells:
        value = cell.value
        if (
            isinstance(value, str)
            and cell.data_type == "s"
            and (value.startswith("=") or value in ERROR_CODES)
        ):
            text = WriteOnlyCell(sheet, value=value)
            text.data_type = "s"
            values.append(text)
        else:
            values.append(value)
    return values
