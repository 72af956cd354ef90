"""XLSX workbooks: reading, XLSX and CSV results."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from mailvet.tabular import (
    FileLayout,
    InputError,
    Workbooks,
    XlsxLimits,
    count_rows,
    detect_layout,
    iter_emails,
    kind_of_name,
    result_kind,
    write_result,
)
from mailvet.tabular.workbook import Workbook, open_workbook
from tests.unit.tabular.support import EXTRA_HEADER, bad, extras_for, make_xlsx, read_xlsx, run

pytestmark = pytest.mark.unit


XLSX_ROWS: list[list[object]] = [
    ["Exported contacts", None, None],
    ["id", "E-mail", "score"],
    [1, "ann@example.com", 1.5],
    [2, " bob@example.com ", None],
    [3, None, 7],
    [4, "=not a formula", 2],
]


def test_xlsx_to_xlsx(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    make_xlsx(src, XLSX_ROWS)
    layout, emails, out = run(tmp_path, src.read_bytes(), name="in.xlsx")
    assert layout.kind == "xlsx" and layout.sheet == "Contacts"
    assert layout.header == ["id", "E-mail", "score"] and layout.skip_records == 2
    assert emails == ["ann@example.com", "bob@example.com", "", "=not a formula"]
    assert out.suffix == ".xlsx"
    assert read_xlsx(out) == [
        ("Exported contacts", None, None, None, None),  # nothing appended to the preamble
        ("id", "E-mail", "score", "status", "note"),
        (1, "ann@example.com", 1.5, "ok", "n0"),
        (2, " bob@example.com ", None, "ok", "n1"),
        (3, None, 7, "bad", "n2"),
        (4, "=not a formula", 2, "bad", "n3"),
    ]


def test_xlsx_to_csv(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    make_xlsx(src, XLSX_ROWS)
    layout = detect_layout(src)
    assert result_kind(layout, "results.CSV") == "csv"
    emails = list(iter_emails(src, layout))
    out = tmp_path / "out.csv"
    assert write_result(src, layout, out, EXTRA_HEADER, extras_for(emails), out_kind="csv") == 4
    assert out.read_bytes().decode() == (
        "Exported contacts\r\n"
        "id,E-mail,score,status,note\r\n"
        "1,ann@example.com,1.5,ok,n0\r\n"
        "2, bob@example.com ,,ok,n1\r\n"
        "3,,7,bad,n2\r\n"
        "4,=not a formula,2,bad,n3\r\n"
    )


def test_xlsx_trailing_empty_rows_are_not_rows(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["a@example.com", "x"])
    ws.append([None, None])
    ws.append(["b@example.com", "y"])
    ws.cell(row=10, column=1).value = None  # touched but empty
    ws.cell(row=12, column=3).number_format = "0.00"  # styled, no value
    wb.save(src)
    wb.close()
    layout, emails, out = run(tmp_path, src.read_bytes(), name="in.xlsx")
    assert not layout.has_header and emails == ["a@example.com", "b@example.com"]
    assert read_xlsx(out) == [
        ("a@example.com", "x", "ok", "n0"),
        (None, None, None, None),  # the empty rows are kept as they were, with no cells
        ("b@example.com", "y", "ok", "n1"),
        *[(None, None, None, None)] * 9,
    ]


def test_xlsx_header_with_styled_empty_cells_and_short_rows(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["name", "email", "city"])
    ws.append(["Ann", "ann@example.com"])  # short row: padded in the result
    ws.cell(row=1, column=6).number_format = "0.00"  # styled but empty header cell
    wb.save(src)
    wb.close()
    layout, emails, out = run(tmp_path, src.read_bytes(), name="in.xlsx")
    assert layout.header == ["name", "email", "city"] and emails == ["ann@example.com"]
    # the styled empty cell F1 stays where it was, the new ones go to D and E
    assert read_xlsx(out) == [
        ("name", "email", "city", "status", "note", None),
        ("Ann", "ann@example.com", None, "ok", "n0", None),
    ]
    assert openpyxl.load_workbook(out).active["F1"].number_format == "0.00"


def test_xlsx_from_storage_temp_file_without_suffix(tmp_path: Path) -> None:
    src = tmp_path / "blob-123"
    make_xlsx(src, [["email"], ["a@example.com"]])
    layout = detect_layout(src, filename="Contacts.xlsx")
    assert layout.kind == "xlsx" and list(iter_emails(src, layout)) == ["a@example.com"]


@pytest.mark.parametrize("name", ["in.csv", "in.txt"])
def test_a_csv_or_txt_list_has_no_xlsx_result(tmp_path: Path, name: str) -> None:
    src = tmp_path / name
    src.write_bytes(b"email\na@example.com\n")
    out = tmp_path / "out.xlsx"
    with pytest.raises(ValueError, match="CSV result only, not XLSX"):
        write_result(src, detect_layout(src), out, EXTRA_HEADER, [["ok", "n0"]], out_kind="xlsx")
    assert not out.exists()


def test_result_kind() -> None:
    assert result_kind(FileLayout(kind="xlsx"), None) == "xlsx"
    assert result_kind(FileLayout(kind="xlsx"), "out.xlsx") == "xlsx"
    assert result_kind(FileLayout(kind="xlsx"), "out.csv") == "csv"
    assert result_kind(FileLayout(kind="csv"), "out.xlsx") == "csv"
    assert result_kind(FileLayout(kind="txt"), None) == "csv"
    assert result_kind(FileLayout(kind="xlsx"), "csv") == "csv"  # a kind, as a job carries it
    assert result_kind(FileLayout(kind="xlsx"), "result.TXT") == "csv"
    assert result_kind(FileLayout(kind="xlsx"), "result") == "xlsx"  # no suffix: the input's
    assert kind_of_name("a.xlsm") == "xlsx" and kind_of_name("a.dat") is None


def two_sheet_workbook(path: Path, active: int = 0) -> None:
    wb = openpyxl.Workbook()
    notes = wb.active
    notes.title = "Read me"
    notes.append(["Questions? write to help@example.org"])
    notes.append(["Version 3"])
    ws = wb.create_sheet("Contacts")
    ws.append(["name", "address"])
    ws.append(["Ann", "ann@example.com"])
    ws.append(["Bob", "bob@example.com"])
    wb.active = active
    wb.save(path)
    wb.close()


def test_the_column_search_looks_at_every_sheet(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    two_sheet_workbook(src)
    layout, emails, out = run(tmp_path, src.read_bytes(), name="in.xlsx")
    assert layout.sheet == "Contacts" and layout.email_index == 1
    assert emails == ["ann@example.com", "bob@example.com"]
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Read me", "Contacts"]  # every sheet is in the result
    assert [c.value for c in book["Read me"]["A"]] == [
        "Questions? write to help@example.org",
        "Version 3",
    ]
    assert [[c.value for c in row] for row in book["Contacts"].iter_rows()] == [
        ["name", "address", "status", "note"],
        ["Ann", "ann@example.com", "ok", "n0"],
        ["Bob", "bob@example.com", "ok", "n1"],
    ]


def test_a_chosen_sheet(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    two_sheet_workbook(src, active=1)
    layout = detect_layout(src, sheet="Read me")  # not the sheet it would have chosen
    assert layout.sheet == "Read me" and not layout.has_header
    assert list(iter_emails(src, layout)) == ["Questions? write to help@example.org", "Version 3"]
    assert detect_layout(src, sheet="CONTACTS").sheet == "Contacts"  # as Excel, any case
    with pytest.raises(InputError, match="has no sheet named 'Nope'"):
        detect_layout(src, sheet="Nope")


def test_no_sheet_with_an_email_column(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["a", "b"])
    wb.create_sheet("Second").append(["c"])
    wb.save(src)
    message = bad(tmp_path, src.read_bytes(), name="in.xlsx")
    assert message == (
        "could not find an email column; name it with --email-column"
        " (in none of the sheets 'Sheet', 'Second'; pick one with --sheet)"
    )


class RecordingOpener:
    """Opens workbooks as open_workbook does, and records each opening."""

    def __init__(self) -> None:
        self.opened: list[Path] = []

    def __call__(self, path: Path, name: str, limits: XlsxLimits | None = None) -> Workbook:
        self.opened.append(path)
        return open_workbook(path, name, limits)


@pytest.mark.parametrize("has_header", [True, False])
def test_each_step_opens_the_workbook_once(tmp_path: Path, has_header: bool) -> None:
    src = tmp_path / "in.xlsx"
    two_sheet_workbook(src)  # the search reads both sheets: still one opening
    if not has_header:
        book = openpyxl.load_workbook(src)
        book["Contacts"].delete_rows(1)
        book.save(src)
    intake = RecordingOpener()
    with Workbooks(intake) as books:  # what intake does
        layout = detect_layout(src, books=books)
        assert count_rows(src, layout, books=books) == 2 and layout.has_header == has_header
    assert intake.opened == [src]
    for kind in ("xlsx", "csv"):  # the result generator
        writer = RecordingOpener()
        out = tmp_path / f"out.{kind}"
        with Workbooks(writer) as books:
            write_result(src, layout, out, ["s"], [["x"]] * 2, kind, books)
        assert writer.opened == [src], kind
