"""Writing a whole result file (:func:`write_result`): CSV/TXT → CSV through the chunk
renderer, XLSX → CSV from the sheet's rows, XLSX → XLSX as the input workbook with the
cells added (mailvet.tabular.xlsx_result).  A CSV or TXT list has a CSV result only."""

from __future__ import annotations

import contextlib
import csv
import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from mailvet.tabular.chunks import text_parts
from mailvet.tabular.encoding import OUTPUT_ERRORS, output_encoding
from mailvet.tabular.layout import FileLayout
from mailvet.tabular.records import BLANK, DATA, HEADER, iter_records, role_at
from mailvet.tabular.render import formula_safe, render_chunk, render_header
from mailvet.tabular.workbook import Workbooks, borrowed
from mailvet.tabular.xlsx import cell_str, is_blank_row, limits_of, sample_width
from mailvet.tabular.xlsx_result import rewrite_workbook

WRITE_BATCH = 2048  # output records joined per write() call


CSV_NAMES = (".csv", ".txt", ".tsv")
XLSX_NAMES = (".xlsx", ".xlsm")


def kind_of_name(name: str | None) -> Literal["csv", "xlsx"] | None:
    """The result kind an output file name asks for (by its suffix), None if it names none."""
    suffix = Path(name.strip()).suffix.lower() if name else ""
    if suffix in CSV_NAMES:
        return "csv"
    if suffix in XLSX_NAMES:
        return "xlsx"
    return None


def input_is_xlsx(path: Path) -> bool:
    """Is the file a zip (an XLSX workbook, as detect_layout sees it) or named like one?"""
    if Path(path).suffix.lower() in XLSX_NAMES:
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def result_kind(layout: FileLayout, wanted: str | None) -> Literal["csv", "xlsx"]:
    """The kind of a list's result: `wanted` is a kind ("csv", "xlsx") or an output file
    name whose suffix says one (kind_of_name); XLSX in → XLSX unless CSV is wanted; CSV/TXT
    in → CSV always (callers refuse an XLSX wanted for them first, see the CLI)."""
    if layout.kind != "xlsx":
        return "csv"
    if wanted in ("csv", "xlsx"):
        return "csv" if wanted == "csv" else "xlsx"
    return kind_of_name(wanted) or "xlsx"


_MISSING: Any = object()


class _Extras:
    """The items of extra_rows handed out in order, one per data row: ValueError when they
    run out (take) or when some are left at the end (finish); `written` counts those given."""

    def __init__(self, extra_rows: Iterable[Sequence[Any]]) -> None:
        self._items = iter(extra_rows)
        self.written = 0

    def take(self) -> Sequence[Any]:
        more = next(self._items, _MISSING)
        if more is _MISSING:
            raise _too_few(self.written)
        self.written += 1
        return more

    def take_many(self, rows: int) -> list[Sequence[Any]]:
        cells = list(itertools.islice(self._items, rows))
        if len(cells) < rows:
            raise _too_few(self.written + len(cells))
        self.written += rows
        return cells

    def finish(self) -> int:
        if next(self._items, _MISSING) is not _MISSING:
            raise _too_many(self.written)
        return self.written


def _too_few(rows: int) -> ValueError:
    return ValueError(
        f"extra_rows has fewer items than the file's data rows (ran out after {rows})"
    )


def _too_many(rows: int) -> ValueError:
    return ValueError(f"extra_rows has more items than the file's {rows} data rows")


