"""Layout detection: kind (CSV, TXT, XLSX), encoding, delimiter, header and the email
column of an uploaded list (:func:`detect_layout`)."""

from __future__ import annotations

import codecs
import collections
import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path

import msgspec

from mailvet.tabular.csv_cutter import csv_records
from mailvet.tabular.encoding import BOMS, choose_encoding, open_text
from mailvet.tabular.layout import HEADER_RECORDS, FileLayout, InputError, one_line
from mailvet.tabular.workbook import Workbooks, XlsxLimits, borrowed
from mailvet.tabular.xlsx import head_records

SAMPLE_BYTES = 64 * 1024  # binary check, delimiter sniffing


SNIFF_LINES = 1000  # sample lines read with each candidate delimiter


DELIMITERS = ",;\t|"


ZIP_MAGIC = b"PK\x03\x04"


OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old .xls / .doc, encrypted .xlsx


XLSX_EXTENSIONS = frozenset({".xlsx", ".xlsm", ".xltx", ".xltm"})


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


def _norm(cell: str) -> str:
    """Header name normal form: case-folded, without spaces, _, -, dots and other punctuation."""
    return _NON_WORD.sub("", cell.casefold())


def _display_name(path: Path, filename: str | None) -> str:
    return one_line(filename or path.name) or "the file"


def _extension(name: str) -> str:
    return Path(name).suffix.lower()


def detect_layout(
    path: Path,
    email_column: str | None = None,
    filename: str | None = None,
    sheet: str | None = None,
    limits: XlsxLimits | None = None,
    books: Workbooks | None = None,
    header_row: int | None = None,
) -> FileLayout:
    """Find kind, encoding, delimiter, header and email column of an uploaded list.

    ``filename`` is the user's original file name: its extension decides
    between CSV and TXT (and XLSX) when ``path`` is a storage temp file, and it
    names the file in error messages.  ``sheet`` picks an XLSX workbook's sheet (without
    it every sheet is searched, see _detect_xlsx); ``limits`` bound what reading a workbook
    may cost, and are kept in its layout for the later readers; ``books`` keeps the workbook
    open for them (see Workbooks).  ``header_row`` overrides the header detection of a
    CSV or XLSX list: the 1-based record number of the header (its preamble before it),
    0 for none (see _chosen_header); a one-column TXT list keeps its own rule.
    Raises :class:`InputError`.
    """
    path = Path(path)
    name = _display_name(path, filename)
    ext = _extension(filename or path.name)
    try:
        with open(path, "rb") as fh:
            head = fh.read(SAMPLE_BYTES)
            whole = not fh.read(1)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {one_line(exc.strerror or exc)}") from None
    if not head:
        raise InputError(f"{name} is empty")

    if head.startswith(ZIP_MAGIC) or ext in XLSX_EXTENSIONS:
        return _detect_xlsx(
            path, name, email_column, sheet, limits or XlsxLimits(), books, header_row
        )

    encoding, bom_len = "", 0
    for bom, codec in BOMS:
        if head.startswith(bom):
            encoding, bom_len = codec, len(bom)
            break
    if b"\x00" in head and not encoding:
        encoding = _utf16_by_nul_bytes(head)
    if b"\x00" in head and not encoding.startswith("utf-16"):
        if head.startswith(OLE_MAGIC):
            raise InputError(
                f"{name} looks like an old-style Excel .xls (or password-protected) file,"
                " not CSV/TXT/XLSX; save it as .xlsx or CSV"
            )
        raise InputError(f"{name} looks like a binary file, not CSV/TXT/XLSX")

    encoding, nonblank = choose_encoding(path, name, encoding, bom_len)
    if not nonblank:
        raise InputError(f"{name} is empty")

    decoder = codecs.getincrementaldecoder(encoding)("replace")
    sample = decoder.decode(head[bom_len:], final=whole)
    lines = list(io.StringIO(sample, newline=""))
    if not whole and len(lines) > 1:
        lines.pop()  # cut in the middle
    max_cell = (limits or XlsxLimits()).max_cell_bytes  # CSV/TXT: characters of the text
    base = FileLayout(kind="csv", encoding=encoding, bom=bom_len > 0, max_cell=max_cell)

    if ext == ".txt" and not any(d in line for line in lines for d in DELIMITERS):
        return _detect_txt(path, name, base, email_column)

    delimiter = _sniff_delimiter(lines)
    layout = msgspec.structs.replace(base, delimiter=delimiter)
    records = _csv_head_records(path, layout)
    if not records:
        raise InputError(f"{name} is empty")
    header_pos, email_index = _analyse(records, email_column, name, header_row)
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


