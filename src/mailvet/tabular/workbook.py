"""Reading an XLSX workbook in bounded memory: its sheets, shared strings, date styles and
the rows of a sheet, streamed from the zip (:class:`Workbook`, opened by :func:`open_workbook`).

A workbook is a zip of XML parts, and both layers can be hostile: a part whose zip header
says 1 KiB may inflate to gigabytes, one shared string may be a gigabyte long, a few MB of
zip may hold tens of millions of shared strings, and an XML part may declare entities that
expand exponentially.  So every part is read through a counter of the bytes really
inflated (never the sizes the zip header claims), the parser is expat fed in small pieces
with a handler that refuses any DTD, each cell's text is limited to ``max_cell_bytes`` as
it arrives, and the shared strings are kept as one UTF-8 buffer with an offset per string
(8 bytes of overhead each instead of a Python object).  Crossing a limit is an
:class:`InputError` that names it and the setting that raises it.

Cell values are what openpyxl's read-only, values-only mode gives (numbers as int or
float, dates as datetime for date-styled numbers, booleans, strings, errors as their
text), so that a cell reads the same as before this reader replaced openpyxl's.
"""

from __future__ import annotations

import array
import contextlib
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.parsers import expat

import msgspec

from mailvet.tabular.layout import MAX_CELL, MAX_XLSX_EXPANDED, InputError, one_line

MAX_ROWS = 1_048_576  # the limits of the format (Excel's); refs beyond are refused
MAX_COLUMNS = 16_384
READ_PIECE = 64 * 1024  # inflated bytes handed to expat at a time


class XlsxLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Limits on one workbook (settings MAILVET_MAX_CELL_BYTES, MAILVET_MAX_XLSX_EXPANDED_BYTES)."""

    # one cell's text in UTF-8 bytes (Excel holds at most 32,767 characters, 128 KiB at most
    # in UTF-8: the default fits them; it is also the CSV/TXT cell limit, FileLayout.max_cell)
    max_cell_bytes: int = MAX_CELL
    # bytes inflated from the zip for one opening, all parts together
    max_expanded_bytes: int = MAX_XLSX_EXPANDED


DEFAULT_LIMITS = XlsxLimits()


class _Refused(Exception):
    """Raised inside expat handlers; turned into an InputError by the caller."""


def local_name(name: str) -> str:
    return name.rpartition(":")[2]


_CELL_REF = re.compile(r"([A-Z]{1,3})([0-9]{1,7})")


def column_index(letters: str) -> int:
    """1-based column number of "A".."XFD"."""
    number = 0
    for ch in letters:
        number = number * 26 + ord(ch) - 64
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


class Workbook:
    """One opened workbook.  Build it with :func:`open_workbook`; close it (or use it as a
    context manager).  ``sheets`` lists (name, part path) in workbook order, ``active`` is
    the index of the sheet shown at opening."""

    def __init__(self, path: Path, name: str, limits: XlsxLimits) -> None:
        self.name = name
        self.limits = limits
        self.expanded = 0  # bytes inflated so far, all parts
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError):
            raise self._not_a_workbook() from None
        self.names = frozenset(self.zip.namelist())
        try:
            self._load()
        except BaseException:
            self.zip.close()
            raise

    # --- opening ---------------------------------------------------------------------------

    def _not_a_workbook(self) -> InputError:
        return InputError(
            f"{self.name} is not a valid XLSX workbook (damaged, password-protected"
            " or another kind of file)"
        )

    def _load(self) -> None:
        rels = self._relationships("_rels/.rels")
        main = next((t for typ, t in rels if typ.endswith("/officeDocument")), None)
        if main is None or main not in self.names:
            raise self._not_a_workbook()
        self.main = main
        sheets: list[tuple[str, str]] = []
        active = [0]
        date1904 = [False]

        def start(tag: str, attrs: dict[str, str]) -> None:
            local = local_name(tag)
            if local == "sheet":
                rid = next((v for k, v in attrs.items() if local_name(k) == "id"), "")
                sheets.append((attrs.get("name", ""), rid))
            elif local == "workbookView":
                active[0] = _int(attrs.get("activeTab", "0"))
            elif local == "workbookPr":
                date1904[0] = attrs.get("date1904", "0").lower() in ("1", "true")

        self._parse(main, start)
        targets = dict((rid, t) for rid, t in self._relationships(_rels_of(main), with_ids=True))
        by_type = {typ.rpartition("/")[2]: t for typ, t in self._relationships(_rels_of(main))}
        self.sheets: list[tuple[str, str]] = []
        for sheet_name, rid in sheets:
            target = targets.get(rid)
            if target is not None and target in self.names:
                self.sheets.append((sheet_name, target))
        if not self.sheets:
            raise InputError(f"{self.name} has no worksheet")
        self.active = active[0] if 0 <= active[0] < len(self.sheets) else 0
        self.date1904 = date1904[0]
        self._date_styles, self._timedelta_styles = self._styles(by_type.get("styles"))
        shared = by_type.get("sharedStrings")
        self._strings = _SharedStrings(self, shared if shared in self.names else None)

    def _relationships(self, part: str, with_ids: bool = False) -> list[tuple[str, str]]:
        """(type, target part) of a .rels part, or (id, target) with_ids; [] if absent."""
        if part not in self.names:
            return []
        base = posixpath.dirname(posixpath.dirname(part))
        found: list[tuple[str, str]] = []

        def start(tag: str, attrs: dict[str, str]) -> None:
            if local_name(tag) == "Relationship" and attrs.get("TargetMode") != "External":
                target = attrs.get("Target", "")
                if target.startswith("/"):
                    full = target.lstrip("/")
                else:
                    full = posixpath.normpath(posixpath.join(base, target))
                found.append((attrs.get("Id" if with_ids else "Type", ""), full))

        self._parse(part, start)
        return found

    def _styles(self, part: str | None) -> tuple[frozenset[int], frozenset[int]]:
        """Indexes of the cell styles whose number format is a date (and a duration)."""
        if part is None or part not in self.names:
            return frozenset(), frozenset()
        from openpyxl.styles.numbers import (
            BUILTIN_FORMATS,
            is_date_format,
            is_timedelta_format,
        )

        custom: dict[int, str] = {}
        xf_formats: list[int] = []
        depth = {"cellXfs": False}

        def start(tag: str, attrs: dict[str, str]) -> None:
            local = local_name(tag)
            if local == "numFmt":
                custom[_int(attrs.get("numFmtId", "0"))] = attrs.get("formatCode", "")
            elif local == "cellXfs":
                depth["cellXfs"] = True
            elif local == "xf" and depth["cellXfs"]:
                xf_formats.append(_int(attrs.get("numFmtId", "0")))

        def end(tag: str) -> None:
            if local_name(tag) == "cellXfs":
                depth["cellXfs"] = False

        self._parse(part, start, end)
        dates, durations = set(), set()
        for index, fmt_id in enumerate(xf_formats):
            fmt = custom.get(fmt_id, BUILTIN_FORMATS.get(fmt_id))
            if fmt and is_date_format(fmt):
                dates.add(index)
                if is_timedelta_format(fmt):
                    durations.add(index)
        return frozenset(dates), frozenset(durations)

    # --- reading parts ---------------------------------------------------------------------

    def _cell_too_big(self, what: str) -> str:
        return (
            f"{self.name}: {what} holds more than {self.limits.max_cell_bytes:,} bytes"
            " (MAILVET_MAX_CELL_BYTES)"
        )

    def pieces(self, part: str) -> Iterator[bytes]:
        """The inflated bytes of a part, READ_PIECE at a time, counted against the limit."""
        limit = self.limits.max_expanded_bytes
        try:
            with self.zip.open(part) as raw:
                while piece := raw.read(READ_PIECE):
                    self.expanded += len(piece)
                    if self.expanded > limit:
                        raise InputError(
                            f"{self.name} inflates to more than {limit:,} bytes"
                            " (MAILVET_MAX_XLSX_EXPANDED_BYTES)"
                        )
                    yield piece
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise InputError(
                f"{self.name}: the workbook could not be read ({one_line(exc)})"
            ) from None
        except NotImplementedError:  # compression method zipfile does not know
            raise self._not_a_workbook() from None

    def parser(
        self,
        start: Callable[[str, dict[str, str]], None] | None = None,
        end: Callable[[str], None] | None = None,
        text: Callable[[str], None] | None = None,
    ) -> Any:
        """An expat parser that refuses DTDs (hence entity declarations: XML bombs)."""
        parser = expat.ParserCreate()
        parser.buffer_text = True
        parser.buffer_size = READ_PIECE

        def no_dtd(*_: object) -> None:
            raise _Refused(
                f"{self.name} holds an XML document type declaration (DTD), which workbooks"
                " never need; refused (XML entity expansion)"
            )

        parser.StartDoctypeDeclHandler = no_dtd
        parser.EntityDeclHandler = no_dtd
        if start is not None:
            parser.StartElementHandler = start
        if end is not None:
            parser.EndElementHandler = end
        if text is not None:
            parser.CharacterDataHandler = text
        return parser

    def feed(self, parser: Any, piece: bytes, final: bool = False) -> None:
        try:
            parser.Parse(piece, final)
        except _Refused as exc:
            raise InputError(str(exc)) from None
        except expat.ExpatError as exc:
            raise InputError(
                f"{self.name}: the workbook could not be read (bad XML: {one_line(exc)})"
            ) from None

    def _parse(
        self,
        part: str,
        start: Callable[[str, dict[str, str]], None] | None = None,
        end: Callable[[str], None] | None = None,
        text: Callable[[str], None] | None = None,
    ) -> None:
        parser = self.parser(start, end, text)
        for piece in self.pieces(part):
            self.feed(parser, piece)
        self.feed(parser, b"", True)

    # --- sheets ----------------------------------------------------------------------------

    def sheet_part(self, sheet: str | None) -> tuple[str, str]:
        """(name, part) of the sheet called `sheet`, or of the active sheet."""
        if sheet is None:
            return self.sheets[self.active]
        for found in self.sheets:
            if found[0] == sheet:
                return found
        for found in self.sheets:  # sheet names are unique regardless of case (Excel)
            if found[0].casefold() == sheet.casefold():
                return found
        raise InputError(f"{self.name} has no sheet named '{one_line(sheet)}'")

    def ordered_sheets(self) -> list[str]:
        """Sheet names, the active one first (where a column search starts)."""
        names = [n for n, _ in self.sheets]
        return [names[self.active], *names[: self.active], *names[self.active + 1 :]]

    def rows(self, sheet: str | None) -> Iterator[list[Any]]:
        """Values of every row of the sheet, in order; missing rows as [] (rows are not
        padded beyond their last cell)."""
        reader = SheetReader(self)
        _, part = self.sheet_part(sheet)
        parser = self.parser(reader.start, reader.end, reader.text)
        for piece in self.pieces(part):
            self.feed(parser, piece)
            yield from reader.take()
        self.feed(parser, b"", True)
        yield from reader.take()

    def shared_string(self, index: int) -> str:
        try:
            return self._strings.get(index)
        except IndexError:
            raise InputError(
                f"{self.name}: a cell refers to shared string {index}, which does not exist"
            ) from None

    def value(self, kind: str, text: str, style: int) -> Any:
        """A cell's value from its type attribute, its <v> text and its style index."""
        if kind == "n":
            if not text:
                return None
            try:
                number: int | float = (
                    float(text) if ("." in text or "E" in text or "e" in text) else int(text)
                )
            except ValueError:
                return text
            if style in self._date_styles:
                from openpyxl.utils.datetime import (
                    CALENDAR_MAC_1904,
                    CALENDAR_WINDOWS_1900,
                    from_excel,
                )

                epoch = CALENDAR_MAC_1904 if self.date1904 else CALENDAR_WINDOWS_1900
                try:
                    return from_excel(number, epoch, timedelta=style in self._timedelta_styles)
                except (OverflowError, ValueError):
                    return "#VALUE!"
            return number
        if not text:
            return None
        if kind == "s":
            return self.shared_string(_int(text, -1))
        if kind == "b":
            return text.strip() not in ("0", "", "false")
        if kind == "d":
            from openpyxl.utils.datetime import from_ISO8601

            try:
                return from_ISO8601(text)
            except (ValueError, TypeError):
                return text
        return text  # str (formula result), e (error), unknown kinds

    def close(self) -> None:
        self._strings.close()
        self.zip.close()

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _rels_of(part: str) -> str:
    folder, base = posixpath.split(part)
    return posixpath.join(folder, "_rels", base + ".rels")


def utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


class _SharedStrings:
    """The shared-string table, read from its part only as far as the cells asked for so
    far need (cells refer to strings mostly in order: a sheet's first rows need the first
    strings; a table of millions that no cell uses costs nothing).  Strings are kept as one
    UTF-8 buffer and the end offset of each (8 bytes a string, not a Python object)."""

    def __init__(self, book: Workbook, part: str | None) -> None:
        self._book = book
        self._buffer = bytearray()
        self._ends = array.array("q")
        self._limit = book.limits.max_cell_bytes
        self._in_t = False
        self._rph = 0
        self._size = 0
        self._pieces: list[str] = []
        self._parser: Any = None
        self._source: Iterator[bytes] | None = None
        if part is not None:
            self._parser = book.parser(self._start, self._end, self._text)
            self._source = book.pieces(part)

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == "t" or tag.endswith(":t"):
            self._in_t = True
        elif tag == "si" or tag.endswith(":si"):
            self._pieces = []
            self._size = 0
        elif tag == "rPh" or tag.endswith(":rPh"):
            self._rph += 1

    def _end(self, tag: str) -> None:
        if tag == "t" or tag.endswith(":t"):
            self._in_t = False
        elif tag == "si" or tag.endswith(":si"):
            self._buffer += "".join(self._pieces).encode("utf-8", "surrogatepass")
            self._ends.append(len(self._buffer))
        elif tag == "rPh" or tag.endswith(":rPh"):
            self._rph -= 1

    def _text(self, data: str) -> None:
        if self._in_t and not self._rph:
            self._size += utf8_size(data)
            if self._size > self._limit:
                raise _Refused(self._book._cell_too_big("a shared string"))
            self._pieces.append(data)

    def get(self, index: int) -> str:
        if index < 0:
            raise IndexError(index)
        while index >= len(self._ends) and self._source is not None:
            piece = next(self._source, None)
            if piece is None:
                self._book.feed(self._parser, b"", True)
                self._source = None
            else:
                self._book.feed(self._parser, piece)
        end = self._ends[index]
        begin = self._ends[index - 1] if index else 0
        return self._buffer[begin:end].decode("utf-8", "surrogatepass")

    def close(self) -> None:
        if self._source is not None:
            self._source.close()  # type: ignore[attr-defined]
            self._source = None


