"""File-format layer: find the email column of an uploaded list and stream it.

A customer uploads an email list as CSV, TXT (one address per line) or XLSX and
gets back the same file with verdict columns appended.  This module

* detects the layout of the file (:func:`detect_layout`),
* streams the email cell of every data row (:func:`iter_emails`, :func:`count_rows`),
* writes the result file (:func:`write_result`),
* cuts CSV and TXT files into chunks of raw records that pipeline workers parse
  and render on their own (:func:`header_text`, :func:`iter_text_chunks`,
  :func:`chunk_emails`, :func:`render_header`, :func:`render_chunk`,
  :func:`output_encoding`): BOM + rendered header + rendered chunks, in order,
  is the file :func:`write_result` writes, byte for byte.

Everything is streamed: no function holds all rows in memory, so a file of a
million rows costs a few MiB whatever its size.

Definitions shared by every function (they must agree exactly):

* A *record* is what :class:`csv.reader` yields (one line, or several when a
  quoted field holds line breaks); for TXT a line; for XLSX a sheet row.
* The first ``skip_records`` records are the preamble and the header (the
  header being the last of them when ``has_header``).
* Every later record is a *data row*, except blank records: a CSV line that is
  completely empty (``csv.reader`` yields ``[]``), a TXT line holding only
  white space, an XLSX row whose cells are all empty (``None``).  Blank records
  are not rows: they are not counted, get no verdict, and are copied unchanged
  to a CSV result (TXT results drop them; trailing empty XLSX rows are dropped,
  empty XLSX rows between rows are kept as empty rows).
* A data row whose email cell is empty or missing (row too short) is still a
  row; its email is ``""``.

CSV output keeps the input byte for byte: every record's raw text, with its
own quoting, embedded line breaks and line terminator, is written unchanged
with ``delimiter + extra cells`` inserted before its terminator, in the input's
encoding and BOM.  A row shorter than the header gets the extra cells right
after its own cells (no padding), so its extras sit under the wrong header
names; rows are never re-quoted or padded, to keep the bytes of the input.
Files without a header get no header line in the result either.

XLSX and TXT inputs are re-written rather than copied (XLSX → XLSX or CSV,
TXT → CSV, both CSV in UTF-8 without BOM and with ``\\r\\n`` line ends).  In
those outputs rows shorter than the header are padded with empty cells so that
the extra columns line up.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import datetime as dt
import functools
import io
import itertools
import operator
import re
import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

__all__ = [
    "OUTPUT_ERRORS",
    "FileLayout",
    "InputError",
    "chunk_emails",
    "count_rows",
    "detect_layout",
    "header_text",
    "iter_emails",
    "iter_text_chunks",
    "output_encoding",
    "render_chunk",
    "render_header",
    "result_kind",
    "write_result",
]


class InputError(Exception):
    """Bad input file; str(exc) is ONE clear human-readable line (no traceback material)."""


class FileLayout(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["csv", "txt", "xlsx"]
    encoding: str = "utf-8"  # python codec used to read (without BOM handling)
    bom: bool = False  # input started with a BOM (the output keeps it)
    delimiter: str = ","
    quotechar: str = '"'
    has_header: bool = True
    header: list[str] = []  # header cells (empty if no header)
    email_index: int = 0  # 0-based column of the email address
    skip_records: int = 1  # records before the first data row (preamble + header)
    sheet: str | None = None  # xlsx sheet name


# --------------------------------------------------------------------------- constants

SAMPLE_BYTES = 64 * 1024  # binary check, delimiter sniffing
SCAN_BLOCK = 1024 * 1024  # encoding check of the whole file
HEADER_RECORDS = 20  # non-blank records looked at to find the header / email column
SNIFF_LINES = 100  # lines handed to csv.Sniffer (its regexes are not linear)
SNIFF_CHARS = 32 * 1024
XLSX_SCAN_ROWS = 1000  # rows read at most (blank ones included) to find 20 non-blank
WRITE_BATCH = 2048  # output records joined per write() call

DELIMITERS = ",;\t|"
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old .xls / .doc, encrypted .xlsx
XLSX_EXTENSIONS = frozenset({".xlsx", ".xlsm", ".xltx", ".xltm"})
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Normalised header names (see _norm) of an email column, most specific first:
# when a header has several, the one whose cells look most like addresses wins,
# then the earlier one in this tuple.
EMAIL_HEADER_NAMES: tuple[str, ...] = (
    "email",  # also e-mail, E_Mail, "e mail", eMail
    "emailaddress",  # also "E-mail address", email_address
    "emailaddr",
    "emailid",
    "useremail",
    "contactemail",
    "emails",
    "mail",
    "mailaddress",
    "courriel",
    "adressecourriel",
    "adresseemail",
    "adressemail",
    "correo",
    "correoelectronico",
    "correoelectrónico",
    "emailadresse",
)
_NAME_RANK = {name: rank for rank, name in enumerate(EMAIL_HEADER_NAMES)}
# A TXT file has a header only if its first line is one of these words.
TXT_HEADER_NAMES = frozenset(
    EMAIL_HEADER_NAMES + ("emailaddresses", "address", "addresses", "contacts", "recipients")
)

# an address, or a display-name cell around one ("Ann Lee <ann@x.com>", exports of mail clients)
_LOOSE_EMAIL = re.compile(r"[^@\s]+@[^@\s]+|[^@<>]*<[^@\s<>]+@[^@\s<>]+>")
_NON_WORD = re.compile(r"[\W_]+")
_DIGITS = re.compile(r"[0-9]+")
_XLSX_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")

_PRE, _HEADER, _BLANK, _DATA = 0, 1, 2, 3  # record roles of the generic record stream


# --------------------------------------------------------------------------- small helpers


def _norm(cell: str) -> str:
    """Header name normal form: case-folded, without spaces, _, -, dots and other punctuation."""
    return _NON_WORD.sub("", cell.casefold())


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _display_name(path: Path, filename: str | None) -> str:
    return _one_line(filename or path.name) or "the file"


def _extension(name: str) -> str:
    return Path(name).suffix.lower()


def _cell_str(value: Any) -> str:
    """Text of an XLSX cell value as a spreadsheet shows it (None → "")."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    return str(value)


