"""File-format layer: find the email column of an uploaded list and stream it.

A customer uploads an email list as CSV, TXT (one address per line) or XLSX and
gets back the same file with verdict columns appended.  This module

* detects the layout of the file (:func:`detect_layout`),
* streams the email cell of every data row (:func:`iter_emails`, :func:`count_rows`),
* writes the result file (:func:`write_result`).

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
import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import msgspec

__all__ = [
    "FileLayout",
    "InputError",
    "count_rows",
    "detect_layout",
    "iter_emails",
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

_LOOSE_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
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

    ``extra_rows`` is consumed lazily, one item per data row; ValueError if it
    yields fewer or more items than there are data rows (the partial output is
    removed).  CSV input → CSV keeps the input bytes (see the module docstring).
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.resolve() == out_path.resolve():
        raise ValueError("write_result cannot overwrite its input file")
    kind = out_kind or result_kind(layout, None)
    try:
        if layout.kind == "csv" and kind == "csv":
            return _write_csv_raw(in_path, layout, out_path, extra_header, extra_rows)
        if kind == "csv":
            return _write_csv_plain(in_path, layout, out_path, extra_header, extra_rows)
        return _write_xlsx(in_path, layout, out_path, extra_header, extra_rows)
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise


def _cell_formatter(delimiter: str, quotechar: str) -> Callable[[Sequence[str]], str]:
    """Extra cells → text to append, quoted like csv.writer(QUOTE_MINIMAL) would."""
    doubled = quotechar * 2
    specials = (delimiter, quotechar, "\r", "\n")

    def quote(cell: str) -> str:
        if any(s in cell for s in specials):
            return quotechar + cell.replace(quotechar, doubled) + quotechar
        return cell

    def fmt(cells: Sequence[str]) -> str:
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


def _write_csv_raw(
    in_path: Path,
    layout: FileLayout,
    out_path: Path,
    extra_header: Sequence[str],
    extra_rows: Iterable[Sequence[str]],
) -> int:
    """CSV → CSV: every record's raw text copied, extras inserted before its terminator."""
    sep = layout.delimiter
    quotechar = layout.quotechar
    join_sep = sep.join
    fmt = _cell_formatter(sep, quotechar)
    extras = iter(extra_rows)
    skip = layout.skip_records
    header_at = skip - 1 if layout.has_header else -1
    written = 0
    with _open_text(in_path, layout) as src, open(
        out_path, "w", encoding=layout.encoding, errors="replace", newline=""
    ) as out:
        if layout.bom:
            out.write("\ufeff")
        # Two views of the same lines: csv.reader parses one, the other gives the raw
        # text; reader.line_num tells how many lines the record spanned.
        parse_lines, raw_lines = itertools.tee(src)
        reader = csv.reader(parse_lines, delimiter=sep, quotechar=layout.quotechar)
        take = raw_lines.__next__
        join = "".join
        islice = itertools.islice
        batch: list[str] = []
        add = batch.append
        done = 0  # lines consumed so far
        index = 0
        try:
            for row in reader if skip else ():  # preamble and header
                line_num = reader.line_num
                raw = take() if line_num - done == 1 else join(islice(raw_lines, line_num - done))
                done = line_num
                if index == header_at and extra_header:
                    add(_append(raw, sep + fmt(extra_header)))
                else:
                    add(raw)
                index += 1
                if index >= skip:
                    break
            for row in reader:  # the hot loop: keep it lean
                line_num = reader.line_num
                raw = take() if line_num - done == 1 else join(islice(raw_lines, line_num - done))
                done = line_num
                if row:
                    cells = next(extras, _MISSING)
                    if cells is _MISSING:
                        raise _too_few(written)
                    written += 1
                    # Fast path, all in C: str cells needing no quoting, record ending in \n.
                    try:
                        n_cells = len(cells)
                        text = join_sep(cells)
                    except TypeError:  # not a sized sequence of str
                        raw = _append(raw, sep + fmt(cells)) if cells else raw
                    else:
                        if (
                            text.count(sep) + 1 != n_cells
                            or quotechar in text
                            or "\n" in text
                            or "\r" in text
                        ):
                            if n_cells:
                                raw = _append(raw, sep + fmt(cells))
                        elif raw[-1] == "\n":
                            if raw.endswith("\r\n"):
                                raw = raw[:-2] + sep + text + "\r\n"
                            else:
                                raw = raw[:-1] + sep + text + "\n"
                        else:
                            raw = _append(raw, sep + text)
                add(raw)
                if len(batch) >= WRITE_BATCH:
                    out.write(join(batch))
                    batch.clear()
        except csv.Error as exc:
            raise _csv_error(exc, reader.line_num) from None
        except UnicodeDecodeError as exc:
            raise _decode_error(exc, layout) from None
        out.write(join(batch))
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
    """TXT or XLSX (or CSV) → a fresh CSV in UTF-8."""
    extras = iter(extra_rows)
    written = 0
    txt = layout.kind == "txt"
    with open(out_path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        if txt and not layout.has_header:
            writer.writerow(["email", *extra_header])
        for role, cells in _records(in_path, layout):
            if role == _DATA:
                more = next(extras, _MISSING)
                if more is _MISSING:
                    raise _too_few(written)
                written += 1
                writer.writerow([*map(_cell_str, cells), *map(_cell_str, more)])
            elif role == _HEADER:
                writer.writerow([*map(_cell_str, cells), *extra_header])
            elif not txt:  # TXT results drop blank lines
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
    from openpyxl import Workbook  # type: ignore[import-untyped]
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