def parse_ref(ref: str, name: str) -> tuple[int, int]:
    """(row, column), 1-based, of a cell reference such as "B12"; InputError beyond the
    format's limits (a reference such as "ZZZ99999999" would make rows billions wide)."""
    match = _CELL_REF.fullmatch(ref.upper())
    if match is None:
        raise InputError(f"{name}: the workbook could not be read (bad cell reference {ref!r})")
    column, row = column_index(match.group(1)), int(match.group(2))
    if not (1 <= row <= MAX_ROWS and 1 <= column <= MAX_COLUMNS):
        raise InputError(f"{name}: cell reference {ref} is beyond the sheet's limits")
    return row, column


class SheetReader:
    """Expat handlers turning a sheet's XML into rows of values (see Workbook.rows); also
    used by the result writer, which needs the same rows with the byte offsets of their
    cells.  After each piece fed, take() gives the rows completed so far."""

    def __init__(self, book: Workbook, shape_only: bool = False) -> None:
        self.book = book
        # True: a cell's value is "" if it holds one, else None (which cells hold values,
        # all the result writer needs: no shared string, number or date is decoded)
        self.shape_only = shape_only
        self.limit = book.limits.max_cell_bytes
        self.done: list[list[Any]] = []
        self.row_number = 0  # 1-based number of the row being read (or last read)
        self.emitted = 0  # rows given out (missing rows included)
        self.cells: dict[int, Any] = {}
        self.column = 0
        self.kind = "n"
        self.style = 0
        self.in_value = False
        self.in_inline = False
        self.in_t = False
        self.rph = 0
        self.pieces: list[str] = []
        self.size = 0
        self.in_data = False
        self.has_formula = False
        self._names: dict[str, str] = {}  # tag -> local name (a handful of tags)
        self._columns: dict[str, int] = {}  # column letters of a reference -> number

    def local(self, tag: str) -> str:
        name = self._names.get(tag)
        if name is None:
            name = self._names[tag] = local_name(tag)
        return name

    def column_of(self, ref: str) -> int:
        """Column number of a cell reference (checked by parse_ref the first time its
        letters are seen; the row in a cell's reference is not used)."""
        letters = ref.rstrip("0123456789")
        column = self._columns.get(letters)
        if column is None:
            _, column = parse_ref(ref, self.book.name)
            self._columns[letters] = column
        return column

    def take(self) -> list[list[Any]]:
        done, self.done = self.done, []
        return done

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        local = self.local(tag)
        if local == "c":
            ref = attrs.get("r")
            if ref:
                self.column = self.column_of(ref)
            else:
                self.column += 1
                if self.column > MAX_COLUMNS:
                    raise _Refused(f"{self.book.name}: a row is wider than {MAX_COLUMNS} columns")
            self.kind = attrs.get("t", "n")
            self.style = _int(attrs.get("s", "0"))
            self.pieces = []
            self.size = 0
            self.has_formula = False
        elif local == "v":
            self.in_value = True
        elif local == "is":
            self.in_inline = True
        elif local == "t":
            self.in_t = self.in_inline
        elif local == "rPh":
            self.rph += 1
        elif local == "f":
            self.has_formula = True
        elif local == "row":
            number = _int(attrs.get("r", ""), self.row_number + 1)
            if number > MAX_ROWS:
                raise _Refused(
                    f"{self.book.name}: a sheet holds more than {MAX_ROWS:,} rows,"
                    " the most a workbook can hold"
                )
            if number <= self.row_number:
                raise _Refused(
                    f"{self.book.name}: the workbook could not be read (row {number} out of order)"
                )
            self.start_row(number)
        elif local == "sheetData":
            self.in_data = True

    def start_row(self, number: int) -> None:
        while self.emitted < number - 1:
            self.done.append([])
            self.emitted += 1
        self.row_number = number
        self.cells = {}
        self.column = 0

    def end(self, tag: str) -> None:
        local = self.local(tag)
        if local == "c":
            self.end_cell()
        elif local == "v":
            self.in_value = False
        elif local == "is":
            self.in_inline = False
        elif local == "t":
            self.in_t = False
        elif local == "rPh":
            self.rph -= 1
        elif local == "row":
            self.end_row()
        elif local == "sheetData":
            self.in_data = False

    def end_cell(self) -> None:
        text = "".join(self.pieces)
        if self.kind == "inlineStr":
            value: Any = text if self.pieces else None
        elif self.shape_only:
            value = "" if text else None
        else:
            value = self.book.value(self.kind, text, self.style)
        if value is not None:
            self.cells[self.column] = value
        self.pieces = []

    def end_row(self) -> None:
        cells = self.cells
        row: list[Any] = [None] * max(cells) if cells else []
        for column, value in cells.items():
            row[column - 1] = value
        self.done.append(row)
        self.emitted += 1
        self.cells = {}

    def text(self, data: str) -> None:
        if self.in_value or (self.in_t and not self.rph):
            self.size += utf8_size(data)
            if self.size > self.limit:
                raise _Refused(self.book._cell_too_big(f"a cell of row {self.row_number}"))
            self.pieces.append(data)


