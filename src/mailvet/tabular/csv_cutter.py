"""Cutting CSV text into records without the csv module.

A line holding no quote character is one record (a blank one if it is only a line
terminator); a line holding one is matched against a regular expression that follows
csv.reader's (non-strict) state machine and tells whether the line ends inside a quoted
field, in which case the record goes on over the next lines.  Records longer than the
layout's max_cell are measured cell by cell (tabular.limits): a cell over max_cell or a
line over line_cap is refused with the line where it starts.  Every reader of CSV records
(count_rows, the chunks, csv_records) goes through the cutter, so they refuse the same
files with the same messages.
"""

from __future__ import annotations

import functools
import io
import itertools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mailvet.tabular.encoding import open_text
from mailvet.tabular.layout import FileLayout
from mailvet.tabular.limits import line_cap, long_cell_line, too_long
from mailvet.tabular.reading import csv_reader, read_errors

if TYPE_CHECKING:
    from _csv import Reader

LINE_ENDS = ("\n", "\r\n", "\r")  # a CSV line holding only its terminator: a blank record


_Matcher = Callable[[str], "re.Match[str] | None"]


@functools.lru_cache(maxsize=16)
def record_matchers(delimiter: str, quotechar: str) -> tuple[_Matcher, _Matcher]:
    """fullmatch of (a line read at a record start, a line read inside a quoted field):
    a match means the record ends with this line, no match that it goes on.

    Mirrors csv.reader: a quote opens a quoted field only at the start of a field,
    a doubled quote inside one is a quote, text after the closing quote joins the
    field (and its quotes are plain characters, as anywhere in an unquoted field).
    The grammar is deterministic, hence possessive quantifiers: linear time."""
    d, q = re.escape(delimiter), re.escape(quotechar)
    quoted_rest = f"[^{q}]*+(?:{q}{q}[^{q}]*+)*+{q}"  # up to and with the closing quote
    after_quote = f"(?:[^{q}{d}\\r\\n][^{d}\\r\\n]*+)?+"
    field = f"(?:{q}{quoted_rest}{after_quote}|[^{q}{d}\\r\\n][^{d}\\r\\n]*+)?+"
    rest = f"(?:{d}{field})*+(?:\\r\\n|\\r|\\n)?+"
    record_start = re.compile(field + rest).fullmatch
    in_quotes = re.compile(quoted_rest + after_quote + rest).fullmatch
    return record_start, in_quotes


def count_blank(lines: list[str]) -> int:
    return lines.count("\n") + lines.count("\r\n") + lines.count("\r")


