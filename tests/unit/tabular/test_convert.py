"""A finished result in the other kind (tabular/convert.py): a CSV or TXT list's CSV result
as one XLSX sheet, an XLSX list's XLSX result as CSV, each filtered by status on the way;
hostile cells stay text; what a workbook cannot hold is refused, nothing written."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest

from mailvet.domain.verdict import RESULT_COLUMNS
from mailvet.tabular import FileLayout, convert, detect_layout, iter_emails, write_result
from mailvet.tabular.convert import (
    MAX_CELL_CHARS,
    TooBigForXlsx,
    csv_to_xlsx,
    sheet_title,
    write_sheet,
    xlsx_to_csv,
)
from mailvet.tabular.xlsx import cell_str, sheet_rows

pytestmark = pytest.mark.unit

HOSTILE = "=cmd|' /C calc'!A0"
STATUSES = ["deliverable", "undeliverable", "risky", "unknown"]
REASONS = {"deliverable": "accepted", "undeliverable": "rejected", "risky": "catch_all",
           "unknown": "timeout"}  # fmt: skip


def verdict(i: int, email: str) -> tuple[str, ...]:
    """RESULT_COLUMNS' cells of row i: the statuses in turn; the last cells (smtp code,
    ASCII address) empty in every other row, as a verdict without them writes them."""
    status = STATUSES[i % len(STATUSES)]
    tail = ("250", email) if i % 2 == 0 else ("", "")
    cells = (status, REASONS[status], email, "", "false", "false", "false", "", "mx.test", *tail)
    assert len(cells) == len(RESULT_COLUMNS)
    return cells


def result_of(tmp_path: Path, src: Path, kind: str, **kw: str) -> tuple[FileLayout, Path]:
    """The list at `src` and its result of `kind` (as the pipeline writes it)."""
    layout = detect_layout(src, **kw)  # type: ignore[arg-type]
    emails = list(iter_emails(src, layout))
    out = tmp_path / f"result.{kind}"
    rows = [verdict(i, email) for i, email in enumerate(emails)]
    write_result(src, layout, out, RESULT_COLUMNS, rows, kind)  # type: ignore[arg-type]
    return layout, out


def csv_of(path: Path, encoding: str = "utf-8", delimiter: str = ",") -> list[list[str]]:
    with open(path, encoding=encoding, newline="") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def sheet_of(path: Path) -> list[list[str]]:
    """The one sheet of a workbook as openpyxl reads it (text, trailing empty cells cut)."""
    book = openpyxl.load_workbook(path)
    assert len(book.worksheets) == 1
    rows = []
    for row in book.worksheets[0].iter_rows():
        cells = [cell.value for cell in row]
        for cell in row:
            assert cell.value is None or cell.data_type == "s", (cell.coordinate, cell.value)
        while cells and cells[-1] is None:
            cells.pop()
        rows.append(["" if value is None else str(value) for value in cells])
    return rows


def our_reader(path: Path) -> list[list[str]]:
    """The same sheet as the project's own reader sees it."""
    with sheet_rows(path, None, path.name) as rows:
        return [[cell_str(value) for value in row] for row in rows]


def trimmed(rows: Sequence[Sequence[str]]) -> list[list[str]]:
    out = []
    for row in rows:
        cells = list(row)
        while cells and cells[-1] == "":
            cells.pop()
        out.append(cells)
    return out


# --- CSV -> XLSX ---------------------------------------------------------------------------------


