"""Hostile workbooks, at small scale with the limits lowered: each is refused with one line
naming the limit, having read no more than the limit allows."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from mailvet.tabular import InputError, XlsxLimits, count_rows, detect_layout, iter_emails
from mailvet.tabular.workbook import open_workbook
from tests.unit.tabular.xlsx_parts import MAIN, shared_strings_xml, sheet_xml, write_parts

pytestmark = pytest.mark.unit

ONE_ROW = '<row r="1"><c r="A1" t="inlineStr"><is><t>a@example.com</t></is></c></row>'


def refused(path: Path, limits: XlsxLimits | None = None) -> str:
    with pytest.raises(InputError) as info:
        layout = detect_layout(path, limits=limits)
        count_rows(path, layout)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_an_entity_bomb_is_refused(tmp_path: Path) -> None:
    levels = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    shared = (
        f'<?xml version="1.0"?><!DOCTYPE sst [{levels}]><sst xmlns="{MAIN}">'
        "<si><t>&a9;</t></si></sst>"
    ).encode()
    rows = '<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
    src = tmp_path / "bomb.xlsx"
    write_parts(src, {"S": sheet_xml(rows)}, shared=shared)
    assert "document type declaration (DTD)" in refused(src)


def test_a_dtd_in_a_sheet_is_refused_too(tmp_path: Path) -> None:
    sheet = sheet_xml(ONE_ROW).replace(b"<worksheet", b'<!DOCTYPE x [<!ENTITY e "e">]><worksheet')
    src = tmp_path / "dtd.xlsx"
    write_parts(src, {"S": sheet})
    assert "document type declaration (DTD)" in refused(src)


def test_a_shared_string_over_the_cell_limit(tmp_path: Path) -> None:
    rows = ONE_ROW + '<row r="2"><c r="A2" t="s"><v>1</v></c></row>'
    src = tmp_path / "long.xlsx"
    write_parts(src, {"S": sheet_xml(rows)}, shared=shared_strings_xml(["short", "x" * 5000]))
    limits = XlsxLimits(max_cell_bytes=4096)
    assert refused(src, limits) == (
        "long.xlsx: a shared string holds more than 4,096 bytes (MAILVET_MAX_CELL_BYTES)"
    )
    assert count_rows(src, detect_layout(src)) == 2  # under the default limit


def test_an_inline_cell_over_the_cell_limit(tmp_path: Path) -> None:
    rows = ONE_ROW + f'<row r="2"><c r="A2" t="inlineStr"><is><t>{"é" * 3000}</t></is></c></row>'
    src = tmp_path / "long.xlsx"
    write_parts(src, {"S": sheet_xml(rows)})
    # 3,000 characters, 6,000 bytes in UTF-8
    assert refused(src, XlsxLimits(max_cell_bytes=5000)) == (
        "long.xlsx: a cell of row 2 holds more than 5,000 bytes (MAILVET_MAX_CELL_BYTES)"
    )


def test_inflated_bytes_are_counted_not_read_from_the_zip_header(tmp_path: Path) -> None:
    rows = ONE_ROW + "".join(
        f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>u{i}@example.com</t></is></c></row>'
        for i in range(2, 20_000)
    )
    src = tmp_path / "big.xlsx"
    write_parts(src, {"S": sheet_xml(rows)})
    limits = XlsxLimits(max_expanded_bytes=200_000)
    message = refused(src, limits)
    assert message == (
        "big.xlsx inflates to more than 200,000 bytes (MAILVET_MAX_XLSX_EXPANDED_BYTES)"
    )
    with open_workbook(src, "big.xlsx", limits) as book:
        with pytest.raises(InputError):
            for _ in book.rows(None):
                pass
        assert book.expanded <= 200_000 + 64 * 1024  # stopped within one piece of the limit


def test_a_zip_header_that_understates_the_size(tmp_path: Path) -> None:
    src = tmp_path / "lie.xlsx"
    rows = "".join(
        f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>u{i}@example.com</t></is></c></row>'
        for i in range(1, 5000)
    )
    write_parts(src, {"S": sheet_xml(rows)})
    data = bytearray(src.read_bytes())
    name = b"xl/worksheets/sheet1.xml"
    at = data.rfind(b"PK\x01\x02")  # the central directory comes last
    while at != -1:
        length = int.from_bytes(data[at + 28 : at + 30], "little")
        if bytes(data[at + 46 : at + 46 + length]) == name:
            data[at + 24 : at + 28] = (1000).to_bytes(4, "little")
        at = data.rfind(b"PK\x01\x02", 0, at)
    src.write_bytes(bytes(data))
    with zipfile.ZipFile(src) as zf:
        assert zf.getinfo("xl/worksheets/sheet1.xml").file_size == 1000
    assert "could not be read" in refused(src)


def test_cell_references_beyond_the_sheet_are_refused(tmp_path: Path) -> None:
    # ZZZZ would be column 475,254: a row padded that wide would take gigabytes
    rows = ONE_ROW + '<row r="2"><c r="ZZZZ2" t="inlineStr"><is><t>x</t></is></c></row>'
    src = tmp_path / "wide.xlsx"
    write_parts(src, {"S": sheet_xml(rows)})
    with pytest.raises(InputError, match="bad cell reference|beyond the sheet's limits"):
        list(iter_emails(src, detect_layout(src)))


def test_many_shared_strings_no_cell_uses_cost_nothing(tmp_path: Path) -> None:
    """Strings are read only as far as the cells need: the 200,000 unused ones are never
    parsed (the inflated bytes show it)."""
    rows = '<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
    src = tmp_path / "many.xlsx"
    write_parts(
        src, {"S": sheet_xml(rows)}, shared=shared_strings_xml(["a@example.com"] + ["a"] * 200_000)
    )
    with open_workbook(src, "many.xlsx") as book:
        assert list(book.rows(None)) == [["a@example.com"]]
        assert book.expanded < 200_000  # the table is over 3 MB inflated


def test_rows_beyond_the_sheet_are_refused(tmp_path: Path) -> None:
    rows = ONE_ROW + '<row r="1048577"><c t="inlineStr"><is><t>b@example.com</t></is></c></row>'
    src = tmp_path / "tall.xlsx"
    write_parts(src, {"S": sheet_xml(rows)})
    assert refused(src) == (
        "tall.xlsx: a sheet holds more than 1,048,576 rows, the most a workbook can hold"
    )