# C0 controls that text files do not hold (a file decoded as UTF-16 that holds them is not text)
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f]")


def _utf16_by_nul_bytes(head: bytes) -> str:
    """The codec ("utf-16-le", "utf-16-be") of a file without a BOM whose NUL bytes say it is UTF-16
    text (most characters of a list are below U+0100: every other byte is NUL, the odd
    ones in little-endian, the even ones in big-endian); "" otherwise."""
    pairs = len(head) // 2
    even, odd = head[0 : 2 * pairs : 2].count(0), head[1 : 2 * pairs : 2].count(0)
    for codec, nuls, others in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if nuls * 10 >= pairs * 6 and others * 20 <= pairs:
            sample = head[: 2 * pairs].decode(codec, "replace")
            if not _CONTROLS.search(sample):
                return codec
    return ""


def _sniff_delimiter(lines: list[str]) -> str:
    """One of , ; TAB |: the one under which csv rules (quotes respected, as the records are
    read later) split the most sample records into two cells or more and give the most of
    them one number of cells (the sum of the two counts: a list whose trailing empty cells
    are left off has fewer records of one width, but still splits them all); ties go to
    the one whose count the first record has too, then to more cells, then to the order of
    DELIMITERS; "," when none splits a record.  (csv.Sniffer was used before: its quote
    heuristics took a "'" of a small file for a quote character, and a quoted '"' beside a
    TAB for a TAB-separated file.)"""
    sample = lines[:SNIFF_LINES]
    best: tuple[tuple[int, bool, int, int], str] | None = None
    for rank, delimiter in enumerate(DELIMITERS):
        if not any(delimiter in line for line in sample):
            continue
        counts = _cell_counts(sample, delimiter)
        split = collections.Counter(n for n in counts if n > 1)
        if not split:
            continue
        cells, agree = max(split.items(), key=lambda item: (item[1], item[0]))
        key = (agree + sum(split.values()), counts[0] == cells, cells, -rank)
        if best is None or key > best[0]:
            best = (key, delimiter)
    return best[1] if best else ","


def _cell_counts(lines: list[str], delimiter: str) -> list[int]:
    """The number of cells of each non-blank record of `lines` read with `delimiter`
    (the records before a csv.Error, e.g. a cell over the field limit)."""
    counts: list[int] = []
    try:
        for row in csv.reader(lines, delimiter=delimiter, quotechar='"'):
            if row:
                counts.append(len(row))
    except csv.Error:
        pass
    return counts


def _csv_head_records(path: Path, layout: FileLayout) -> list[tuple[int, list[str]]]:
    """The first HEADER_RECORDS non-blank records, with their record index."""
    records: list[tuple[int, list[str]]] = []
    with csv_records(path, layout) as reader:
        for index, row in enumerate(reader):
            if row:
                records.append((index, row))
                if len(records) >= HEADER_RECORDS:
                    break
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


