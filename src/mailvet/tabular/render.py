"""Rendering CSV/TXT output text: the header part (:func:`render_header`) and one chunk's
records with the extra cells appended (:func:`render_chunk`), quoted as csv.writer would.

Cells we write (the appended ones, and the address of a TXT row) are formula-safe: one that
begins with a character a spreadsheet program takes as the start of a formula (FORMULA_STARTS:
=, +, -, @, TAB, CR) gets a single quote in front and is quoted, as OWASP's CSV-injection
guidance says, so that it shows as text.  The customer's own CSV records stay as they were.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mailvet.tabular.chunks import chunk_emails
from mailvet.tabular.csv_cutter import (
    LINE_ENDS,
    count_blank,
    csv_record_texts,
    record_matchers,
    split_lines,
)
from mailvet.tabular.layout import FileLayout, need_text
from mailvet.tabular.xlsx import cell_str

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet program read a cell as a formula (OWASP)."""


def formula_safe(cell: str) -> str:
    """The cell as a spreadsheet shows text: a single quote before a FORMULA_STARTS start."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def formula_start_in(text: str, separators: str) -> bool:
    """Can a cell of `text` begin with a FORMULA_STARTS character? Cells begin at the start
    of the text and after any of `separators` (the delimiter, and "\n" between rows joined
    by it); a yes may be a false alarm (a separator inside a cell), a no is sure."""
    if text.startswith(FORMULA_STARTS):
        return True
    return any(sep + start in text for sep in separators for start in FORMULA_STARTS)


@functools.lru_cache(maxsize=16)
def _cell_formatter(delimiter: str, quotechar: str) -> Callable[[Sequence[Any]], str]:
    """Extra cells → text to append, quoted like csv.writer(QUOTE_MINIMAL) would, and
    formula-safe (a FORMULA_STARTS start gets a single quote before it, and quotes)."""
    doubled = quotechar * 2
    specials = (delimiter, quotechar, "\r", "\n")

    def quote(cell: str) -> str:
        if cell.startswith(FORMULA_STARTS):
            return quotechar + ("'" + cell).replace(quotechar, doubled) + quotechar
        if any(s in cell for s in specials):
            return quotechar + cell.replace(quotechar, doubled) + quotechar
        return cell

    def fmt(cells: Sequence[Any]) -> str:
        if type(cells) is not list and type(cells) is not tuple:
            cells = list(cells)
        try:
            text = delimiter.join(cells)
        except TypeError:
            cells = [cell_str(c) for c in cells]
            text = delimiter.join(cells)
        # Fast path: nothing to quote (checked on the joined text, in C).
        if (
            quotechar in text
            or "\n" in text
            or "\r" in text
            or text.count(delimiter) != len(cells) - 1
            or formula_start_in(text, delimiter)
        ):
            text = delimiter.join(map(quote, cells))
        return text

    return fmt


def _append(raw: str, tail: str) -> str:
    """Insert tail (delimiter + cells) before the record's line terminator."""
    last = raw[-1]
    if last == "\n":
        if raw[-2:-1] == "\r":
            return raw[:-2] + tail + "\r\n"
        return raw[:-1] + tail + "\n"
    if last == "\r":
        return raw[:-1] + tail + "\r"
    return raw + tail  # last record without terminator


def _sequences(cells: Iterable[Iterable[Any]]) -> tuple[list[Sequence[Any]], list[int]]:
    """The rows of cells as sized sequences (iterators read into lists), and their lengths."""
    rows: list[Any] = cells if type(cells) is list else list(cells)
    try:
        return rows, list(map(len, rows))
    except TypeError:
        rows = [r if isinstance(r, list | tuple) else list(r) for r in rows]
        return rows, list(map(len, rows))


def _tails(cells: Iterable[Iterable[Any]], delimiter: str, quotechar: str) -> list[str]:
    """Per data row, what goes before its terminator: delimiter + its extra cells, quoted
    like csv.writer(QUOTE_MINIMAL) would; "" for a row without extra cells."""
    rows, lens = _sequences(cells)
    try:
        texts = list(map(delimiter.join, rows))
    except TypeError:  # cells that are not str: the formatter converts them
        pass
    else:
        # Fast path, checked on all rows at once in C: nothing to quote, no empty row,
        # no cell that starts like a formula.
        joined = "\n".join(texts)
        if (
            quotechar not in joined
            and "\r" not in joined
            and joined.count("\n") == len(texts) - 1
            and joined.count(delimiter) == sum(lens) - len(lens)
            and 0 not in lens
            and not formula_start_in(joined, delimiter + "\n")
        ):
            return list(map(delimiter.__add__, texts))
    fmt = _cell_formatter(delimiter, quotechar)
    return [delimiter + fmt(row) if n else "" for row, n in zip(rows, lens, strict=True)]


