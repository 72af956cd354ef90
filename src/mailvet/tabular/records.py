"""Whole-file reading: every record of a list with its role (preamble, header, blank,
data), the email cell of every data row (:func:`iter_emails`) and their number
(:func:`count_rows`)."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mailvet.tabular.chunks import text_parts
from mailvet.tabular.csv_cutter import csv_records
from mailvet.tabular.layout import FileLayout
from mailvet.tabular.reading import text_lines
from mailvet.tabular.workbook import Workbooks
from mailvet.tabular.xlsx import (
    cell_str,
    is_blank_row,
    limits_of,
    sample_width,
    sheet_rows,
    used_width,
)

PRE, HEADER, BLANK, DATA = 0, 1, 2, 3  # record roles of the generic record stream


def role_at(layout: FileLayout, index: int) -> int:
    """PRE, HEADER or DATA: the role of a non-blank record, `index` being its number from 0
    (blank records counted)."""
    if index < layout.skip_records:
        header = layout.has_header and index == layout.skip_records - 1
        return HEADER if header else PRE
    return DATA


def iter_records(
    path: Path, layout: FileLayout, pad: bool = True, books: Workbooks | None = None
) -> Iterator[tuple[int, Sequence[Any]]]:
    """(role, cells) of every record; XLSX cells keep their types.  With pad, data rows
    of XLSX and CSV inputs are padded to the header width (header-less XLSX: to the
    widest of the first rows) so that appended cells line up."""
    skip = layout.skip_records
    header_at = skip - 1 if layout.has_header else -1
    if layout.kind == "xlsx":
        if not pad:
            width = 0
        elif layout.has_header:
            width = len(layout.header)
        else:
            with sheet_rows(path, layout.sheet, path.name, limits_of(layout), books) as rows:
                width = sample_width(rows)
        with sheet_rows(path, layout.sheet, path.name, limits_of(layout), books) as rows:
            pending = 0  # empty rows are emitted only once a non-empty row follows
            for index, row in enumerate(rows):
                if is_blank_row(row):
                    pending += 1
                    continue
                for _ in range(pending):
                    yield BLANK, ()
                pending = 0
                role = DATA if index >= skip else role_at(layout, index)
                yield role, fit_row(row, 0 if role == PRE else width)
        return
    if layout.kind == "txt":
        with text_lines(path, layout) as lines:
            for index, line in enumerate(lines):
                text = line.strip()
                if index < skip:
                    yield (HEADER, [text]) if index == header_at else (PRE, [text])
                else:
                    yield (DATA, [text]) if text else (BLANK, ())
        return
    width = len(layout.header)
    with csv_records(path, layout) as reader:
        for index, row in enumerate(reader):
            if index < skip:
                yield (HEADER, row) if index == header_at else (PRE, row)
            elif row:
                yield DATA, pad_row(row, width)
            else:
                yield BLANK, ()


def pad_row(row: Sequence[Any], width: int) -> Sequence[Any]:
    if len(row) >= width:
        return row
    return list(row) + [None] * (width - len(row))


def fit_row(row: Sequence[Any], width: int) -> Sequence[Any]:
    """Pad an XLSX row to width; drop empty cells beyond it (styled but empty cells
    make openpyxl return trailing Nones, which would push the extra columns right)."""
    if len(row) > width and row[-1] is None:
        return row[: max(width, used_width(row))]
    return pad_row(row, width)


def iter_emails(path: Path, layout: FileLayout) -> Iterator[str]:
    """The email cell of every data row, in order, stripped; "" if the row is too short."""
    path = Path(path)
    idx = layout.email_index
    if layout.kind == "csv":
        with csv_records(path, layout) as reader:
            collections.deque(itertools.islice(reader, layout.skip_records), maxlen=0)
            for row in reader:
                try:
                    yield row[idx].strip()
                except IndexError:
                    if row:
                        yield ""
    elif layout.kind == "txt":
        with text_lines(path, layout) as lines:
            for line in itertools.islice(lines, layout.skip_records, None):
                text = line.strip()
                if text:
                    yield text
    else:
        for role, cells in iter_records(path, layout, pad=False):
            if role == DATA:
                yield cell_str(cells[idx]).strip() if idx < len(cells) else ""


# rows per part when the record cutter counts (a few MiB of text at a time)
COUNT_PART_ROWS = 50_000


def count_rows(path: Path, layout: FileLayout, books: Workbooks | None = None) -> int:
    """Number of data rows (== number of items iter_emails yields).

    CSV: the record cutter's count (the rows of iter_text_chunks, which find records as
    csv.reader does and reject the files it rejects, with the same messages), about three
    times faster than csv.reader, which splits every field: intake counts before anything
    else can start."""
    path = Path(path)
    if layout.kind == "csv":
        return sum(rows for _, rows in text_parts(path, layout, COUNT_PART_ROWS, False))
    if layout.kind == "txt":
        with text_lines(path, layout) as lines:
            rest = itertools.islice(lines, layout.skip_records, None)
            return sum(map(bool, map(str.strip, rest)))
    return sum(1 for role, _ in iter_records(path, layout, False, books) if role == DATA)
