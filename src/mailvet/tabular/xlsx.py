"""XLSX workbooks: opening one (openpyxl, imported on first use), finding its sheet,
streaming its rows, and a cell's text as a spreadsheet shows it."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailvet.tabular.layout import InputError, one_line

XLSX_SCAN_ROWS = 1000  # rows read at most (blank ones included) to find 20 non-blank


def cell_str(value: Any) -> str:
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
            raise InputError(f"{name} has no sheet named '{one_line(sheet)}'") from None
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
            raise InputError(f"{name}: the worksheet could not be read ({one_line(exc)})") from None
        yield row


def sheet_title(path: Path, name: str) -> str:
    with _open_workbook(path, name) as wb:
        return str(_worksheet(wb, None, name).title)


@contextmanager
def sheet_rows(path: Path, sheet: str | None, name: str) -> Iterator[Iterator[Sequence[Any]]]:
    """The rows of the sheet (tuples of values; no padding, [] for missing rows)."""
    with _open_workbook(path, name) as wb:
        ws = _worksheet(wb, sheet, name)
        # Some writers store a wrong <dimension> (e.g. "A1"); openpyxl would stop there.
        ws.reset_dimensions()
        yield _guarded(iter(ws.iter_rows(values_only=True)), name)


def is_blank_row(row: Sequence[Any]) -> bool:
    return all(value is None for value in row)


_XLSX_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


def write_sheet(out_path: Path, title: str, rows: Iterable[Iterable[Any]]) -> None:
    """A workbook of one sheet holding `rows`, streamed through a write-only workbook (one
    row in memory at a time).  Characters XLSX cannot hold are dropped; text that starts
    with "=" stays text.  If `rows` raises, the workbook is still saved, which closes the
    sheet and removes openpyxl's temporary file; the caller removes the partial output."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=title)

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

    try:
        for row in rows:
            ws.append([value(v) for v in row])
    except BaseException:
        with contextlib.suppress(Exception):
            wb.save(out_path)
        raise
    wb.save(out_path)
