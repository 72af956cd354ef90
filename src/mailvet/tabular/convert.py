"""A finished result written in the other kind, its rows filtered on the way: the keyed
API's `GET /api/v1/jobs/{id}/results?format=` (services/api_jobs.py) for a result stored as
the other kind (a CSV or TXT list's result is CSV, an XLSX list's XLSX).

Which rows (as tabular.segments writes a segment): the records before the first data row
(preamble, header) as they are, then the data rows whose status is in `keep` (None: every
one); blank records after the first data row are dropped.  A data row is one that carries
the verdict cells (domain.verdict.RESULT_COLUMNS): in a CSV result the status and reason
`len(RESULT_COLUMNS)` cells from its end, in an XLSX result the rightmost pair of cells
that reads (status, reason).

- XLSX → CSV (:func:`xlsx_to_csv`): the address sheet's rows (read in bounded memory by
  tabular.workbook), as a fresh CSV as write.py writes an XLSX list's CSV result (UTF-8, no
  BOM, csv.writer's quoting, ``\\r\\n``), cells as a spreadsheet shows them
  (xlsx.cell_str); a data row gets all its verdict cells (the XLSX result leaves the empty
  ones out).  Every text cell is formula-safe (render.formula_safe): in the workbook it was
  text, in a CSV a spreadsheet program would run it.
- CSV → XLSX (:func:`csv_to_xlsx`): the records of a CSV result, read in its own encoding
  and dialect, as the one sheet of a new workbook whose every cell is an inline string
  (xlsx_result.inline_cell: text, never a formula; a line break in a cell is read back
  as ``\n``, as XML has it), streamed a batch of rows at a time.
  A workbook holds MAX_ROWS rows of MAX_COLUMNS cells of MAX_CELL_CHARS characters: a
  result past any of them is :class:`TooBigForXlsx` (nothing is written), never a file a
  spreadsheet program cannot open.

Memory is bounded by a batch of rows (and the XLSX reader's shared strings) whatever the
size of the result.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any
from xml.sax.saxutils import quoteattr

import msgspec

from mailvet.domain.verdict import RESULT_COLUMNS
from mailvet.tabular.csv_cutter import csv_records
from mailvet.tabular.encoding import output_encoding
from mailvet.tabular.layout import FileLayout
from mailvet.tabular.render import formula_safe
from mailvet.tabular.segments import csv_verdict, xlsx_verdict
from mailvet.tabular.workbook import MAX_COLUMNS, MAX_ROWS, READ_PIECE, XlsxLimits, column_letters
from mailvet.tabular.xlsx import cell_str, limits_of, sheet_rows, used_width
from mailvet.tabular.xlsx_result import inline_cell

__all__ = [
    "MAX_CELL_CHARS",
    "TooBigForXlsx",
    "csv_to_xlsx",
    "sheet_title",
    "write_sheet",
    "xlsx_to_csv",
]

MAX_CELL_CHARS = 32_767  # the longest text a cell holds (Excel's limit)
WRITE_ROWS = 1024  # rows joined per write() call
# what reading an XLSX result may inflate beyond its list's limit (MAILVET_MAX_XLSX_
# EXPANDED_BYTES, kept in the layout): the verdict cells added to each of at most MAX_ROWS
# rows. The result is our own file, written from a workbook that was read within the limit.
_ADDED_PER_ROW = 4096

_WIDTH = len(RESULT_COLUMNS)


class TooBigForXlsx(ValueError):
    """The result does not fit in an XLSX workbook; str(exc) says what is over which limit."""


# --- which rows --------------------------------------------------------------------------------


def _kept(
    rows: Iterable[Sequence[Any]],
    head: int,
    status_of: Callable[[Sequence[Any]], tuple[int, str] | None],
    keep: frozenset[str] | None,
) -> Iterator[tuple[Sequence[Any], int | None]]:
    """(row, the column of its status; None for a row before the data) of the rows
    written (see the module docstring): the first `head` records as they are, then the
    rest by their status."""
    seen_data = False
    for index, row in enumerate(rows):
        if index < head:
            yield row, None
            continue
        found = status_of(row) if row else None
        if found is None:
            if not seen_data and row:
                yield row, None  # the header of a TXT or XLSX list's result
            continue
        seen_data = True
        column, status = found
        if keep is None or status in keep:
            yield row, column


# --- XLSX -> CSV -------------------------------------------------------------------------------


def _result_limits(layout: FileLayout) -> XlsxLimits:
    limits = limits_of(layout)
    return msgspec.structs.replace(
        limits,
        max_cell_bytes=layout.result_max_cell,
        max_expanded_bytes=limits.max_expanded_bytes + MAX_ROWS * _ADDED_PER_ROW,
    )


def _csv_cell(value: Any) -> str:
    return formula_safe(value) if isinstance(value, str) else cell_str(value)


def xlsx_to_csv(
    result: Path, out: Path, *, layout: FileLayout, keep: frozenset[str] | None = None
) -> int:
    """Write the rows of the XLSX `result` (its list's `layout`) whose status is in `keep`
    to `out` as CSV; the data rows written. Nothing is left at `out` when it raises."""
    written = 0
    try:
        with (
            sheet_rows(result, layout.sheet, result.name, _result_limits(layout)) as rows,
            open(out, "w", encoding="utf-8", newline="") as sink,
        ):
            writer = csv.writer(sink, lineterminator="\r\n")
            for row, column in _kept(rows, 0, xlsx_verdict, keep):
                cells = list(row[: used_width(row)])
                if column is not None:  # a data row: all its verdict cells
                    written += 1
                    cells += [None] * (column + _WIDTH - len(cells))
                writer.writerow([_csv_cell(value) for value in cells])
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return written


# --- CSV -> XLSX -------------------------------------------------------------------------------


def _csv_read_layout(layout: FileLayout) -> FileLayout:
    """How to read the CSV result of a list of `layout` (tabular.write_result): a CSV
    list's in its encoding and BOM, a TXT or XLSX list's as write.py writes it anew."""
    if layout.kind == "csv":
        codec, bom = output_encoding(layout)
        return msgspec.structs.replace(
            layout, encoding=codec, bom=bool(bom), max_cell=layout.result_max_cell
        )
    return FileLayout(kind="csv", encoding="utf-8", max_cell=layout.result_max_cell, skip_records=0)


def sheet_title(filename: str) -> str:
    """A sheet's name for a list called `filename`: its stem without the characters a
    sheet's name may not hold, at most 31 characters, no apostrophe at either end, not
    "History" (Excel's rules); "Sheet1" if none is left."""
    stem = PurePosixPath(filename.replace("\\", "/")).stem
    kept = "".join(c for c in stem if c.isprintable() and c not in "[]:*?/\\")
    title = kept.strip().strip("'")[:31].strip().strip("'").strip()  # no ' at either end
    if title.casefold() == "history":  # a name Excel keeps for itself
        return "Sheet1"
    return title or "Sheet1"


_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_CONTENT_TYPES = (
    _DECLARATION + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.styles+xml"/>'
    "</Types>"
)
_PACKAGE_RELS = (
    _DECLARATION + f'<Relationships xmlns="{_RELS}">'
    f'<Relationship Id="rId1" Type="{_DOC_RELS}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = (
    _DECLARATION + f'<Relationships xmlns="{_RELS}">'
    f'<Relationship Id="rId1" Type="{_DOC_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_DOC_RELS}/styles" Target="styles.xml"/>'
    "</Relationships>"
)
_STYLES = (
    _DECLARATION + f'<styleSheet xmlns="{_MAIN}">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_SHEET_START = (_DECLARATION + f'<worksheet xmlns="{_MAIN}"><sheetData>').encode()
_SHEET_END = b"</sheetData></worksheet>"


def _workbook_xml(title: str) -> str:
    return (
        _DECLARATION + f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC_RELS}"><sheets>'
        f'<sheet name={quoteattr(title)} sheetId="1" r:id="rId1"/></sheets></workbook>'
    )


class _Columns:
    """Column letters by 1-based number, made once each."""

    def __init__(self) -> None:
        self._letters: list[str] = [""]

    def __getitem__(self, number: int) -> str:
        while len(self._letters) <= number:
            self._letters.append(column_letters(len(self._letters)))
        return self._letters[number]


def _units(text: str) -> int:
    """The length of `text` as Excel counts it: UTF-16 code units (a character outside the
    Basic Multilingual Plane, an emoji, counts two)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _row_xml(number: int, cells: Sequence[str], columns: _Columns) -> bytes:
    if len(cells) > MAX_COLUMNS:
        raise TooBigForXlsx(
            f"row {number} has {len(cells):,} cells; an XLSX sheet holds {MAX_COLUMNS:,} columns"
        )
    ref = str(number)
    parts = [f'<row r="{ref}">'.encode()]
    for column, text in enumerate(cells, 1):
        if not text:
            continue
        if len(text) > MAX_CELL_CHARS // 2 and _units(text) > MAX_CELL_CHARS:
            raise TooBigForXlsx(
                f"row {number} has a cell of {_units(text):,} characters; an XLSX cell holds"
                f" {MAX_CELL_CHARS:,}"
            )
        parts.append(inline_cell(columns[column] + ref, text))
    parts.append(b"</row>")
    return b"".join(parts)


def _write_sheet(rows: Iterable[Sequence[str]], sink: IO[bytes]) -> None:
    columns = _Columns()
    sink.write(_SHEET_START)
    batch: list[bytes] = []
    for number, cells in enumerate(rows, 1):
        if number > MAX_ROWS:
            raise TooBigForXlsx(
                f"the result has more than {MAX_ROWS:,} rows, the most an XLSX sheet holds"
            )
        batch.append(_row_xml(number, cells, columns))
        if len(batch) >= WRITE_ROWS:
            sink.write(b"".join(batch))
            batch.clear()
    sink.write(b"".join(batch))
    sink.write(_SHEET_END)


def write_sheet(out: Path, title: str, rows: Iterable[Sequence[str]]) -> None:
    """A workbook of one sheet called `title` holding `rows` as text cells; TooBigForXlsx
    (and nothing at `out`) for rows a sheet cannot hold."""
    try:
        with tempfile.TemporaryFile(dir=out.parent, prefix=".mailvet-sheet-") as sheet:
            _write_sheet(rows, sheet)
            size = sheet.tell()
            sheet.seek(0)
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as book:
                book.writestr("[Content_Types].xml", _CONTENT_TYPES)
                book.writestr("_rels/.rels", _PACKAGE_RELS)
                book.writestr("xl/workbook.xml", _workbook_xml(title))
                book.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
                book.writestr("xl/styles.xml", _STYLES)
                info = zipfile.ZipInfo("xl/worksheets/sheet1.xml", time.localtime()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                with book.open(info, "w", force_zip64=size > 1 << 30) as part:
                    shutil.copyfileobj(sheet, part, READ_PIECE)
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def csv_to_xlsx(
    result: Path,
    out: Path,
    *,
    layout: FileLayout,
    keep: frozenset[str] | None = None,
    title: str = "Sheet1",
) -> int:
    """Write the rows of the CSV `result` (its list's `layout`) whose status is in `keep`
    to `out` as a workbook of one sheet called `title`; the data rows written.
    TooBigForXlsx when they do not fit; nothing is left at `out` when it raises."""
    read = _csv_read_layout(layout)
    head = layout.skip_records if layout.kind == "csv" else 0
    written = 0

    def rows() -> Iterator[Sequence[str]]:
        nonlocal written
        with csv_records(result, read) as records:
            for row, column in _kept(records, head, csv_verdict, keep):
                written += column is not None
                yield row

    write_sheet(out, title, rows())
    return written
