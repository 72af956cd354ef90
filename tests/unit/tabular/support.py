"""Shared helpers of the tabular tests: the round trip through detection, reading and
writing, an independent csv.reader-driven reference of the result file, and the chunked
way the pipeline builds it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

import openpyxl
import pytest

from mailvet.tabular import (
    OUTPUT_ERRORS,
    FileLayout,
    InputError,
    chunk_emails,
    count_rows,
    detect_layout,
    header_text,
    iter_emails,
    iter_text_chunks,
    output_encoding,
    render_chunk,
    render_header,
    result_kind,
    write_result,
)

EXTRA_HEADER = ["status", "note"]


class DetectOptions(TypedDict, total=False):
    """What the tests pass on to detect_layout by name."""

    email_column: str | None
    filename: str | None
    sheet: str | None


def extras_for(emails: Sequence[str]) -> list[list[str]]:
    return [["ok" if "@" in e else "bad", f"n{i}"] for i, e in enumerate(emails)]


def run(
    tmp_path: Path,
    data: bytes,
    name: str = "in.csv",
    out_kind: str | None = None,
    **kw: Unpack[DetectOptions],
) -> tuple[FileLayout, list[str], Path]:
    """detect → iter/count (must agree) → write_result; returns (layout, emails, out path)."""
    src = tmp_path / name
    src.write_bytes(data)
    layout = detect_layout(src, **kw)
    emails = list(iter_emails(src, layout))
    assert count_rows(src, layout) == len(emails)
    kind = out_kind or result_kind(layout, None)
    out = tmp_path / f"out.{kind}"
    written = write_result(src, layout, out, EXTRA_HEADER, extras_for(emails), out_kind=kind)  # type: ignore[arg-type]
    assert written == len(emails)
    if layout.kind != "xlsx" and kind == "csv":  # every CSV/TXT fixture: the chunked way too
        assert check_chunked(src, layout, EXTRA_HEADER, extras_for(emails)) == out.read_bytes()
    return layout, emails, out


def expected_csv(
    records: Sequence[tuple[str, str, str]], emails_extras: Sequence[Sequence[str]], sep: str = ","
) -> str:
    """Rebuild the expected output from (role, raw record text without terminator,
    terminator) with role in {"pre", "header", "blank", "data"}."""
    out = []
    extras = iter(emails_extras)
    for role, text, term in records:
        if role == "header":
            out.append(text + sep + sep.join(EXTRA_HEADER) + term)
        elif role == "data":
            out.append(text + sep + sep.join(next(extras)) + term)
        else:
            out.append(text + term)
    assert next(extras, None) is None
    return "".join(out)


def raw_of(records: Sequence[tuple[str, str, str]]) -> str:
    return "".join(text + term for _, text, term in records)


# --------------------------------------------------------------------------- chunked-text helpers
#
# The pipeline renders CSV/TXT results chunk by chunk in the workers (header_text,
# iter_text_chunks, chunk_emails, render_header, render_chunk, output_encoding).
# write_result is built on the same functions, so both are compared with an
# independent reference: the original csv.reader-driven writer below.

CHUNK_SIZES = (1, 2, 3, 7, 1_000_000)


def cell_text(value: object) -> str:
    """How a result writes a non-str extra cell (as a spreadsheet shows it)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def quoted_cells(cells: Iterable[object], sep: str, quote: str) -> str:
    """Extra cells as csv.writer(QUOTE_MINIMAL) writes them."""
    out = []
    for cell in map(cell_text, cells):
        if any(c in cell for c in (sep, quote, "\r", "\n")):
            cell = quote + cell.replace(quote, quote * 2) + quote
        out.append(cell)
    return sep.join(out)


def before_terminator(raw: str, tail: str) -> str:
    """Insert tail before the record's line terminator (the last line's, even when a quote
    left open at the end of the file makes that line a mere terminator)."""
    end = 2 if raw.endswith("\r\n") else 1 if raw.endswith(("\r", "\n")) else 0
    return raw[: len(raw) - end] + tail + raw[len(raw) - end :]


def decoded_text(src: Path, layout: FileLayout) -> str:
    with open(src, encoding=layout.encoding, newline="") as fh:
        text = fh.read()
    if layout.bom:
        assert text.startswith("\ufeff")
        text = text[1:]
    return text


