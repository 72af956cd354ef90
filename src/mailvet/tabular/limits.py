"""How long a cell and a line of a CSV/TXT list may be, reading lines without ever holding
a longer one, and the one-line errors of a file that crosses a limit.

The longest cell is the layout's ``max_cell`` (``MAILVET_MAX_CELL_BYTES``, counted in
characters of the decoded text: bytes for ASCII).  Lines are read at most
``line_cap(layout) + 1`` characters at a time (``bounded_lines``), so a 200 MB file without
a line break costs a few MiB before it is refused, never the whole line in memory.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterator, Sequence
from typing import IO

from mailvet.tabular.layout import FileLayout, InputError

MIN_LINE_CAP = 1024 * 1024  # a CSV line may hold max(8 cells of max_cell, 1 MiB) characters


def line_cap(layout: FileLayout) -> int:
    """Longest line of a list (with its terminator): TXT holds one cell a line, CSV several."""
    if layout.kind == "txt":
        return layout.max_cell + 2
    return max(8 * layout.max_cell, MIN_LINE_CAP)


def set_csv_limit(layout: FileLayout) -> None:
    """csv's field limit (one for the process) above every line we let through, so that
    csv.reader never refuses a field first: cells are measured by us, against max_cell."""
    limit = line_cap(layout) + 2
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def bounded_lines(text: IO[str], cap: int) -> Iterator[str]:
    """The lines of `text` (as opened: newline="" keeps them raw), none longer than cap + 1
    characters: a longer line comes in pieces, the first of which is cap + 1 characters
    long.  The reader refuses such a piece (too_long); readline(limit) never reads more."""
    return iter(functools.partial(text.readline, cap + 1), "")


def checked_lines(text: IO[str], layout: FileLayout, first: int = 1) -> Iterator[str]:
    """bounded_lines of a TXT list (a line is a cell), refused with too_long's error at the
    first line over max_cell (its terminator left out)."""
    limit = layout.max_cell
    for number, line in enumerate(bounded_lines(text, line_cap(layout)), first):
        if len(line) > limit and len(line.rstrip("\r\n")) > limit:
            raise too_long((line,), number, layout)
        yield line


def too_long(lines: Sequence[str], first: int, layout: FileLayout) -> InputError:
    """The error of a record (its lines, the first being line `first`; a line over line_cap
    is the piece bounded_lines gave) holding a cell over max_cell or a line over line_cap."""
    cell = long_cell_line(lines, first, layout)
    if cell is not None:
        start, quoted = cell
        hint = "; does a quote open there and never close?" if quoted else ""
        return InputError(
            f"the cell starting at line {start} is longer than {layout.max_cell:,} characters,"
            f" the limit (MAILVET_MAX_CELL_BYTES){hint}"
        )
    cap = line_cap(layout)
    for number, line in enumerate(lines, first):
        if len(line) > cap:
            return InputError(
                f"line {number} is longer than {cap:,} characters, the limit of a line"
                f" ({'one cell' if layout.kind == 'txt' else 'eight cells'} of"
                f" MAILVET_MAX_CELL_BYTES = {layout.max_cell:,}); no list holds lines that long"
            )
    raise ValueError("too_long of a record within the limits")


def long_cell_line(lines: Sequence[str], first: int, layout: FileLayout) -> tuple[int, bool] | None:
    """(line where it starts, quoted) of the first cell over max_cell in a record (as
    csv.reader reads it: a quote opens a quoted field only at a field's start, "" in one
    is a quote), or None.
    TXT: a line is a cell.  Walks the characters: for error messages only."""
    limit = layout.max_cell
    if layout.kind == "txt":
        for number, piece in enumerate(lines, first):
            if len(piece.rstrip("\r\n")) > limit:
                return number, False
        return None
    delimiter, quote = layout.delimiter, layout.quotechar
    text = "".join(lines)
    if quote not in text:  # one line, cells between delimiters
        cells = text.rstrip("\r\n").split(delimiter)
        return (first, False) if max(map(len, cells)) > limit else None
    line, start, size = first, first, 0
    quoted = opened = False
    at_start = True
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if at_start:
            at_start, start, size, opened = False, line, 0, False
            if c == quote:
                quoted = opened = True
                continue
        if quoted:
            if c == quote:
                if i < n and text[i] == quote:
                    i += 1
                else:
                    quoted = False
                    continue
        elif c == delimiter:
            at_start = True
            continue
        elif c in "\r\n":
            if c == "\r" and i < n and text[i] == "\n":
                i += 1
            line += 1
            at_start = True
            continue
        if c == "\n" or (c == "\r" and not (i < n and text[i] == "\n")):
            line += 1
        size += 1
        if size > limit:
            return start, opened
    return None
