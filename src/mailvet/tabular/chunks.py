"""A CSV/TXT file as chunks of whole records: the text before the first data row
(:func:`header_text`), the chunks after it (:func:`iter_text_chunks`) and the addresses
of one chunk (:func:`chunk_emails`).

The pipeline does the per-row work of CSV and TXT lists in the workers: the
publisher cuts the decoded text into chunks of whole records
(iter_text_chunks), a worker parses its chunk (chunk_emails) and renders its
output text (render_chunk), and the result file is output_encoding's BOM, then
render_header(header_text(...)), then the rendered chunks, each encoded on its
own.  write_result (CSV/TXT → CSV) is made of the same pieces.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import operator
from collections.abc import Generator, Iterator
from pathlib import Path

from mailvet.tabular.csv_cutter import CsvCutter, split_lines
from mailvet.tabular.encoding import open_text
from mailvet.tabular.layout import FileLayout, need_text
from mailvet.tabular.reading import csv_reader, read_errors


def _txt_parts(lines: Iterator[str], skip: int, size: int) -> Iterator[tuple[str, int]]:
    """CsvCutter.parts for TXT: a line is a record, blank if white space only."""
    head: list[str] = []
    carry: str | None = None
    for line in lines:
        if len(head) < skip or line.isspace():
            head.append(line)
        else:
            carry = line
            break
    yield "".join(head), 0
    while carry is not None:
        out = [carry]
        rows = 1
        while rows < size:
            batch = list(itertools.islice(lines, size - rows))
            if not batch:
                break
            out.append("".join(batch))
            rows += len(batch) - sum(map(str.isspace, batch))
        carry = None
        if rows == size:
            for line in lines:
                if not line.isspace():
                    carry = line
                    break
                out.append(line)
        yield "".join(out), rows


def text_parts(
    path: Path, layout: FileLayout, size: int, with_header: bool
) -> Generator[tuple[str, int], None, None]:
    """header_text (with_header) and the chunks of iter_text_chunks."""
    with open_text(Path(path), layout) as fh:
        if layout.kind == "txt":
            parts = _txt_parts(fh, layout.skip_records, size)
        else:
            parts = CsvCutter(fh, layout).parts(layout.skip_records, size)
        with read_errors(layout):
            if not with_header:
                next(parts)
            yield from parts


def header_text(path: Path, layout: FileLayout) -> str:
    """Decoded text of the file before its first data row, exactly as in the file, without
    the BOM: the preamble records and the header record (``skip_records`` records, blank
    ones included) and the blank records that follow them; "" when the file starts with a
    data row (always the case with ``skip_records == 0`` unless it starts with blank
    lines); the whole text when the file has no data row.  CSV and TXT layouts only."""
    need_text(layout)
    with contextlib.closing(text_parts(path, layout, 1, True)) as parts:
        return next(parts)[0]


def iter_text_chunks(
    path: Path, layout: FileLayout, rows_per_chunk: int
) -> Iterator[tuple[str, int]]:
    """(text, rows): consecutive slices of the decoded text after header_text, each holding
    ``rows_per_chunk`` data rows (the last one fewer, never none: no chunk at all for a
    file without data rows).  Every chunk starts with a data row; blank records (not
    rows) stay where they are, at the end of the chunk of the row before them.

    header_text() + "".join(texts) is the decoded text without BOM, sum(rows) is
    count_rows(), records (quoted fields with line breaks) are never cut.  Streamed: one
    chunk in memory at a time.  InputError as count_rows for a malformed or undecodable
    file; ValueError for an XLSX layout or rows_per_chunk < 1."""
    need_text(layout)
    if rows_per_chunk < 1:
        raise ValueError(f"rows_per_chunk must be at least 1, not {rows_per_chunk}")
    return text_parts(path, layout, rows_per_chunk, False)


def _txt_lines(text: str) -> list[str]:
    """The lines of a TXT text, for str.strip() (the \\n split is exact without lone \\r)."""
    if "\r" not in text or text.count("\r") == text.count("\r\n"):
        return text.split("\n")
    return io.StringIO(text, newline="").readlines()


def chunk_emails(text: str, layout: FileLayout) -> list[str]:
    """The email cell (stripped, "" if the row is too short) of every data row of a chunk
    text (or of any text made of whole records): over the chunks of a file, iter_emails."""
    need_text(layout)
    if layout.kind == "txt":
        return [email for email in map(str.strip, _txt_lines(text)) if email]
    idx = layout.email_index
    split = split_lines(text) if layout.quotechar not in text else None
    if split:  # one line per record, no quotes: the cells are the line split at delimiters
        lines = split[1]
        if not lines[-1]:
            lines.pop()
        if "" not in lines:  # no blank record
            cells = map(operator.methodcaller("split", layout.delimiter, idx + 1), lines)
            with contextlib.suppress(IndexError):  # a short row: csv.reader below
                return list(map(str.strip, map(operator.itemgetter(idx), cells)))
    emails: list[str] = []
    add = emails.append
    reader = csv_reader(io.StringIO(text, newline=""), layout)
    with read_errors(layout, reader, where=" of a chunk"):
        for row in reader:
            try:
                add(row[idx].strip())
            except IndexError:
                if row:
                    add("")
    return emails