def reference_result(
    src: Path, layout: FileLayout, extra_header: Sequence[str], extra_rows: Iterable[Sequence[Any]]
) -> bytes:
    """The result file, made the slow and obvious way: csv.reader decides the records (their
    raw text from reader.line_num), TXT lines go through csv.writer."""
    rows = iter(extra_rows)
    skip = layout.skip_records
    text = decoded_text(src, layout)
    if layout.kind == "txt":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        if not layout.has_header:
            writer.writerow(["email", *extra_header])
        for index, line in enumerate(io.StringIO(text, newline=None)):
            if index < skip:
                if layout.has_header and index == skip - 1:
                    writer.writerow([line.strip(), *extra_header])
            elif line.strip():
                writer.writerow([line.strip(), *map(cell_text, next(rows))])
        assert next(rows, None) is None
        return buf.getvalue().encode("utf-8")
    sep, quote = layout.delimiter, layout.quotechar
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(iter(lines), delimiter=sep, quotechar=quote)
    out = ["\ufeff"] if layout.bom else []
    done = 0
    for index, row in enumerate(reader):
        raw = "".join(lines[done : reader.line_num])
        done = reader.line_num
        if index < skip:
            if layout.has_header and index == skip - 1 and extra_header:
                raw = before_terminator(raw, sep + quoted_cells(extra_header, sep, quote))
        elif row:
            extra = list(next(rows))
            if extra:
                raw = before_terminator(raw, sep + quoted_cells(extra, sep, quote))
        out.append(raw)
    assert done == len(lines) and next(rows, None) is None
    return "".join(out).encode(layout.encoding, "replace")


def chunked_result(
    src: Path,
    layout: FileLayout,
    extra_header: Sequence[str],
    extra_rows: Sequence[Sequence[Any]],
    size: int,
) -> bytes:
    """The result file the pipeline's way (checking the chunk invariants on the way)."""
    header = header_text(src, layout)
    chunks = list(iter_text_chunks(src, layout, size))
    assert header + "".join(text for text, _ in chunks) == decoded_text(src, layout)
    counts = [rows for _, rows in chunks]
    assert sum(counts) == count_rows(src, layout) == len(extra_rows)
    assert all(rows == size for rows in counts[:-1]) and all(0 < rows <= size for rows in counts)
    emails: list[str] = []
    for text, rows in chunks:
        got = chunk_emails(text, layout)
        assert len(got) == rows
        emails += got
        # every chunk starts with a data row (the blank records before it end the chunk before)
        if layout.kind == "txt":
            assert not text.isspace()
        else:
            first = next(
                csv.reader(
                    io.StringIO(text, newline=""),
                    delimiter=layout.delimiter,
                    quotechar=layout.quotechar,
                )
            )
            assert first != []
    assert emails == list(iter_emails(src, layout))
    codec, bom = output_encoding(layout)
    parts = [bom, render_header(header, layout, extra_header).encode(codec, OUTPUT_ERRORS)]
    start = 0
    for text, rows in chunks:
        cells = extra_rows[start : start + rows]
        parts.append(render_chunk(text, layout, cells).encode(codec, OUTPUT_ERRORS))
        start += rows
    return b"".join(parts)


def check_chunked(
    src: Path,
    layout: FileLayout,
    extra_header: Sequence[str],
    extra_rows: Sequence[Sequence[Any]],
    sizes: Sequence[int] = CHUNK_SIZES,
) -> bytes:
    """THE property: for every chunk size, BOM + rendered header + rendered chunks ==
    write_result's file == the reference; returns those bytes."""
    expected = reference_result(src, layout, extra_header, extra_rows)
    out = src.with_name(src.name + ".check.csv")
    assert write_result(src, layout, out, extra_header, extra_rows) == len(extra_rows)
    assert out.read_bytes() == expected
    out.unlink()
    for size in sizes:
        assert chunked_result(src, layout, extra_header, extra_rows, size) == expected, size
    return expected


def make_xlsx(path: Path, rows: Sequence[Sequence[object]], title: str = "Contacts") -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(list(row))
    for row_cells in ws.iter_rows():
        for cell in row_cells:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # text that looks like a formula
    wb.save(path)
    wb.close()


def read_xlsx(path: Path) -> list[tuple[object, ...]]:
    """Rows of the first sheet (write-only workbooks store no dimension: rows are not padded)."""
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        return [tuple(r) for r in wb.active.iter_rows(values_only=True)]
    finally:
        wb.close()


def bad(tmp_path: Path, data: bytes, name: str = "in.csv", **kw: Unpack[DetectOptions]) -> str:
    src = tmp_path / name
    src.write_bytes(data)
    with pytest.raises(InputError) as info:
        detect_layout(src, **kw)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def write(tmp_path: Path, data: bytes, name: str = "in.csv") -> Path:
    src = tmp_path / name
    src.write_bytes(data)
    return src