def write_result(
    in_path: Path,
    layout: FileLayout,
    out_path: Path,
    extra_header: Sequence[str],
    extra_rows: Iterable[Sequence[str]],
    out_kind: Literal["csv", "xlsx"] | None = None,
    books: Workbooks | None = None,
) -> int:
    """Stream the input again and write every record, in order, with the extra cells
    appended to the header and to every data row; return the data rows written.

    ``extra_rows`` is consumed lazily, one item per data row (WRITE_BATCH rows at a
    time); ValueError if it yields fewer or more items than there are data rows (the
    partial output is removed), or if XLSX is asked for a CSV or TXT list.  CSV/TXT → CSV
    is the chunked rendering (render_header, render_chunk) of the whole file, which keeps
    a CSV input's bytes (see the package docstring).
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.resolve() == out_path.resolve():
        raise ValueError("write_result cannot overwrite its input file")
    kind = out_kind or result_kind(layout, None)
    if kind == "xlsx" and layout.kind != "xlsx":
        raise ValueError(f"a {layout.kind.upper()} list has a CSV result only, not XLSX")
    extras = _Extras(extra_rows)
    try:
        if layout.kind != "xlsx":
            _write_text(in_path, layout, out_path, extra_header, extras)
        else:
            # the workbook is opened once (width and rows); a caller's `books` stays open
            keeper = contextlib.nullcontext(books) if books is not None else Workbooks()
            with keeper as kept:
                if kind == "xlsx":
                    _write_workbook(in_path, layout, out_path, extra_header, extras, kept)
                else:
                    _write_csv_plain(
                        out_path, _csv_rows(in_path, layout, extra_header, extras, kept)
                    )
        return extras.finish()
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise


def _write_text(
    in_path: Path,
    layout: FileLayout,
    out_path: Path,
    extra_header: Sequence[str],
    extras: _Extras,
) -> None:
    """CSV/TXT → CSV: the header part and chunks of WRITE_BATCH rows, rendered and encoded
    exactly as the pipeline's workers do it."""
    codec, bom = output_encoding(layout)
    with (
        contextlib.closing(text_parts(in_path, layout, WRITE_BATCH, True)) as parts,
        open(out_path, "wb") as out,
    ):
        header, _ = next(parts)
        out.write(bom + render_header(header, layout, extra_header).encode(codec, OUTPUT_ERRORS))
        for text, rows in parts:
            cells = extras.take_many(rows)
            out.write(render_chunk(text, layout, cells).encode(codec, OUTPUT_ERRORS))


def _write_workbook(
    in_path: Path,
    layout: FileLayout,
    out_path: Path,
    extra_header: Sequence[str],
    extras: _Extras,
    books: Workbooks,
) -> None:
    """XLSX → XLSX: the input workbook with the cells added to its address sheet and every
    other part as it was (mailvet.tabular.xlsx_result), the workbook opened once."""

    skip, take = layout.skip_records, extras.take

    def role_of(index: int, values: list[Any]) -> int:
        if is_blank_row(values):
            return BLANK
        return DATA if index >= skip else role_at(layout, index)

    def cells_for(role: int) -> Sequence[Any]:
        return extra_header if role == HEADER else list(map(str, take()))

    with borrowed(books, in_path, in_path.name, limits_of(layout)) as book:
        width = len(layout.header) if layout.has_header else sample_width(book.rows(layout.sheet))
        rewrite_workbook(book, out_path, layout.sheet, role_of, cells_for, width)


def _csv_rows(
    in_path: Path,
    layout: FileLayout,
    extra_header: Sequence[str],
    extras: _Extras,
    books: Workbooks,
) -> Iterator[Iterable[Any]]:
    """XLSX → CSV: the rows of the sheet, in order, the extra names appended to the header
    and an item of extras, formula-safe (render.formula_safe), to every data row; the
    workbook's own cells as they are."""
    for role, cells in iter_records(in_path, layout, True, books):
        if role == DATA:
            yield itertools.chain(cells, map(formula_safe, extras.take()))
        elif role == HEADER:
            yield itertools.chain(cells, extra_header)
        else:
            yield cells


def _write_csv_plain(out_path: Path, rows: Iterable[Iterable[Any]]) -> None:
    """A fresh CSV in UTF-8, cells as a spreadsheet shows them (XLSX inputs; CSV and TXT
    inputs go through _write_text)."""
    with open(out_path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        for row in rows:
            writer.writerow(list(map(cell_str, row)))