class CsvCutter:
    """Cuts the lines of a CSV text (read with newline="") into records."""

    def __init__(self, lines: Iterable[str], layout: FileLayout) -> None:
        self.lines = iter(lines)  # open_text's lines: line_cap + 1 characters at most
        self.layout = layout
        self.quote = layout.quotechar
        self.ends_record, self.ends_quoted = record_matchers(layout.delimiter, layout.quotechar)
        self.limit = layout.max_cell  # any line or record longer is checked
        self.cap = line_cap(layout)
        self.done = 0  # lines read so far

    def check(self, lines: Sequence[str], first: int) -> None:
        """One record longer than max_cell (its lines, the first being line number `first`):
        InputError if a cell is over max_cell or a line over line_cap."""
        if long_cell_line(lines, first, self.layout) is not None or any(
            len(line) > self.cap for line in lines
        ):
            raise too_long(lines, first, self.layout)

    def check_lines(self, lines: list[str], first: int) -> None:
        """check() the over-long lines of `lines`, one-line records all."""
        limit = self.limit
        if max(map(len, lines), default=0) > limit:
            for i, line in enumerate(lines):
                if len(line) > limit:
                    self.check((line,), first + i)

    def finish(self, head: list[str]) -> list[str]:
        """The lines after `head` up to the end of its record.  `head` holds the lines read
        of a record still inside a quoted field, the last of them being line self.done."""
        first = self.done - len(head) + 1
        size = sum(map(len, head))
        check_at = max(size, self.limit)
        more: list[str] = []
        ends_quoted = self.ends_quoted
        for line in self.lines:
            self.done += 1
            more.append(line)
            size += len(line)
            if ends_quoted(line) is not None:
                break
            if size > check_at:  # an unclosed quote: fail once the cell is over the limit
                self.check(head + more, first)
                check_at = 2 * size
        if size > self.limit:
            self.check(head + more, first)
        return more

    def record(self) -> tuple[str, bool] | None:
        """The next record's raw text and whether it is a data row; None at the end."""
        line = next(self.lines, None)
        if line is None:
            return None
        self.done += 1
        if self.quote not in line:
            data = line not in LINE_ENDS
        elif self.ends_record(line) is None:
            return line + "".join(self.finish([line])), True
        else:
            data = True
        if len(line) > self.limit:
            self.check((line,), self.done)
        return line, data

    def take(self, need: int, out: list[str]) -> int:
        """Append to `out` the text of the next records, up to `need` data rows and the blank
        records among them; return the rows taken (fewer than `need` only at the end).
        A line is at most one row, so batches of `need - rows` lines never overshoot."""
        rows = 0
        lines, quote, limit = self.lines, self.quote, self.limit
        while rows < need:
            batch = list(itertools.islice(lines, need - rows))
            if not batch:
                break
            first = self.done + 1
            self.done += len(batch)
            text = "".join(batch)
            out.append(text)
            if quote not in text:  # the common case: every line is a record
                rows += len(batch) - count_blank(batch)
                if len(text) > limit:
                    self.check_lines(batch, first)
            elif len(text) > limit and max(map(len, batch)) > limit:
                rows += self._take_long(batch, first, out)
            else:
                rows += self._take_quoted(batch, first, out)
        return rows

    def _take_quoted(self, batch: list[str], first: int, out: list[str]) -> int:
        """Rows of a batch holding quotes, no line over the field size limit: every line is
        a row or a blank record, but for the lines after the first of a record spanning
        lines (they may go on past the batch: the lines read after it go to `out`)."""
        ends_record, ends_quoted, limit = self.ends_record, self.ends_quoted, self.limit
        n = len(batch)
        rows = n - count_blank(batch)
        quoted = map(operator.contains, batch, itertools.repeat(self.quote))
        after = 0  # first line not inside a record spanning lines
        for j in itertools.compress(itertools.count(), quoted):
            if j < after or ends_record(batch[j]) is not None:
                continue
            k = j + 1
            while k < n and ends_quoted(batch[k]) is None:
                k += 1
            inside = batch[j + 1 : k + 1]  # not records of their own
            rows -= len(inside) - count_blank(inside)
            if k == n:  # the record goes on after the batch
                out.append("".join(self.finish(batch[j:])))
                break
            if sum(map(len, batch[j : k + 1])) > limit:
                self.check(batch[j : k + 1], first + j)
            after = k + 1
        return rows

    def _take_long(self, batch: list[str], first: int, out: list[str]) -> int:
        """_take_quoted for a batch with a line over the field size limit: records checked."""
        ends_record, ends_quoted, limit = self.ends_record, self.ends_quoted, self.limit
        quoted = list(map(operator.contains, batch, itertools.repeat(self.quote)))
        n = len(batch)
        rows = i = 0
        while i < n:
            try:
                j = quoted.index(True, i)
            except ValueError:
                j = n
            if j > i:  # lines without quotes: one record each
                plain = batch[i:j]
                rows += len(plain) - count_blank(plain)
                self.check_lines(plain, first + i)
                if j == n:
                    break
            rows += 1
            line = batch[j]
            if ends_record(line) is not None:
                if len(line) > limit:
                    self.check((line,), first + j)
                i = j + 1
                continue
            k = j + 1
            while k < n and ends_quoted(batch[k]) is None:
                k += 1
            if k == n:  # the record goes on after the batch
                out.append("".join(self.finish(batch[j:])))
                break
            if sum(map(len, batch[j : k + 1])) > limit:
                self.check(batch[j : k + 1], first + j)
            i = k + 1
        return rows

    def parts(self, skip: int, size: int) -> Iterator[tuple[str, int]]:
        """(header text, 0), then (chunk text, rows) for every chunk; see iter_text_chunks."""
        head: list[str] = []
        carry: str | None = None
        while (item := self.record()) is not None:
            if len(head) < skip or not item[1]:
                head.append(item[0])
            else:
                carry = item[0]
                break
        yield "".join(head), 0
        while carry is not None:
            out = [carry]
            rows = 1 + self.take(size - 1, out)
            carry = None
            if rows == size:  # the blank records before the next row belong to this chunk
                while (item := self.record()) is not None:
                    if item[1]:
                        carry = item[0]
                        break
                    out.append(item[0])
            yield "".join(out), rows


@contextmanager
def csv_records(path: Path, layout: FileLayout) -> Iterator[Reader]:
    """The records of a CSV file, read in its layout, errors as InputError: csv.reader over
    the records the cutter finds (one string each), so that cells are held to max_cell."""
    with open_text(path, layout) as fh:
        cutter = CsvCutter(fh, layout)
        texts = (text for text, _ in iter(cutter.record, None))
        reader = csv_reader(texts, layout)
        with read_errors(layout, reader):
            yield reader


def csv_record_texts(text: str, layout: FileLayout) -> list[str]:
    """The raw records of a text made of whole CSV records."""
    lines = io.StringIO(text, newline="").readlines()
    quote = layout.quotechar
    if quote not in text:
        return lines
    ends_record, ends_quoted = record_matchers(layout.delimiter, quote)
    records: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if quote in line and ends_record(line) is None:
            j = i + 1
            while j < n and ends_quoted(lines[j]) is None:
                j += 1
            records.append("".join(lines[i : j + 1]))
            i = j + 1
        else:
            records.append(line)
            i += 1
    return records


def split_lines(text: str) -> tuple[str, list[str]] | None:
    """(terminator, text.split(terminator)) when every line of text ends with the same
    terminator (the last one may have none), else None."""
    if "\r" not in text:
        return "\n", text.split("\n")
    if "\n" not in text:
        return "\r", text.split("\r")
    n = text.count("\n")
    if text.count("\r") == n:
        lines = text.split("\r\n")
        if len(lines) == n + 1:  # every \r and every \n in a \r\n
            return "\r\n", lines
    return None