def test_a_csv_result_is_one_sheet_of_its_rows_all_text(tmp_path: Path) -> None:
    src = tmp_path / "contacts.csv"
    src.write_bytes(
        b"name,email,amount\r\n"
        + f'"{HOSTILE}",ann@example.com,-5\r\n'.encode()
        + b'"two\r\nlines",bob@example.com,12\r\n'
        b"+1 555,=1+1@example.com,@x\r\n"
        b"Dee,dee@example.com,\x01ctl\r\n"
    )
    layout, result = result_of(tmp_path, src, "csv")
    out = tmp_path / "out.xlsx"
    assert csv_to_xlsx(result, out, layout=layout, title="contacts") == 4
    expected = csv_of(result)
    expected[4][2] = "ctl"  # a character XLSX cannot hold is dropped
    assert expected[2][0] == "two\r\nlines"
    expected[2][0] = "two\nlines"  # a line break in a cell: XML (and a spreadsheet) has \n
    assert sheet_of(out) == trimmed(expected)
    assert trimmed(our_reader(out)) == trimmed(expected)
    assert openpyxl.load_workbook(out).sheetnames == ["contacts"]
    assert sheet_of(out)[1][0] == HOSTILE  # the customer's cell, text (data_type "s")
    assert sheet_of(out)[3][5] == "'=1+1@example.com"  # the result's formula-safe cell


def test_a_filtered_csv_result_keeps_the_header_and_the_rows_asked(tmp_path: Path) -> None:
    src = tmp_path / "list.csv"
    src.write_bytes(b"email\n" + b"".join(f"u{i}@example.com\n".encode() for i in range(9)))
    layout, result = result_of(tmp_path, src, "csv")
    out = tmp_path / "out.xlsx"
    keep = frozenset({"deliverable", "risky"})
    assert csv_to_xlsx(result, out, layout=layout, keep=keep) == 5  # rows 0, 2, 4, 6, 8
    every = csv_of(result)
    wanted = [every[0]] + [row for row in every[1:] if row[1] in keep]
    assert sheet_of(out) == trimmed(wanted)


def test_a_csv_result_in_its_own_encoding_dialect_and_preamble(tmp_path: Path) -> None:
    src = tmp_path / "liste.csv"
    text = "Export du 1er mars\r\nnom;courriel\r\nRené;rene@example.fr\r\nZoë;zoe@example.fr\r\n"
    src.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    layout, result = result_of(tmp_path, src, "csv")
    assert layout.delimiter == ";" and layout.bom
    out = tmp_path / "out.xlsx"
    assert csv_to_xlsx(result, out, layout=layout) == 2
    rows = sheet_of(out)
    assert rows == trimmed(csv_of(result, "utf-8-sig", ";"))
    assert rows[2][:3] == ["René", "rene@example.fr", "deliverable"]


def test_a_txt_lists_result_with_its_header(tmp_path: Path) -> None:
    src = tmp_path / "list.txt"
    src.write_bytes(b"ann@example.com\n\n-bob@example.com\n")
    layout, result = result_of(tmp_path, src, "csv")
    out = tmp_path / "out.xlsx"
    assert csv_to_xlsx(result, out, layout=layout, keep=frozenset({"undeliverable"})) == 1
    rows = sheet_of(out)
    assert rows[0][:2] == ["email", "mailvet_status"]
    assert rows[1][:2] == ["'-bob@example.com", "undeliverable"]
    assert len(rows) == 2


