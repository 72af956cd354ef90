"""What a customer's list looks like to us: its kind, encoding, dialect, header and email
column (:class:`FileLayout`), and the one error every reader raises (:class:`InputError`)."""

from __future__ import annotations

from typing import Literal

import msgspec

MAX_XLSX_EXPANDED = 1 << 30  # default of MAILVET_MAX_XLSX_EXPANDED_BYTES
MAX_CELL = 131_072  # default of MAILVET_MAX_CELL_BYTES: csv's own field size limit


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
    max_cell: int = MAX_CELL  # longest CSV/TXT cell, in characters (tabular.limits)
    # bytes an XLSX workbook may inflate to, per opening (tabular.workbook; XLSX cells are
    # held to max_cell UTF-8 bytes)
    max_expanded: int = MAX_XLSX_EXPANDED

    @property
    def rendered_in_chunks(self) -> bool:
        """True when the result is made of the chunks as workers render them (CSV, TXT: the
        raw records with the cells appended), False when it is rewritten from the input and
        the cells at the end (XLSX).  See mailvet.tabular.transit."""
        return self.kind != "xlsx"


HEADER_RECORDS = 20  # non-blank records looked at to find the header / email column


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def need_text(layout: FileLayout) -> None:
    if layout.kind not in ("csv", "txt"):
        raise ValueError(f"chunked text is for CSV and TXT files, not {layout.kind}")