def _bom_of(layout: FileLayout) -> int:
    """Length in bytes of the input's BOM."""
    if not layout.bom:
        return 0
    return len(codecs.BOM_UTF8) if layout.encoding.replace("_", "-").lower() in (
        "utf-8",
        "utf8",
    ) else 2


@contextmanager
def _open_text(path: Path, layout: FileLayout, newline: str | None = "") -> Iterator[IO[str]]:
    raw = open(path, "rb")  # noqa: SIM115 - closed by the wrapper
    try:
        raw.seek(_bom_of(layout))
        text = io.TextIOWrapper(raw, encoding=layout.encoding, errors="strict", newline=newline)
    except BaseException:
        raw.close()
        raise
    with text:
        yield text


def _decode_error(exc: UnicodeDecodeError, layout: FileLayout) -> InputError:
    return InputError(f"the file is not valid {layout.encoding} text ({_one_line(exc.reason)})")


def _csv_error(exc: csv.Error, line: int) -> InputError:
    return InputError(f"malformed CSV near line {line}: {_one_line(exc)}")


# --------------------------------------------------------------------------- detection


def detect_layout(
    path: Path, email_column: str | None = None, filename: str | None = None
) -> FileLayout:
    """Find kind, encoding, delimiter, header and email column of an uploaded list.

    ``filename`` is the user's original file name: its extension decides
    between CSV and TXT (and XLSX) when ``path`` is a storage temp file, and it
    names the file in error messages.  Raises :class:`InputError`.
    """
    path = Path(path)
    name = _display_name(path, filename)
    ext = _extension(filename or path.name)
    try:
        with open(path, "rb") as fh:
            head = fh.read(SAMPLE_BYTES)
            whole = not fh.read(1)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {_one_line(exc.strerror or exc)}") from None
    if not head:
        raise InputError(f"{name} is empty")

    if head.startswith(ZIP_MAGIC) or ext in XLSX_EXTENSIONS:
        return _detect_xlsx(path, name, email_column)

    encoding, bom_len = "", 0
    for bom, codec in BOMS:
        if head.startswith(bom):
            encoding, bom_len = codec, len(bom)
            break
    if b"\x00" in head and not encoding.startswith("utf-16"):
        if head.startswith(OLE_MAGIC):
            raise InputError(
                f"{name} looks like an old-style Excel .xls (or password-protected) file,"
                " not CSV/TXT/XLSX; save it as .xlsx or CSV"
            )
        raise InputError(f"{name} looks like a binary file, not CSV/TXT/XLSX")

    encoding, nonblank = _choose_encoding(path, name, encoding, bom_len)
    if not nonblank:
        raise InputError(f"{name} is empty")

    decoder = codecs.getincrementaldecoder(encoding)("replace")
    sample = decoder.decode(head[bom_len:], final=whole)
    lines = list(io.StringIO(sample, newline=""))
    if not whole and len(lines) > 1:
        lines.pop()  # cut in the middle
    base = FileLayout(kind="csv", encoding=encoding, bom=bom_len > 0)

    if ext == ".txt" and not any(d in line for line in lines for d in DELIMITERS):
        return _detect_txt(path, name, base, email_column)

    delimiter = _sniff_delimiter(lines)
    layout = msgspec.structs.replace(base, delimiter=delimiter)
    records = _csv_head_records(path, layout)
    if not records:
        raise InputError(f"{name} is empty")
    header_pos, email_index = _analyse(records, email_column, name)
    if header_pos is None:
        return msgspec.structs.replace(
            layout, has_header=False, header=[], email_index=email_index, skip_records=0
        )
    index, cells = records[header_pos]
    return msgspec.structs.replace(
        layout,
        has_header=True,
        header=[c.strip() for c in cells],
        email_index=email_index,
        skip_records=index + 1,
    )