def test_more_rows_than_a_sheet_holds_is_refused_and_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "list.csv"
    src.write_bytes(b"email\n" + b"".join(f"u{i}@example.com\n".encode() for i in range(5)))
    layout, result = result_of(tmp_path, src, "csv")
    monkeypatch.setattr(convert, "MAX_ROWS", 6)  # the header and five rows fit
    out = tmp_path / "out.xlsx"
    assert csv_to_xlsx(result, out, layout=layout) == 5
    monkeypatch.setattr(convert, "MAX_ROWS", 5)
    with pytest.raises(TooBigForXlsx, match="more than 5 rows"):
        csv_to_xlsx(result, out, layout=layout)
    assert not out.exists()
    assert csv_to_xlsx(result, out, layout=layout, keep=frozenset({"deliverable"})) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_cell_or_a_row_a_sheet_cannot_hold_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.xlsx"
    write_sheet(out, "x", [["a" * MAX_CELL_CHARS]])
    assert sheet_of(out) == [["a" * MAX_CELL_CHARS]]
    with pytest.raises(TooBigForXlsx, match="32,767"):
        write_sheet(out, "x", [["ok"], ["a" * (MAX_CELL_CHARS + 1)]])
    assert not out.exists()
    # Excel counts UTF-16 units: 20,000 emoji are 40,000 of them, more than a cell holds
    with pytest.raises(TooBigForXlsx, match="40,000 characters"):
        write_sheet(out, "x", [["\U0001f600" * 20_000]])
    assert not out.exists()
    write_sheet(out, "x", [["\U0001f600" * (MAX_CELL_CHARS // 2)]])
    monkeypatch.setattr(convert, "MAX_COLUMNS", 3)
    with pytest.raises(TooBigForXlsx, match="row 2 has 4 cells"):
        write_sheet(out, "x", [["a", "b", "c"], ["a", "b", "c", "d"]])
    assert not out.exists()


def test_a_sheets_title_follows_excels_rules() -> None:
    assert sheet_title("contacts.csv") == "contacts"
    assert sheet_title("q1 [leads]: a/b?.txt") == "b"  # a path's last part
    assert sheet_title("C:\\lists\\x*y?.csv") == "xy"
    assert sheet_title("'quoted'.csv") == "quoted"
    assert sheet_title("a" * 30 + "'b.csv") == "a" * 30  # cut to 31: no ' left at the end
    assert sheet_title("History.xlsx") == "Sheet1"
    assert sheet_title("a" * 40 + ".csv") == "a" * 31
    assert sheet_title(".csv") == ".csv"  # a dot file's name is its stem
    assert sheet_title("[]*.csv") == "Sheet1"


# --- XLSX -> CSV ---------------------------------------------------------------------------------


def workbook(path: Path) -> None:
    book = openpyxl.Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "Notes"
    notes.append(["not", "this", "sheet"])
    people = book.create_sheet("People")
    people.append(["Name", "Mail", "Amount"])
    people.append(["Ann", "ann@example.com", -5])
    people.append([None, "bob@example.com", 1.5])
    people.append([])
    people.append(["Cy", "cy@example.com", True])
    people.append(["Dee", "dee@example.com", "+1 555 0100"])
    hostile = people.cell(row=2, column=1)
    hostile.value = HOSTILE  # text, not a formula
    hostile.data_type = "s"
    book.save(path)


def test_an_xlsx_result_is_its_address_sheets_rows_formula_safe(tmp_path: Path) -> None:
    src = tmp_path / "people.xlsx"
    workbook(src)
    layout, result = result_of(tmp_path, src, "xlsx", sheet="People", email_column="Mail")
    out = tmp_path / "out.csv"
    assert xlsx_to_csv(result, out, layout=layout) == 4
    rows = csv_of(out)
    assert rows[0] == ["Name", "Mail", "Amount", *RESULT_COLUMNS]
    assert rows[1][:3] == ["'" + HOSTILE, "ann@example.com", "-5"]  # text made inert
    assert rows[2][:3] == ["", "bob@example.com", "1.5"]
    assert rows[3][:3] == ["Cy", "cy@example.com", "TRUE"]
    assert rows[4][:3] == ["Dee", "dee@example.com", "'+1 555 0100"]
    # every data row with all its verdict cells, the empty ones at the end included
    for i, row in enumerate(rows[1:]):
        assert row[3:] == list(verdict(i, row[1])), row
    assert len(rows) == 5  # the empty row between is not a row
    assert out.read_bytes().startswith(b"Name,Mail,Amount,mailvet_status")  # no BOM
    assert b"\r\n" in out.read_bytes()


def test_a_filtered_xlsx_result(tmp_path: Path) -> None:
    src = tmp_path / "people.xlsx"
    workbook(src)
    layout, result = result_of(tmp_path, src, "xlsx", sheet="People", email_column="Mail")
    out = tmp_path / "out.csv"
    assert xlsx_to_csv(result, out, layout=layout, keep=frozenset({"undeliverable"})) == 1
    rows = csv_of(out)
    assert [row[:4] for row in rows] == [
        ["Name", "Mail", "Amount", "mailvet_status"],
        ["", "bob@example.com", "1.5", "undeliverable"],
    ]
    assert xlsx_to_csv(result, out, layout=layout, keep=frozenset()) == 0
    assert csv_of(out) == [rows[0]]


def test_an_xlsx_result_without_a_header(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for i in range(3):
        sheet.append([f"u{i}@example.com"])
    src = tmp_path / "bare.xlsx"
    book.save(src)
    layout, result = result_of(tmp_path, src, "xlsx")
    assert not layout.has_header
    out = tmp_path / "out.csv"
    assert xlsx_to_csv(result, out, layout=layout, keep=frozenset({"deliverable"})) == 1
    assert csv_of(out) == [["u0@example.com", *verdict(0, "u0@example.com")]]


def test_a_broken_xlsx_result_leaves_nothing(tmp_path: Path) -> None:
    result = tmp_path / "result.xlsx"
    result.write_bytes(b"PK\x03\x04 not a workbook")
    out = tmp_path / "out.csv"
    with pytest.raises(Exception, match="not a valid XLSX"):
        xlsx_to_csv(result, out, layout=FileLayout(kind="xlsx"))
    assert not out.exists()


def test_round_trip_csv_to_xlsx_to_csv(tmp_path: Path) -> None:
    """A CSV list's result made a workbook and that workbook read back as CSV: the same
    rows (the verdict cells formula-safe already; the customer's cells made so)."""
    src = tmp_path / "list.csv"
    src.write_bytes(b"email,note\r\nann@example.com,=2+2\r\nbob@example.com,fine\r\n")
    layout, result = result_of(tmp_path, src, "csv")
    book = tmp_path / "out.xlsx"
    csv_to_xlsx(result, book, layout=layout)
    back = tmp_path / "back.csv"
    as_xlsx = FileLayout(kind="xlsx", has_header=True, header=["email", "note"])
    assert xlsx_to_csv(book, back, layout=as_xlsx) == 2
    expected = csv_of(result)
    expected[1][1] = "'=2+2"
    assert csv_of(back) == expected
    assert io.BytesIO(back.read_bytes()).read(3) != b"\xef\xbb\xbf"


def test_a_result_cell_longer_than_the_lists_longest_is_still_read(tmp_path: Path) -> None:
    # what mailvet writes beside a row can be a character longer than the list's longest
    # cell (a suggestion repairing a@gmailcom to a@gmail.com): a list with a cell at its
    # limit gave a result the conversion and the segments refused to read (a 500)
    import msgspec

    from mailvet.tabular.segments import write_rows

    local = "a" * 60
    src = tmp_path / "long.csv"
    src.write_text(f"email\n{local}@gmailcom\n", encoding="utf-8")
    layout = detect_layout(src)
    layout = msgspec.structs.replace(layout, max_cell=len(local) + len("@gmailcom"))
    suggestion = f"{local}@gmail.com"  # one character over the list's limit
    result = tmp_path / "result.csv"
    cells = ["risky", "suspected_typo", f"{local}@gmailcom", suggestion, *[""] * 7]
    assert len(cells) == len(RESULT_COLUMNS)
    result.write_text(
        "email," + ",".join(RESULT_COLUMNS) + f"\n{local}@gmailcom," + ",".join(cells) + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.xlsx"
    assert csv_to_xlsx(result, out, layout=layout, title="long") == 1
    assert sheet_of(out)[1][4] == suggestion
    segment = tmp_path / "risky.csv"
    assert write_rows(result, segment, kind="csv", layout=layout, keep=frozenset({"risky"})) == 1
    assert csv_of(segment)[1][4] == suggestion
