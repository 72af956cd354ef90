"""Reading a list's text: the one csv.reader of a layout, and the errors of reading it
(csv.Error, UnicodeDecodeError) as one InputError line."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mailvet.tabular.encoding import open_text
from mailvet.tabular.layout import FileLayout, InputError, one_line
from mailvet.tabular.limits import set_csv_limit

if TYPE_CHECKING:
    from _csv import Reader


def csv_reader(lines: Iterable[str], layout: FileLayout) -> Reader:
    """csv.reader over lines (read with newline="") in the layout's dialect (csv's field
    limit above the layout's: the cells are measured against max_cell by the cutter)."""
    set_csv_limit(layout)
    return csv.reader(lines, delimiter=layout.delimiter, quotechar=layout.quotechar)


@contextmanager
def read_errors(
    layout: FileLayout, reader: Reader | None = None, *, first_line: int = 1, where: str = ""
) -> Iterator[None]:
    """Raise the csv.Error of `reader` (whose first line is line `first_line` of the file) and
    any UnicodeDecodeError met in the block as InputError, one line each."""
    try:
        yield
    except csv.Error as exc:
        line = first_line - 1 + (reader.line_num if reader is not None else 0)
        raise InputError(f"malformed CSV near line {line}{where}: {one_line(exc)}") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"the file is not valid {layout.encoding} text ({one_line(exc.reason)})"
        ) from None


@contextmanager
def text_lines(path: Path, layout: FileLayout) -> Iterator[Iterator[str]]:
    """The lines of a TXT file (universal newlines), decoding errors as InputError."""
    with open_text(path, layout, newline=None) as fh, read_errors(layout):
        yield fh
