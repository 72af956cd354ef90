"""XLSX → XLSX results keep the customer's workbook: every part byte for byte but the
address sheet, whose XML gets only the new cells (and a wider <dimension>)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Unpack

import openpyxl
import pytest
from openpyxl.styles import Font

from mailvet.tabular import detect_layout, iter_emails, write_result
from tests.unit.tabular.support import EXTRA_HEADER, DetectOptions, extras_for, read_xlsx
from tests.unit.tabular.xlsx_parts import (
    STYLES,
    members,
    shared_strings_xml,
    sheet_xml,
    write_parts,
)

pytestmark = pytest.mark.unit

# the cells write_result adds (EXTRA_HEADER and extras_for's values)
NEW_CELL = re.compile(
    rb'<c r="[A-Z]+[0-9]+"(?: s="[0-9]+")? t="inlineStr"><is><t>(?:status|note|ok|bad|n[0-9]+)'
    rb"</t></is></c>"
)
DIMENSION = re.compile(rb"<dimension [^>]*>")


def result_of(src: Path, tmp_path: Path, **kw: Unpack[DetectOptions]) -> Path:
    layout = detect_layout(src, **kw)
    emails = list(iter_emails(src, layout))
    out = tmp_path / "out.xlsx"
    assert write_result(src, layout, out, EXTRA_HEADER, extras_for(emails), "xlsx") == len(emails)
    return out


def assert_only_cells_added(src: Path, out: Path, sheet_part: str) -> None:
    before, after = members(src), members(out)
    assert list(after) == list(before)  # same members, same order
    for name, data in before.items():
        if name != sheet_part:
            assert after[name] == data, name
    stripped = NEW_CELL.sub(b"", after[sheet_part])
    assert DIMENSION.sub(b"", stripped) == DIMENSION.sub(b"", before[sheet_part])


def rich_workbook(path: Path) -> None:
    wb = openpyxl.Workbook()
    notes = wb.active
    notes.title = "Notes"
    notes["A1"] = "read me first"
    notes["A2"] = "=LEN(A1)"
    ws = wb.create_sheet("Contacts")
    ws.append(["name", "email", "amount", "when"])
    ws.append(["Ann", "ann@example.com", 1234.5, None])
    ws.append(["Bob", "bob@example.com", 7, None])
    ws["C2"].number_format = "#,##0.00"
    ws["D2"] = "=C2*2"
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.merge_cells("A5:D5")
    ws["A5"] = "merged note"
    ws.column_dimensions["B"].width = 40
    wb.active = 1
    wb.save(path)
    wb.close()


def test_every_sheet_and_style_survives(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    rich_workbook(src)
    out = result_of(src, tmp_path)
    assert_only_cells_added(src, out, "xl/worksheets/sheet2.xml")
    wb = openpyxl.load_workbook(out)  # the full reader: the workbook is well formed
    assert wb.sheetnames == ["Notes", "Contacts"]
    assert wb["Notes"]["A2"].value == "=LEN(A1)"
    ws = wb["Contacts"]
    assert ws["D2"].value == "=C2*2"  # a formula stays a formula
    assert ws["C2"].number_format == "#,##0.00"
    assert [str(r) for r in ws.merged_cells.ranges] == ["A5:D5"]
    assert ws.column_dimensions["B"].width == 40
    assert ws["E1"].font.bold  # the header's new cells take the header's last style
    assert [c.value for c in ws[1]] == ["name", "email", "amount", "when", "status", "note"]
    assert [c.value for c in ws[2]][4:] == ["ok", "n0"]
    assert ws.dimensions == "A1:F5"


def test_cached_formula_values_stay(tmp_path: Path) -> None:
    rows = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>n</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is><t>a@example.com</t></is></c>'
        '<c r="B2"><f>1+1</f><v>2</v></c></row>'
        '<row r="3"><c r="A3" t="s"><v>0</v></c><c r="B3" t="str"><f>"x"&amp;"y"</f><v>xy</v></c>'
        "</row>"
    )
    src = tmp_path / "in.xlsx"
    write_parts(src, {"S": sheet_xml(rows, "A1:B3")}, shared=shared_strings_xml(["b@example.com"]))
    out = result_of(src, tmp_path)
    assert_only_cells_added(src, out, "xl/worksheets/sheet1.xml")
    sheet = members(out)["xl/worksheets/sheet1.xml"]
    assert b'<c r="B2"><f>1+1</f><v>2</v></c>' in sheet
    assert b'<dimension ref="A1:D3"/>' in sheet
    book = openpyxl.load_workbook(out, read_only=True, data_only=True)
    assert [tuple(r) for r in book.active.iter_rows(values_only=True)] == [
        ("email", "n", "status", "note"),
        ("a@example.com", 2, "ok", "n0"),  # the cached value, as it was
        ("b@example.com", "xy", "ok", "n1"),
    ]
    assert openpyxl.load_workbook(out)["S"]["B3"].value == '="x"&"y"'


def test_new_cells_after_a_wide_row_and_over_empty_styled_cells(tmp_path: Path) -> None:
    rows = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>'
        # a wide row: its new cells come after its own last cell (D)
        '<row r="2"><c r="A2" t="inlineStr"><is><t>a@example.com</t></is></c>'
        '<c r="D2"><v>4</v></c></row>'
        # empty styled cells where the new ones go (B, C) are replaced, E is kept
        '<row r="3"><c r="A3" t="inlineStr"><is><t>b@example.com</t></is></c>'
        '<c r="B3" s="1"/><c r="C3" s="1"></c><c r="E3" s="1"/></row>'
        # no r attributes at all
        '<row><c t="inlineStr"><is><t>c@example.com</t></is></c></row>'
    )
    src = tmp_path / "in.xlsx"
    write_parts(src, {"S": sheet_xml(rows, "A1:E4")}, styles=STYLES)
    out = result_of(src, tmp_path)
    sheet = members(out)["xl/worksheets/sheet1.xml"]
    assert b'<c r="B3" s="1"/>' not in sheet and b'<c r="E3" s="1"/>' in sheet
    assert read_xlsx(out) == [
        ("email", "status", "note", None, None, None),
        ("a@example.com", None, None, 4, "ok", "n0"),
        ("b@example.com", "ok", "n1", None, None, None),
        ("c@example.com", "ok", "n2", None, None, None),
    ]
    assert openpyxl.load_workbook(out)["S"].dimensions == "A1:F4"


def test_new_cells_are_text_even_when_they_look_like_formulas(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    write_parts(
        src,
        {
            "S": sheet_xml(
                '<row r="1"><c r="A1" t="inlineStr"><is><t>a@example.com</t></is></c></row>'
            )
        },
    )
    layout = detect_layout(src)
    out = tmp_path / "out.xlsx"
    write_result(src, layout, out, ["x"], [['=HYPERLINK("http://evil")']], "xlsx")
    cell = openpyxl.load_workbook(out)["S"]["B1"]
    assert cell.data_type == "s" and cell.value == '=HYPERLINK("http://evil")'


def test_a_prefixed_main_namespace(tmp_path: Path) -> None:
    sheet = (
        b'<?xml version="1.0"?><x:worksheet xmlns:x="http://schemas.openxmlformats.org/'
        b'spreadsheetml/2006/main"><x:sheetData><x:row r="1"><x:c r="A1" t="inlineStr">'
        b"<x:is><x:t>a@example.com</x:t></x:is></x:c></x:row></x:sheetData></x:worksheet>"
    )
    src = tmp_path / "in.xlsx"
    write_parts(src, {"S": sheet})
    out = result_of(src, tmp_path)
    assert (
        b'<x:c r="B1" t="inlineStr"><x:is><x:t>ok</x:t></x:is></x:c>'
        in members(out)["xl/worksheets/sheet1.xml"]
    )
    assert read_xlsx(out) == [("a@example.com", "ok", "n0")]


def test_row_spans_cover_the_new_cells(tmp_path: Path) -> None:
    rows = (
        '<row r="1" spans="1:1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>'
        '<row r="2" spans="1:5"><c r="A2" t="inlineStr"><is><t>a@example.com</t></is></c>'
        "</row>"
    )
    src = tmp_path / "in.xlsx"
    write_parts(src, {"S": sheet_xml(rows, "A1:A2")})
    sheet = members(result_of(src, tmp_path))["xl/worksheets/sheet1.xml"]
    assert b'<row r="1" spans="1:3">' in sheet  # widened to the new cells
    assert b'<row r="2" spans="1:5">' in sheet  # already covered them