def _scan(path: Path, offset: int, encoding: str) -> tuple[bool, bool]:
    """(whole file decodes, holds a non-white-space character), 1 MiB at a time."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    nonblank = False
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            while block := fh.read(SCAN_BLOCK):
                text = decoder.decode(block)
                if not nonblank and text and not text.isspace():
                    nonblank = True
            text = decoder.decode(b"", final=True)
            if not nonblank and text and not text.isspace():
                nonblank = True
    except UnicodeDecodeError:
        return False, nonblank
    return True, nonblank


def _choose_encoding(path: Path, name: str, bom_encoding: str, bom_len: int) -> tuple[str, bool]:
    if bom_encoding:
        ok, nonblank = _scan(path, bom_len, bom_encoding)
        if not ok:
            raise InputError(
                f"{name} starts with a {bom_encoding.upper()} byte-order mark"
                f" but is not valid {bom_encoding.upper()} text"
            )
        return bom_encoding, nonblank
    for encoding in ("utf-8", "cp1252", "latin-1"):
        ok, nonblank = _scan(path, 0, encoding)
        if ok:
            return encoding, nonblank
    raise AssertionError("latin-1 decodes any byte string")  # pragma: no cover


def _sniff_delimiter(lines: list[str]) -> str:
    """One of , ; TAB |: csv.Sniffer restricted to them, else the most consistent count."""
    sample_lines = [line for line in lines[:SNIFF_LINES] if line.strip()]
    sample = "".join(sample_lines)[:SNIFF_CHARS]
    if not any(d in sample for d in DELIMITERS):
        return ","  # one column
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        delimiter = ""
    if delimiter in DELIMITERS and delimiter:
        return delimiter
    return _count_delimiter(sample_lines)


def _count_delimiter(lines: list[str]) -> str:
    """The candidate found the same non-zero number of times on the most lines."""
    best: tuple[tuple[int, int], str] | None = None
    for delimiter in DELIMITERS:
        counts = collections.Counter(line.count(delimiter) for line in lines)
        counts.pop(0, None)
        if not counts:
            continue
        per_line, n_lines = max(counts.items(), key=lambda item: (item[1], item[0]))
        key = (n_lines, per_line)
        if best is None or key > best[0]:
            best = (key, delimiter)
    return best[1] if best else ","


def _csv_head_records(path: Path, layout: FileLayout) -> list[tuple[int, list[str]]]:
    """The first HEADER_RECORDS non-blank records, with their record index."""
    records: list[tuple[int, list[str]]] = []
    with _open_text(path, layout) as fh:
        reader = csv.reader(fh, delimiter=layout.delimiter, quotechar=layout.quotechar)
        try:
            for index, row in enumerate(reader):
                if row:
                    records.append((index, row))
                    if len(records) >= HEADER_RECORDS:
                        break
        except csv.Error as exc:
            raise _csv_error(exc, reader.line_num) from None
        except UnicodeDecodeError as exc:  # pragma: no cover - checked by _choose_encoding
            raise _decode_error(exc, layout) from None
    return records


def _has_at(cells: Sequence[str]) -> bool:
    return any("@" in cell for cell in cells)


def _has_email(cells: Sequence[str]) -> bool:
    return any(_LOOSE_EMAIL.fullmatch(cell.strip()) for cell in cells)


def _column_scores(records: Sequence[tuple[int, Sequence[str]]]) -> dict[int, tuple[int, int]]:
    """Per column: (cells that look like an address, cells holding an @)."""
    scores: dict[int, tuple[int, int]] = {}
    for _, cells in records:
        for col, cell in enumerate(cells):
            if "@" in cell:
                loose, at = scores.get(col, (0, 0))
                scores[col] = (loose + bool(_LOOSE_EMAIL.fullmatch(cell.strip())), at + 1)
    return scores


def _best_column(records: Sequence[tuple[int, Sequence[str]]]) -> int | None:
    scores = _column_scores(records)
    if not scores:
        return None
    return max(scores, key=lambda col: (scores[col], -col))


def _named_header(records: Sequence[tuple[int, Sequence[str]]]) -> tuple[int, int] | None:
    """(position in records, column) of the first record naming an email column.

    A record is not taken for the header if it, or a record before it, holds a
    cell that looks like an address (a data value such as "mail" in a
    header-less file must not turn the rows above it into a preamble).
    """
    for pos, (_, cells) in enumerate(records):
        if _has_email(cells):
            return None
        named = [col for col, cell in enumerate(cells) if _norm(cell) in _NAME_RANK]
        if named:
            if len(named) > 1:
                scores = _column_scores(records[pos + 1 :])
                named.sort(
                    key=lambda col: (-scores.get(col, (0, 0))[0], _NAME_RANK[_norm(cells[col])])
                )
            return pos, named[0]
    return None


def _auto_header(records: Sequence[tuple[int, Sequence[str]]]) -> tuple[int | None, int | None]:
    """(header position or None, email column or None) without an --email-column."""
    named = _named_header(records)
    if named is not None:
        return named
    if _has_at(records[0][1]):
        return None, _best_column(records)
    return 0, _best_column(records[1:])


def _analyse(
    records: Sequence[tuple[int, Sequence[str]]], email_column: str | None, name: str
) -> tuple[int | None, int]:
    """(position of the header in records, or None; email column) — or InputError."""
    if email_column is None or not email_column.strip():
        header_pos, col = _auto_header(records)
        if col is None:
            raise InputError("could not find an email column; name it with --email-column")
        return header_pos, col

    wanted = email_column.strip()
    key = wanted.casefold()
    for pos, (_, cells) in enumerate(records):
        for col, cell in enumerate(cells):
            if cell.strip().casefold() == key:
                return pos, col
    header_pos, _ = _auto_header(records)
    if _DIGITS.fullmatch(wanted):
        number = int(wanted)
        width = max(len(cells) for _, cells in records)
        if not 1 <= number <= width:
            raise InputError(
                f"column {number} is out of range: {name} has {width} column"
                + ("s" if width != 1 else "")
            )
        # No header recognised and no "@" anywhere: take the first record for the header.
        return (0 if header_pos is None and not _has_at(records[0][1]) else header_pos), number - 1
    shown = records[header_pos if header_pos is not None else 0][1]
    columns = ", ".join(_one_line(c) for c in shown[:30]) + (", …" if len(shown) > 30 else "")
    raise InputError(f"no column named '{_one_line(wanted)}' in the header (columns: {columns})")


def _detect_txt(path: Path, name: str, base: FileLayout, email_column: str | None) -> FileLayout:
    layout = msgspec.structs.replace(base, kind="txt", email_index=0)
    first: tuple[int, str] | None = None
    with _open_text(path, layout, newline=None) as fh:
        for index, line in enumerate(fh):
            if line.strip():
                first = (index, line.strip())
                break
    if first is None:  # pragma: no cover - whitespace-only files are rejected before
        raise InputError(f"{name} is empty")
    index, text = first
    has_header = "@" not in text and _norm(text) in TXT_HEADER_NAMES
    if email_column is not None and email_column.strip():
        wanted = email_column.strip()
        if has_header and wanted.casefold() != text.casefold() and wanted != "1":
            if _DIGITS.fullmatch(wanted):
                raise InputError(f"column {int(wanted)} is out of range: {name} has 1 column")
            raise InputError(
                f"no column named '{_one_line(wanted)}' in the header (columns: {text})"
            )
        if not has_header and _DIGITS.fullmatch(wanted) and wanted != "1":
            raise InputError(f"column {int(wanted)} is out of range: {name} has 1 column")
    if has_header:
        return msgspec.structs.replace(layout, has_header=True, header=[text], skip_records=index + 1)
    return msgspec.structs.replace(layout, has_header=False, header=[], skip_records=0)


# --------------------------------------------------------------------------- XLSX


@contextmanager
def _open_workbook(path: Path, name: str) -> Iterator[Any]:
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    with open(path, "rb") as fh:
        try:
            # A file object, not the path: openpyxl refuses paths without an .xlsx suffix.
            wb = load_workbook(fh, read_only=True, data_only=True)
        except Exception:
            raise InputError(
                f"{name} is not a valid XLSX workbook (damaged, password-protected"
                " or another kind of file)"
            ) from None
        try:
            yield wb
        finally:
            wb.close()


def _worksheet(wb: Any, sheet: str | None, name: str) -> Any:
    if sheet is not None:
        try:
            return wb[sheet]
        except KeyError:
            raise InputError(f"{name} has no sheet named '{_one_line(sheet)}'") from None
    ws = wb.active
    if ws is None or not hasattr(ws, "iter_rows"):
        sheets = [s for s in wb.worksheets if hasattr(s, "iter_rows")]
        if not sheets:
            raise InputError(f"{name} has no worksheet")
        ws = sheets[0]
    return ws


def _guarded(rows: Iterator[Sequence[Any]], name: str) -> Iterator[Sequence[Any]]:
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:
            raise InputError(f"{name}: the worksheet could not be read ({_one_line(exc)})") from None
        yield row


def _sheet_title(path: Path, name: str) -> str:
    with _open_workbook(path, name) as wb:
        return str(_worksheet(wb, None, name).title)


@contextmanager
def _xlsx_sheet(path: Path, sheet: str | None, name: str) -> Iterator[Iterator[Sequence[Any]]]:
    """The rows of the sheet (tuples of values; no padding, [] for missing rows)."""
    with _open_workbook(path, name) as wb:
        ws = _worksheet(wb, sheet, name)
        # Some writers store a wrong <dimension> (e.g. "A1"); openpyxl would stop there.
        ws.reset_dimensions()
        yield _guarded(iter(ws.iter_rows(values_only=True)), name)


def _is_blank_row(row: Sequence[Any]) -> bool:
    return all(value is None for value in row)


def _detect_xlsx(path: Path, name: str, email_column: str | None) -> FileLayout:
    records: list[tuple[int, list[str]]] = []
    title = _sheet_title(path, name)
    with _xlsx_sheet(path, title, name) as rows:
        for index, row in enumerate(itertools.islice(rows, XLSX_SCAN_ROWS)):
            if not _is_blank_row(row):
                records.append((index, [_cell_str(v) for v in _fit(row, 0)]))
                if len(records) >= HEADER_RECORDS:
                    break
    if not records:
        raise InputError(f"{name} is empty (sheet '{_one_line(title)}' holds no data)")
    header_pos, email_index = _analyse(records, email_column, name)
    base = FileLayout(kind="xlsx", sheet=title, email_index=email_index)
    if header_pos is None:
        return msgspec.structs.replace(base, has_header=False, header=[], skip_records=0)
    index, cells = records[header_pos]
    return msgspec.structs.replace(
        base, has_header=True, header=[c.strip() for c in cells], skip_records=index + 1
    )


# --------------------------------------------------------------------------- generic record stream


def _records(
    path: Path, layout: FileLayout, pad: bool = True
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
            width = _xlsx_sample_width(path, layout)
        with _xlsx_sheet(path, layout.sheet, path.name) as rows:
            pending = 0  # empty rows are emitted only once a non-empty row follows
            for index, row in enumerate(rows):
                if _is_blank_row(row):
                    pending += 1
                    continue
                for _ in range(pending):
                    yield _BLANK, ()
                pending = 0
                if index < skip:
                    if index == header_at:
                        yield _HEADER, _fit(row, width)
                    else:
                        yield _PRE, _fit(row, 0)
                else:
                    yield _DATA, _fit(row, width)
        return
    if layout.kind == "txt":
        with _open_text(path, layout, newline=None) as fh:
            try:
                for index, line in enumerate(fh):
                    text = line.strip()
                    if index < skip:
                        yield (_HEADER, [text]) if index == header_at else (_PRE, [text])
                    else:
                        yield (_DATA, [text]) if text else (_BLANK, ())
            except UnicodeDecodeError as exc:
                raise _decode_error(exc, layout) from None
        return
    width = len(layout.header)
    with _open_text(path, layout) as fh:
        reader = csv.reader(fh, delimiter=layout.delimiter, quotechar=layout.quotechar)
        try:
            for index, row in enumerate(reader):
                if index < skip:
                    yield (_HEADER, row) if index == header_at else (_PRE, row)
                elif row:
                    yield _DATA, _pad(row, width)
                else:
                    yield _BLANK, ()
        except csv.Error as exc:
            raise _csv_error(exc, reader.line_num) from None
        except UnicodeDecodeError as exc:
            raise _decode_error(exc, layout) from None


def _pad(row: Sequence[Any], width: int) -> Sequence[Any]:
    if len(row) >= width:
        return row
    return list(row) + [None] * (width - len(row))


def _fit(row: Sequence[Any], width: int) -> Sequence[Any]:
    """Pad an XLSX row to width; drop empty cells beyond it (styled but empty cells
    make openpyxl return trailing Nones, which would push the extra columns right)."""
    if len(row) > width and row[-1] is None:
        end = len(row)
        while end > width and row[end - 1] is None:
            end -= 1
        return row[:end]
    return _pad(row, width)


def _xlsx_sample_width(path: Path, layout: FileLayout) -> int:
    """Widest of the first non-empty rows of a header-less sheet (trailing Nones cut)."""
    width = seen = 0
    with _xlsx_sheet(path, layout.sheet, path.name) as rows:
        for row in itertools.islice(rows, XLSX_SCAN_ROWS):
            if not _is_blank_row(row):
                width = max(width, len(_fit(row, 0)))
                seen += 1
                if seen >= HEADER_RECORDS:
                    break
    return width


# --------------------------------------------------------------------------- reading


def iter_emails(path: Path, layout: FileLayout) -> Iterator[str]:
    """The email cell of every data row, in order, stripped; "" if the row is too short."""
    path = Path(path)
    idx = layout.email_index
    if layout.kind == "csv":
        with _open_text(path, layout) as fh:
            reader = csv.reader(fh, delimiter=layout.delimiter, quotechar=layout.quotechar)
            try:
                collections.deque(itertools.islice(reader, layout.skip_records), maxlen=0)
                for row in reader:
                    try:
                        yield row[idx].strip()
                    except IndexError:
                        if row:
                            yield ""
            except csv.Error as exc:
                raise _csv_error(exc, reader.line_num) from None
            except UnicodeDecodeError as exc:
                raise _decode_error(exc, layout) from None
    elif layout.kind == "txt":
        with _open_text(path, layout, newline=None) as fh:
            try:
                for line in itertools.islice(fh, layout.skip_records, None):
                    text = line.strip()
                    if text:
                        yield text
            except UnicodeDecodeError as exc:
                raise _decode_error(exc, layout) from None
    else:
        for role, cells in _records(path, layout, pad=False):
            if role == _DATA:
                yield _cell_str(cells[idx]).strip() if idx < len(cells) else ""


def count_rows(path: Path, layout: FileLayout) -> int:
    """Number of data rows (== number of items iter_emails yields)."""
    path = Path(path)
    if layout.kind == "csv":
        with _open_text(path, layout) as fh:
            reader = csv.reader(fh, delimiter=layout.delimiter, quotechar=layout.quotechar)
            try:
                collections.deque(itertools.islice(reader, layout.skip_records), maxlen=0)
                return sum(map(bool, reader))
            except csv.Error as exc:
                raise _csv_error(exc, reader.line_num) from None
            except UnicodeDecodeError as exc:
                raise _decode_error(exc, layout) from None
    if layout.kind == "txt":
        with _open_text(path, layout, newline=None) as fh:
            try:
                lines = itertools.islice(fh, layout.skip_records, None)
                return sum(map(bool, map(str.strip, lines)))
            except UnicodeDecodeError as exc:
                raise _decode_error(exc, layout) from None
    return sum(1 for role, _ in _records(path, layout, pad=False) if role == _DATA)


# --------------------------------------------------------------------------- chunked text (CSV/TXT)
#
# The pipeline does the per-row work of CSV and TXT lists in the workers: the
# publisher cuts the decoded text into chunks of whole records
# (iter_text_chunks), a worker parses its chunk (chunk_emails) and renders its
# output text (render_chunk), and the result file is output_encoding's BOM, then
# render_header(header_text(...)), then the rendered chunks, each encoded on its
# own.  write_result (CSV/TXT → CSV) is made of the same pieces.
#
# Records are found without the csv module: a line holding no quote character
# is one record (a blank one if it is only a line terminator); a line holding
# one is matched against a regular expression that follows csv.reader's
# (non-strict) state machine and tells whether the line ends inside a quoted
# field, in which case the record goes on over the next lines.  Records longer
# than csv.field_size_limit() are parsed by csv.reader too, so that a file
# count_rows rejects is rejected here with the same message.

OUTPUT_ERRORS = "replace"  # error handler of the output codec: unencodable characters -> "?"
_LINE_ENDS = ("\n", "\r\n", "\r")  # a CSV line holding only its terminator: a blank record

_Matcher = Callable[[str], "re.Match[str] | None"]


@functools.lru_cache(maxsize=16)
def _record_matchers(delimiter: str, quotechar: str) -> tuple[_Matcher, _Matcher]:
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


def _count_blank(lines: list[str]) -> int:
    return lines.count("\n") + lines.count("\r\n") + lines.count("\r")


class _CsvCutter:
    """Cuts the lines of a CSV text (read with newline="") into records."""

    def __init__(self, lines: Iterator[str], layout: FileLayout) -> None:
        self.lines = lines
        self.quote = layout.quotechar
        self.delimiter = layout.delimiter
        self.ends_record, self.ends_quoted = _record_matchers(layout.delimiter, layout.quotechar)
        self.limit = csv.field_size_limit()
        self.done = 0  # lines read so far

    def check(self, lines: Sequence[str], first: int) -> None:
        """Parse one record (its lines, the first being line number `first`) with csv.reader:
        a field over csv.field_size_limit() is the same InputError as in count_rows."""
        reader = csv.reader(lines, delimiter=self.delimiter, quotechar=self.quote)
        try:
            collections.deque(reader, maxlen=0)
        except csv.Error as exc:
            raise _csv_error(exc, first - 1 + reader.line_num) from None

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
            if size > check_at:  # an unclosed quote: fail as soon as csv.reader would
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
            data = line not in _LINE_ENDS
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
                rows += len(batch) - _count_blank(batch)
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
        rows = n - _count_blank(batch)
        quoted = map(operator.contains, batch, itertools.repeat(self.quote))
        after = 0  # first line not inside a record spanning lines
        for j in itertools.compress(itertools.count(), quoted):
            if j < after or ends_record(batch[j]) is not None:
                continue
            k = j + 1
            while k < n and ends_quoted(batch[k]) is None:
                k += 1
            inside = batch[j + 1 : k + 1]  # not records of their own
            rows -= len(inside) - _count_blank(inside)
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
                rows += len(plain) - _count_blank(plain)
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


def _txt_parts(lines: Iterator[str], skip: int, size: int) -> Iterator[tuple[str, int]]:
    """_CsvCutter.parts for TXT: a line is a record, blank if white space only."""
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


def _need_text(layout: FileLayout) -> None:
    if layout.kind not in ("csv", "txt"):
        raise ValueError(f"chunked text is for CSV and TXT files, not {layout.kind}")


def _text_parts(
    path: Path, layout: FileLayout, size: int, with_header: bool
) -> Generator[tuple[str, int], None, None]:
    """header_text (with_header) and the chunks of iter_text_chunks."""
    with _open_text(Path(path), layout) as fh:
        if layout.kind == "txt":
            parts = _txt_parts(fh, layout.skip_records, size)
        else:
            parts = _CsvCutter(fh, layout).parts(layout.skip_records, size)
        try:
            if not with_header:
                next(parts)
            yield from parts
        except UnicodeDecodeError as exc:
            raise _decode_error(exc, layout) from None


def header_text(path: Path, layout: FileLayout) -> str:
    """Decoded text of the file before its first data row, exactly as in the file, without
    the BOM: the preamble records and the header record (``skip_records`` records, blank
    ones included) and the blank records that follow them; "" when the file starts with a
    data row (always the case with ``skip_records == 0`` unless it starts with blank
    lines); the whole text when the file has no data row.  CSV and TXT layouts only."""
    _need_text(layout)
    with contextlib.closing(_text_parts(path, layout, 1, True)) as parts:
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
    _need_text(layout)
    if rows_per_chunk < 1:
        raise ValueError(f"rows_per_chunk must be at least 1, not {rows_per_chunk}")
    return _text_parts(path, layout, rows_per_chunk, False)


def _csv_record_texts(text: str, layout: FileLayout) -> list[str]:
    """The raw records of a text made of whole CSV records."""
    lines = io.StringIO(text, newline="").readlines()
    quote = layout.quotechar
    if quote not in text:
        return lines
    ends_record, ends_quoted = _record_matchers(layout.delimiter, quote)
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


def _txt_lines(text: str) -> list[str]:
    """The lines of a TXT text, for str.strip() (the \\n split is exact without lone \\r)."""
    if "\r" not in text or text.count("\r") == text.count("\r\n"):
        return text.split("\n")
    return io.StringIO(text, newline="").readlines()


def chunk_emails(text: str, layout: FileLayout) -> list[str]:
    """The email cell (stripped, "" if the row is too short) of every data row of a chunk
    text (or of any text made of whole records): over the chunks of a file, iter_emails."""
    _need_text(layout)
    if layout.kind == "txt":
        return [email for email in map(str.strip, _txt_lines(text)) if email]
    idx = layout.email_index
    split = _split_lines(text) if layout.quotechar not in text else None
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
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=layout.delimiter, quotechar=layout.quotechar
    )
    try:
        for row in reader:
            try:
                add(row[idx].strip())
            except IndexError:
                if row:
                    add("")
    except csv.Error as exc:
        raise InputError(
            f"malformed CSV near line {reader.line_num} of a chunk: {_one_line(exc)}"
        ) from None
    return emails


@functools.lru_cache(maxsize=16)
def _cell_formatter(delimiter: str, quotechar: str) -> Callable[[Sequence[Any]], str]:
    """Extra cells → text to append, quoted like csv.writer(QUOTE_MINIMAL) would."""
    doubled = quotechar * 2
    specials = (delimiter, quotechar, "\r", "\n")

    def quote(cell: str) -> str:
        if any(s in cell for s in specials):
            return quotechar + cell.replace(quotechar, doubled) + quotechar
        return cell

    def fmt(cells: Sequence[Any]) -> str:
        if type(cells) is not list and type(cells) is not tuple:
            cells = list(cells)
        try:
            text = delimiter.join(cells)
        except TypeError:
            cells = [_cell_str(c) for c in cells]
            text = delimiter.join(cells)
        # Fast path: nothing to quote (checked on the joined text, in C).
        if (
            quotechar in text
            or "\n" in text
            or "\r" in text
            or text.count(delimiter) != len(cells) - 1
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
        # Fast path, checked on all rows at once in C: nothing to quote, no empty row.
        joined = "\n".join(texts)
        if (
            quotechar not in joined
            and "\r" not in joined
            and joined.count("\n") == len(texts) - 1
            and joined.count(delimiter) == sum(lens) - len(lens)
            and 0 not in lens
        ):
            return list(map(delimiter.__add__, texts))
    fmt = _cell_formatter(delimiter, quotechar)
    return [delimiter + fmt(row) if n else "" for row, n in zip(rows, lens)]


def _row_mismatch(rows: int, given: int) -> ValueError:
    return ValueError(f"the chunk holds {rows} data rows but {given} rows of cells were given")


def _split_lines(text: str) -> tuple[str, list[str]] | None:
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


def _render_csv(text: str, layout: FileLayout, cells: Iterable[Iterable[Any]]) -> str:
    tails = _tails(cells, layout.delimiter, layout.quotechar)
    quote = layout.quotechar
    split = _split_lines(text)
    if split:
        term, lines = split
        # Fast path: one line per record (a line with a quote that does not end inside
        # a quoted field: the matcher answers the same without the terminator).
        if quote not in text or all(
            map(
                _record_matchers(layout.delimiter, quote)[0],
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
    records = _csv_record_texts(text, layout)
    rows = len(records) - _count_blank(records)
    if rows != len(tails):
        raise _row_mismatch(rows, len(tails))
    rest = iter(tails)
    return "".join([raw if raw in _LINE_ENDS else _append(raw, next(rest)) for raw in records])


def _render_txt(text: str, cells: Iterable[Iterable[Any]]) -> str:
    """TXT rows as csv.writer(lineterminator="\\r\\n") writes [email, *cells] (the address
    quoted like the extra cells: QUOTE_MINIMAL with "," and '"')."""
    emails = chunk_emails(text, _TXT)
    tails = _tails(cells, ",", '"')
    if len(emails) != len(tails):
        raise _row_mismatch(len(emails), len(tails))
    if not emails:
        return ""
    joined = "\n".join(emails)  # TXT lines hold no line break
    if '"' in joined or "," in joined:
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
    _need_text(layout)
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
    records = _csv_record_texts(header, layout)
    if any(raw not in _LINE_ENDS for raw in records[skip:]):
        raise ValueError("not the header text of this CSV layout")
    if layout.has_header and 0 < skip <= len(records) and extra_header:
        fmt = _cell_formatter(layout.delimiter, layout.quotechar)
        records[skip - 1] = _append(records[skip - 1], layout.delimiter + fmt(extra_header))
    return "".join(records)


def render_chunk(text: str, layout: FileLayout, cells: Sequence[Sequence[str]]) -> str:
    """Output text of one chunk (or any text of whole records after the header): what
    write_result writes for these records given these extra cells, one row of cells per
    data row.  CSV: every record's raw text kept, delimiter + cells (quoted like
    csv.writer would) inserted before its terminator, blank records unchanged.  TXT:
    a CSV line (\\r\\n) per data row, blank lines dropped.  Cells that are not str are
    written as write_result writes them.  ValueError if len(cells) is not the number
    of data rows of the text."""
    _need_text(layout)
    if layout.kind == "txt":
        return _render_txt(text, cells)
    return _render_csv(text, layout, cells)


def output_encoding(layout: FileLayout) -> tuple[str, bytes]:
    """(codec, BOM): the output file is BOM + the rendered header and chunks, each encoded
    with ``.encode(codec, OUTPUT_ERRORS)`` ("replace": unencodable characters of extra
    cells become "?", as in write_result).  The codec writes no BOM of its own, so the
    pieces can be encoded apart and concatenated.  CSV: the input's encoding, BOM if
    the input had one; TXT: UTF-8, no BOM."""
    _need_text(layout)
    if layout.kind == "txt":
        return "utf-8", b""
    codec = layout.encoding
    name = codecs.lookup(codec).name
    bom = b""
    if name in ("utf-16", "utf-32"):  # these codecs put a BOM before their output
        codec = f"{name}-{'le' if sys.byteorder == 'little' else 'be'}"
        bom = "\ufeff".encode(codec)
    elif name == "utf-8-sig":
        codec, bom = "utf-8", codecs.BOM_UTF8
    if layout.bom:
        bom += "\ufeff".encode(codec)
    return codec, bom


# --------------------------------------------------------------------------- writing


def result_kind(layout: FileLayout, out_name: str | None) -> Literal["csv", "xlsx"]:
    """XLSX in → XLSX out unless out_name ends with .csv; CSV/TXT in → CSV."""
    if layout.kind == "xlsx":
        if out_name and out_name.strip().lower().endswith(".csv"):
            return "csv"
        return "xlsx"
    return "csv"


_MISSING: Any = object()


def _too_few(rows: int) -> ValueError:
    return ValueError(f"extra_rows has fewer items than the file's data rows (ran out after {rows})")


def _too_many(rows: int) -> ValueError:
    return ValueError(f"extra_rows has more items than the file's {rows} data rows")


def write_result(
    in_path: Path,
    layout: FileLayout,
    out_path: Path,
    extra_header: Sequence[str],
    extra_rows: Iterable[Sequence[str]],
    out_kind: Literal["csv", "xlsx"] | None = None,
) -> int:
    """Stream the input again and write every record, in order, with the extra cells
    appended to the header and to every data row; return the data rows written.

    ``extra_rows`` is consumed lazily, one item per data row (WRITE_BATCH rows at a
    time); ValueError if it yields fewer or more items than there are data rows (the
    partial output is removed).  CSV input → CSV keeps the input bytes (see the module
    docstring).  CSV/TXT → CSV is the chunked rendering (render_header, render_chunk)
    of the whole file.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.resolve() == out_path.resolve():
        raise ValueError("write_result cannot overwrite its input file")
    kind = out_kind or result_kind(layout, None)
    try:
        if kind == "csv" and layout.kind != "xlsx":
            return _write_text(in_path, layout, out_path, extra_header, extra_rows)
        if kind == "csv":
            return _write_csv_plain(in_path, layout, out_path, extra_header, extra_rows)
        return _write_xlsx(in_path, layout, out_path, extra_header, extra_rows)
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise


def _write_text(
    in_path: Path,
    layout: FileLayout,
    out_path: Path,
    extra_header: Sequence[str],
    extra_rows: Iterable[Sequence[str]],
) -> int:
    """CSV/TXT → CSV: the header part and chunks of WRITE_BATCH rows, rendered and encoded
    exactly as the pipeline's workers do it."""
    codec, bom = output_encoding(layout)
    extras = iter(extra_rows)
    written = 0
    with (
        contextlib.closing(_text_parts(in_path, layout, WRITE_BATCH, True)) as parts,
        open(out_path, "wb") as out,
    ):
        header, _ = next(parts)
        out.write(bom + render_header(header, layout, extra_header).encode(codec, OUTPUT_ERRORS))
        for text, rows in parts:
            cells = list(itertools.islice(extras, rows))
            if len(cells) < rows:
                raise _too_few(written + len(cells))
            out.write(render_chunk(text, layout, cells).encode(codec, OUTPUT_ERRORS))
            written += rows
    if next(extras, _MISSING) is not _MISSING:
        raise _too_many(written)
    return written


def _write_csv_plain(
    in_path: Path,
    layout: FileLayout,
    out_path: Path,
    extra_header: Sequence[str],
    extra_rows: Iterable[Sequence[str]],
) -> int:
    """XLSX → a fresh CSV in UTF-8 (CSV and TXT inputs go through _write_text)."""
    extras = iter(extra_rows)
    written = 0
    with open(out_path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        for role, cells in _records(in_path, layout):
            if role == _DATA:
                more = next(extras, _MISSING)
                if more is _MISSING:
                    raise _too_few(written)
                written += 1
                writer.writerow([*map(_cell_str, cells), *map(_cell_str, more)])
            elif role == _HEADER:
                writer.writerow([*map(_cell_str, cells), *extra_header])
            else:
                writer.writerow([_cell_str(c) for c in cells])
    if next(extras, _MISSING) is not _MISSING:
        raise _too_many(written)
    return written


def _write_xlsx(
    in_path: Path,
    layout: FileLayout,
    out_path: Path,
    extra_header: Sequence[str],
    extra_rows: Iterable[Sequence[str]],
) -> int:
    """Any input → XLSX through a write-only (streamed) workbook."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=layout.sheet or "Sheet1")

    def value(v: Any) -> Any:
        if isinstance(v, str):
            if _XLSX_ILLEGAL.search(v):
                v = _XLSX_ILLEGAL.sub("", v)
            if v.startswith("=") and len(v) > 1:  # text, not a formula
                cell = WriteOnlyCell(ws)
                cell.value = v
                cell.data_type = "s"
                return cell
        return v

    extras = iter(extra_rows)
    written = 0
    try:
        if layout.kind == "txt" and not layout.has_header:
            ws.append([value(v) for v in ("email", *extra_header)])
        for role, cells in _records(in_path, layout):
            if role == _DATA:
                more = next(extras, _MISSING)
                if more is _MISSING:
                    raise _too_few(written)
                written += 1
                ws.append([value(v) for v in itertools.chain(cells, more)])
            elif role == _HEADER:
                ws.append([value(v) for v in itertools.chain(cells, extra_header)])
            elif layout.kind != "txt":
                ws.append([value(v) for v in cells])
        if next(extras, _MISSING) is not _MISSING:
            raise _too_many(written)
    except BaseException:
        # Finish and remove the sheet's temporary file: nothing stays open or behind.
        with contextlib.suppress(Exception):
            ws.close()
        with contextlib.suppress(Exception):
            if ws._writer is not None:
                ws._writer.cleanup()
        raise
    wb.save(out_path)
    return written
