"""The XLSX result of an XLSX list: the customer's workbook with the verdict cells added to
the sheet that holds the addresses, and nothing else changed (:func:`rewrite_workbook`).

Every zip member of the input is copied as it is (its inflated content byte for byte:
other sheets, styles, shared strings, formulas with their cached values, merged cells,
number formats, column widths, defined names, charts), except the address sheet's XML,
which is streamed through expat and copied byte for byte too, with

* the new cells spliced into each row that gets some, as inline strings
  (``t="inlineStr"``: text, never a formula) in the columns after the row's last cell
  (at the earliest right after the header's last column, so that they line up), where
  empty styled cells that stood in those columns are replaced;
* ``<dimension ref=…>`` widened to cover them.

Memory is bounded (one row and a 64 KiB piece at a time; the XML after ``<dimension>`` goes
through a temporary file next to the output, because the new dimension is known only at the
end) and time proportional to the workbook.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape

from mailvet.tabular.layout import InputError
from mailvet.tabular.records import DATA, HEADER
from mailvet.tabular.workbook import (
    MAX_COLUMNS,
    READ_PIECE,
    SheetReader,
    Workbook,
    column_letters,
    parse_ref,
)

_XLSX_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]|[\ud800-\udfff]|[\ufffe\uffff]")
_SPANS = re.compile(rb"""\sspans\s*=\s*(["'])([0-9]+):([0-9]+)\1""")
_REF = re.compile(rb"""(\bref\s*=\s*)(["'])([^"']*)\2""")


def inline_cell(ref: str, text: str, style: int = 0, prefix: str = "") -> bytes:
    """One cell holding `text` as an inline string (shown as text, never run as a formula);
    `prefix`: the sheet's prefix of the main namespace, if it uses one ("x:")."""
    text = _XLSX_ILLEGAL.sub("", text)
    space = ' xml:space="preserve"' if text != text.strip() else ""
    styled = f' s="{style}"' if style else ""
    p = prefix
    return (
        f'<{p}c r="{ref}"{styled} t="inlineStr"><{p}is><{p}t{space}>{escape(text)}'
        f"</{p}t></{p}is></{p}c>"
    ).encode("utf-8", "surrogatepass")


class _Splicer(SheetReader):
    """SheetReader that also notes where each cell's XML starts and ends, and at the end of
    each row writes the bytes read so far with the new cells spliced in."""

    def __init__(
        self,
        book: Workbook,
        parser: Any,
        head: IO[bytes],
        tail: IO[bytes],
        role_of: Callable[[int, list[Any]], int],
        cells_for: Callable[[int], Sequence[Any]],
        width: int,
    ) -> None:
        super().__init__(book, shape_only=True)  # which cells hold a value is enough
        self.parser = parser
        self.out = head  # where the bytes go: `tail` once <dimension> (or <sheetData>) is seen
        self.tail = tail
        self.role_of = role_of
        self.cells_for = cells_for
        self.width = width
        self.buffer = bytearray()
        self.base = 0  # absolute offset of buffer[0] in the part
        self.row_cells: list[tuple[int, int, int, int, bool]] = []  # col, start, end, style, used
        self.cell_start = 0
        self.in_row = False
        self.max_column = 0  # the widest row written, new cells included
        self.dimension: bytes | None = None  # the <dimension> tag, rewritten at the end
        self.prefix = ""
        self.row_start = 0

    # byte positions ----------------------------------------------------------------------

    def _at(self) -> int:
        return int(self.parser.CurrentByteIndex)

    def _tag_end(self, at: int) -> int:
        """Absolute offset just past the '>' of the tag that starts at `at`."""
        return self.buffer.index(b">", at - self.base) + 1 + self.base

    def _write_to(self, upto: int) -> None:
        if upto > self.base:
            cut = upto - self.base
            self.out.write(self.buffer[:cut])
            del self.buffer[:cut]
            self.base = upto

    def _skip_to(self, upto: int) -> None:
        cut = upto - self.base
        del self.buffer[:cut]
        self.base = upto

    # handlers ----------------------------------------------------------------------------

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        local = self.local(tag)
        if local == "c":
            self.cell_start = self._at()
        elif local == "row":
            self.row_start = self._at()
            self._write_to(self.row_start)
            self.in_row = True
            self.row_cells = []
            self.prefix = tag[: len(tag) - len(local)]
        elif local == "dimension" and not self.in_data and self.dimension is None:
            at = self._at()
            self._write_to(at)
            end = self._tag_end(at)
            tag_bytes = bytes(self.buffer[: end - self.base])
            self._skip_to(end)
            self.dimension = tag_bytes
            self.swap_out()
        elif local == "sheetData":
            self._write_to(self._at())
            self.swap_out()  # (a sheet without <dimension>)
        elif not self.in_row:
            self._write_to(self._at())
        super().start(tag, attrs)

    def swap_out(self) -> None:
        """Everything after <dimension> goes to the tail (a temporary file)."""
        self.out = self.tail

    def end(self, tag: str) -> None:
        local = self.local(tag)
        if local == "c":
            at = self._at()
            end = self._tag_end(at)
            column, style, has_formula = self.column, self.style, self.has_formula
            super().end(tag)
            used = has_formula or column in self.cells
            self.row_cells.append((column, self.cell_start, end, style, used))
            return
        if local == "row":
            at = self._at()
            super().end(tag)
            self.in_row = False
            self._end_row(at)
            return
        super().end(tag)
        if not self.in_row:
            self._write_to(self._at())

    def _end_row(self, at: int) -> None:
        """`at`: where </row> starts (or the start of <row/>, which holds no cell)."""
        values = self.done[-1] if self.done else []
        index = self.row_number - 1
        role = self.role_of(index, values)
        used = [c for c in self.row_cells if c[4]]
        last = max((c[0] for c in used), default=0)
        if self.row_cells:
            self.max_column = max(self.max_column, max(c[0] for c in self.row_cells))
        if role not in (HEADER, DATA):
            return
        extras = [v for v in self.cells_for(role)]
        if not extras:
            return
        first = max(self.width, last) + 1  # 1-based column of the first new cell
        if first + len(extras) - 1 > MAX_COLUMNS:
            raise ValueError(f"row {self.row_number}: no room for the new cells")
        style = used[-1][3] if role == HEADER and used else 0
        row_ref = str(self.row_number)
        new = b"".join(
            inline_cell(column_letters(first + i) + row_ref, value, style, self.prefix)
            for i, value in enumerate(extras)
            if isinstance(value, str) and value
        )
        self.max_column = max(self.max_column, first + len(extras) - 1)
        # the first cell in or after the new columns (all of them empty: after `last`)
        later = [c for c in self.row_cells if c[0] >= first]
        insert = later[0][1] if later else at
        self._widen_spans(first + len(extras) - 1)
        self._write_to(insert)
        self.out.write(new)
        for column, start, end, _, _ in later:  # drop empty cells the new ones replace
            if column < first + len(extras):
                self._write_to(start)
                self._skip_to(end)
        self._write_to(at)

    def _widen_spans(self, last: int) -> None:
        """A row's spans="first:last" (a hint some readers trust) made to cover column
        `last`; the row's start tag is at the start of the buffer."""
        end = self._tag_end(self.row_start)
        tag = bytes(self.buffer[self.row_start - self.base : end - self.base])
        match = _SPANS.search(tag)
        if match is None or int(match.group(3)) >= last:
            return
        self.out.write(tag[: match.start(3)] + str(last).encode() + tag[match.end(3) :])
        self._skip_to(end)


def rewrite_workbook(
    book: Workbook,
    out_path: Path,
    sheet: str | None,
    role_of: Callable[[int, list[Any]], int],
    cells_for: Callable[[int], Sequence[Any]],
    width: int,
) -> None:
    """Write `book` to out_path with the new cells in `sheet` (see the module docstring).

    role_of(row index, values) gives a row's role (records.PRE, HEADER, BLANK, DATA);
    cells_for(role) the cells to append to a HEADER or DATA row (it may raise)."""
    _, target = book.sheet_part(sheet)
    with zipfile.ZipFile(out_path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as out_zip:
        for info in book.zip.infolist():
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.compress_type = (
                info.compress_type
                if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
                else zipfile.ZIP_DEFLATED
            )
            copy.external_attr = info.external_attr
            copy.create_system = info.create_system
            if info.is_dir():
                out_zip.writestr(copy, b"")
                continue
            if info.filename == target:
                _rewrite_sheet(book, target, out_zip, copy, out_path, role_of, cells_for, width)
                continue
            with out_zip.open(copy, "w", force_zip64=info.file_size > 1 << 30) as sink:
                for piece in book.pieces(info.filename):
                    sink.write(piece)


def _rewrite_sheet(
    book: Workbook,
    part: str,
    out_zip: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    out_path: Path,
    role_of: Callable[[int, list[Any]], int],
    cells_for: Callable[[int], Sequence[Any]],
    width: int,
) -> None:
    with (
        io.BytesIO() as head,  # up to <dimension> (or <sheetData>): a few hundred bytes
        tempfile.TemporaryFile(dir=out_path.parent, prefix=".mailvet-sheet-") as tail,
    ):
        parser = book.parser()
        splicer = _Splicer(book, parser, head, tail, role_of, cells_for, width)
        parser.StartElementHandler = splicer.start
        parser.EndElementHandler = splicer.end
        parser.CharacterDataHandler = splicer.text
        first = True
        for piece in book.pieces(part):
            if first:
                first = False
                if piece.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise _not_utf8(book)
            splicer.buffer += piece
            book.feed(parser, piece)
            splicer.take()
        book.feed(parser, b"", True)
        splicer.take()
        splicer._write_to(splicer.base + len(splicer.buffer))
        size = head.tell() + tail.tell()
        with out_zip.open(info, "w", force_zip64=size > 1 << 30) as sink:
            head.seek(0)
            shutil.copyfileobj(head, sink, READ_PIECE)
            if splicer.dimension is not None:
                sink.write(_widened(splicer.dimension, splicer.max_column, splicer.row_number))
            tail.seek(0)
            shutil.copyfileobj(tail, sink, READ_PIECE)


def _not_utf8(book: Workbook) -> Exception:
    return InputError(f"{book.name}: the address sheet is not stored in UTF-8 (not supported)")


def _widened(tag: bytes, max_column: int, max_row: int) -> bytes:
    """The <dimension> tag with its ref covering max_column (and max_row) too."""
    match = _REF.search(tag)
    if match is None:
        return tag
    ref = match.group(3).decode("ascii", "replace")
    first, _, last = ref.partition(":")
    last = last or first
    try:
        row0, col0 = parse_ref(first, "")
        row1, col1 = parse_ref(last, "")
    except Exception:
        return tag
    col1 = max(col1, max_column)
    row1 = max(row1, max_row)
    new = f"{column_letters(col0)}{row0}:{column_letters(col1)}{row1}".encode()
    return tag[: match.start(3)] + new + tag[match.end(3) :]