def _row_mismatch(rows: int, given: int) -> ValueError:
    return ValueError(f"the chunk holds {rows} data rows but {given} rows of cells were given")


def _render_csv(
    text: str, layout: FileLayout, cells: Iterable[Iterable[Any]], given: Sequence[str] | None
) -> str:
    tails = _tails(cells, layout.delimiter, layout.quotechar) if given is None else given
    quote = layout.quotechar
    split = split_lines(text)
    if split:
        term, lines = split
        # Fast path: one line per record (a line with a quote that does not end inside
        # a quoted field: the matcher answers the same without the terminator).
        if quote not in text or all(
            map(
                record_matchers(layout.delimiter, quote)[0],
                itertools.compress(lines, map(operator.contains, lines, itertools.repeat(quote))),
            )
        ):
            last = lines.pop()  # "" or a last record without terminator
            blank = lines.count("")
            rows = len(lines) - blank + (last != "")
            if rows != len(tails):
                raise _row_mismatch(rows, len(tails))
            if blank:
                rest = iter(tails)
                lines = [line + next(rest) if line else line for line in lines]
            else:
                lines = list(map(operator.add, lines, tails))
            lines.append(last + tails[-1] if last else "")
            return term.join(lines)
    records = csv_record_texts(text, layout)
    rows = len(records) - count_blank(records)
    if rows != len(tails):
        raise _row_mismatch(rows, len(tails))
    rest = iter(tails)
    return "".join([raw if raw in LINE_ENDS else _append(raw, next(rest)) for raw in records])


def _render_txt(text: str, cells: Iterable[Iterable[Any]], given: Sequence[str] | None) -> str:
    """TXT rows as csv.writer(lineterminator="\\r\\n") writes [email, *cells] (the address
    quoted like the extra cells: QUOTE_MINIMAL with "," and '"')."""
    emails = chunk_emails(text, _TXT)
    tails = _tails(cells, ",", '"') if given is None else given
    if len(emails) != len(tails):
        raise _row_mismatch(len(emails), len(tails))
    if not emails:
        return ""
    joined = "\n".join(emails)  # TXT lines hold no line break
    if '"' in joined or "," in joined or formula_start_in(joined, "\n"):
        fmt = _cell_formatter(",", '"')
        emails = [fmt((email,)) for email in emails]
    return "\r\n".join(map(operator.add, emails, tails)) + "\r\n"


_TXT = FileLayout(kind="txt")


def render_header(header: str, layout: FileLayout, extra_header: Sequence[str]) -> str:
    """Output text of header_text(): what write_result writes before the first row.

    CSV: the text unchanged but for the header record (record skip_records - 1 when
    has_header), which gets delimiter + extra names before its terminator; no header
    → the text unchanged (blank lines only, usually "").  TXT: one CSV line, the
    header (or "email" without one) and the extra names; preamble and blank lines
    are dropped as write_result drops them.  ValueError if `header` is not a header
    text of this layout."""
    need_text(layout)
    skip = layout.skip_records
    if layout.kind == "txt":
        lines = io.StringIO(header, newline="").readlines()
        if any(not line.isspace() for line in lines[skip:]):
            raise ValueError("not the header text of this TXT layout")
        if not layout.has_header:
            name = "email"
        elif 0 < skip <= len(lines):
            name = lines[skip - 1].strip()
        else:  # a file shorter than its header: no header line, as write_result
            return ""
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow([name, *extra_header])
        return out.getvalue()
    records = csv_record_texts(header, layout)
    if any(raw not in LINE_ENDS for raw in records[skip:]):
        raise ValueError("not the header text of this CSV layout")
    if layout.has_header and 0 < skip <= len(records) and extra_header:
        fmt = _cell_formatter(layout.delimiter, layout.quotechar)
        records[skip - 1] = _append(records[skip - 1], layout.delimiter + fmt(extra_header))
    return "".join(records)


def render_chunk(
    text: str,
    layout: FileLayout,
    cells: Sequence[Sequence[str]],
    *,
    tails: Sequence[str] | None = None,
) -> str:
    """Output text of one chunk (or any text of whole records after the header): what
    write_result writes for these records given these extra cells, one row of cells per
    data row.  CSV: every record's raw text kept, delimiter + cells (quoted like
    csv.writer would) inserted before its terminator, blank records unchanged.  TXT:
    a CSV line (\\r\\n) per data row, blank lines dropped.  Cells that are not str are
    written as write_result writes them.  ValueError if len(cells) is not the number
    of data rows of the text.

    `tails`: instead of `cells`, what each data row gets before its terminator, already
    made (delimiter + its cells, joined by the delimiter, quoted where needed: "," for
    TXT), for a caller that builds it faster than from cells; used as given (the caller
    makes them formula-safe, see formula_start_in)."""
    need_text(layout)
    if layout.kind == "txt":
        return _render_txt(text, cells, tails)
    return _render_csv(text, layout, cells, tails)