def _chosen_header(
    records: Sequence[tuple[int, Sequence[str]]],
    email_column: str | None,
    name: str,
    header_row: int,
) -> tuple[int | None, int]:
    """_analyse with the header chosen by the customer: record number `header_row` (1-based,
    blank records counted, as FileLayout.skip_records counts them), 0 for no header; the
    email column is the one named or numbered, else the one of the rows below that holds
    the most addresses."""
    header_pos: int | None = None
    data = records
    if header_row > 0:
        found = [pos for pos, (index, _) in enumerate(records) if index == header_row - 1]
        if not found:
            raise InputError(
                f"row {header_row} cannot be the header of {name}: it is blank or not among"
                f" its first {HEADER_RECORDS} rows"
            )
        header_pos = found[0]
        data = records[header_pos + 1 :]
    wanted = (email_column or "").strip()
    if not wanted:
        col = _best_column(data)
        if col is None:
            raise InputError("could not find an email column below the header row")
        return header_pos, col
    if _DIGITS.fullmatch(wanted):
        number = int(wanted)
        width = max(len(cells) for _, cells in records)
        if not 1 <= number <= width:
            raise InputError(f"column {number} is out of range: {name} has {width} columns")
        return header_pos, number - 1
    if header_pos is not None:
        for col, cell in enumerate(records[header_pos][1]):
            if cell.strip().casefold() == wanted.casefold():
                return header_pos, col
    raise InputError(f"no column named {one_line(wanted)!r} in the header row of {name}")


def _analyse(
    records: Sequence[tuple[int, Sequence[str]]],
    email_column: str | None,
    name: str,
    header_row: int | None = None,
) -> tuple[int | None, int]:
    """(position of the header in records, or None; email column) — or InputError."""
    if header_row is not None:
        return _chosen_header(records, email_column, name, header_row)
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
    columns = ", ".join(one_line(c) for c in shown[:30]) + (", …" if len(shown) > 30 else "")
    raise InputError(f"no column named '{one_line(wanted)}' in the header (columns: {columns})")


def _detect_txt(path: Path, name: str, base: FileLayout, email_column: str | None) -> FileLayout:
    layout = msgspec.structs.replace(base, kind="txt", email_index=0)
    first: tuple[int, str] | None = None
    with open_text(path, layout, newline=None) as fh:
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
                f"no column named '{one_line(wanted)}' in the header (columns: {text})"
            )
        if not has_header and _DIGITS.fullmatch(wanted) and wanted != "1":
            raise InputError(f"column {int(wanted)} is out of range: {name} has 1 column")
    if has_header:
        return msgspec.structs.replace(
            layout, has_header=True, header=[text], skip_records=index + 1
        )
    return msgspec.structs.replace(layout, has_header=False, header=[], skip_records=0)


def _detect_xlsx(
    path: Path,
    name: str,
    email_column: str | None,
    sheet: str | None,
    limits: XlsxLimits,
    books: Workbooks | None,
    header_row: int | None = None,
) -> FileLayout:
    """The sheet named `sheet`, else the one whose email column holds the most addresses
    among the first rows of every sheet (ties: the sheet shown at opening, then workbook
    order); the workbook is opened once."""
    found: list[tuple[int, int, FileLayout]] = []
    errors: list[InputError] = []
    with borrowed(books, path, name, limits) as book:
        titles = [book.sheet_part(sheet)[0]] if sheet is not None else book.ordered_sheets()
        for order, title in enumerate(titles):
            records = head_records(book, title)
            if not records:
                empty = f"{name} is empty (sheet '{one_line(title)}' holds no data)"
                errors.append(InputError(empty))
                continue
            try:
                header_pos, email_index = _analyse(records, email_column, name, header_row)
            except InputError as exc:
                errors.append(exc)
                continue
            base = FileLayout(
                kind="xlsx",
                sheet=title,
                email_index=email_index,
                max_cell=limits.max_cell_bytes,
                max_expanded=limits.max_expanded_bytes,
            )
            if header_pos is None:
                layout = msgspec.structs.replace(base, has_header=False, header=[], skip_records=0)
                data = records
            else:
                index, cells = records[header_pos]
                header = [c.strip() for c in cells]
                layout = msgspec.structs.replace(
                    base, has_header=True, header=header, skip_records=index + 1
                )
                data = records[header_pos + 1 :]
            score = sum(
                1
                for _, cells in data
                if email_index < len(cells) and _LOOSE_EMAIL.fullmatch(cells[email_index].strip())
            )
            found.append((-score, order, layout))
    if found:
        return min(found, key=lambda item: item[:2])[2]
    if len(titles) > 1:
        shown = ", ".join(f"'{one_line(t)}'" for t in titles[:10])
        raise InputError(f"{errors[0]} (in none of the sheets {shown}; pick one with --sheet)")
    raise errors[0]