class Workbooks:
    """Keeps the workbooks it opens open for the next reader of the same file, so that the
    readers of one step (intake's detection, then its count) share one opening, its zip
    directory and the shared strings read so far; `opener` makes the real openings (a
    recorder in tests).  Close it when the step is done."""

    def __init__(
        self, opener: Callable[[Path, str, XlsxLimits | None], Workbook] | None = None
    ) -> None:
        self._opener = opener or open_workbook
        self._books: dict[Path, Workbook] = {}

    def get(self, path: Path, name: str, limits: XlsxLimits | None = None) -> Workbook:
        key = Path(path).resolve()
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = self._opener(Path(path), name, limits)
        return book

    def close(self) -> None:
        for book in self._books.values():
            book.close()
        self._books.clear()

    def __enter__(self) -> Workbooks:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@contextlib.contextmanager
def borrowed(
    books: Workbooks | None, path: Path, name: str, limits: XlsxLimits | None
) -> Iterator[Workbook]:
    """The workbook `books` keeps (left open), or one opened for this reader alone."""
    if books is not None:
        yield books.get(path, name, limits)
        return
    with open_workbook(path, name, limits) as book:
        yield book


def open_workbook(path: Path, name: str, limits: XlsxLimits | None = None) -> Workbook:
    return Workbook(Path(path), name, limits or DEFAULT_LIMITS)
