"""What a customer's list looks like to us: its kind, encoding, dialect, header and email
column (:class:`FileLayout`), and the one error every reader raises (:class:`InputError`)."""

from __future__ import annotations

from typing import Literal

import msgspec

from mailvet.settings import EngineSettings

# The defaults of MAILVET_MAX_CELL_BYTES and MAILVET_MAX_XLSX_EXPANDED_BYTES, written once in
# settings.EngineSettings, are the layer's when no limits are given (settings imports
# nothing of this package, which would make it costly to import).
_SETTINGS = EngineSettings()
MAX_CELL = _SETTINGS.max_cell_bytes
MAX_XLSX_EXPANDED = _SETTINGS.max_xlsx_expanded_bytes
RESULT_CELL_HEADROOM = 1024  # FileLayout.result_max_cell


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
    # longest cell (MAILVET_MAX_CELL_BYTES, kept from detection for every later reader):
    # characters of the decoded text in a CSV/TXT list (tabular.limits, the record cutter),
    # UTF-8 bytes in an XLSX workbook (tabular.workbook, through xlsx.limits_of)
    max_cell: int = MAX_CELL
    # bytes an XLSX workbook may inflate to, per opening (MAILVET_MAX_XLSX_EXPANDED_BYTES)
    max_expanded: int = MAX_XLSX_EXPANDED

    @property
    def result_max_cell(self) -> int:
        """The longest cell a reader of this list's RESULT takes: what mailvet writes into
        or beside a row can be a little longer than the list's longest cell (a suggestion
        repairing `a@gmailcom` adds a character, the formula guard a quote), so a result
        whose list had a cell at the limit is still read back (RESULT_CELL_HEADROOM)."""
        return self.max_cell + RESULT_CELL_HEADROOM

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
