"""CSV results keep the input byte for byte: quoting, line breaks, preambles, blank lines."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import pytest

from mailvet.tabular import detect_layout, iter_text_chunks, render_chunk, write_result
from tests.unit.tabular.support import check_chunked, expected_csv, extras_for, raw_of, run

pytestmark = pytest.mark.unit


def test_quoted_fields_newlines_and_mixed_terminators(tmp_path: Path) -> None:
    records = [
        ("header", 'id,"e-mail",comment', "\r\n"),
        ("data", '1,ann@example.com,"says ""hi"", then\r\nleaves"', "\r\n"),
        ("data", '2,"bob@example.org","multi\nline\nnote"', "\n"),
        ("data", "3,carl@example.net,plain", "\r\n"),
        ("data", '4,"dan@example.com"  ,"a,b"', "\n"),
    ]
    layout, emails, out = run(tmp_path, raw_of(records).encode())
    assert layout.email_index == 1
    assert emails == ["ann@example.com", "bob@example.org", "carl@example.net", "dan@example.com"]
    assert out.read_bytes() == expected_csv(records, extras_for(emails)).encode()


def test_extra_cells_are_quoted_when_needed(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"email\na@example.com\nb@example.com\n")
    layout = detect_layout(src)
    out = tmp_path / "out.csv"
    extras = [['say "hi"', "a,b", "line\nbreak"], ["plain", "", "x"]]
    assert write_result(src, layout, out, ["h,1", "h2", "h3"], extras) == 2
    text = out.read_text()
    assert text.splitlines()[0] == 'email,"h,1",h2,h3'
    assert text.startswith('email,"h,1",h2,h3\na@example.com,"say ""hi""","a,b","line\nbreak"\n')
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["email", "h,1", "h2", "h3"],
        ["a@example.com", *extras[0]],
        ["b@example.com", *extras[1]],
    ]
    assert check_chunked(src, layout, ["h,1", "h2", "h3"], extras) == out.read_bytes()


def test_extra_cells_not_str_and_no_extra_cells(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"email,n\r\na@example.com,1\r\nb@example.com,2\r\nc@example.com,3")
    layout = detect_layout(src)
    out = tmp_path / "out.csv"
    # cells that are not str, a generator as a row: beyond the declared types, written anyway
    rows: list[Iterable[object]] = [[1, None], (x for x in ["gen", "a,b"]), []]
    assert write_result(src, layout, out, ["s", "t"], rows) == 3  # type: ignore[arg-type]
    assert out.read_bytes() == (
        b'email,n,s,t\r\na@example.com,1,1,\r\nb@example.com,2,gen,"a,b"\r\nc@example.com,3'
    )
    same = [[1, None], ("gen", "a,b"), []]
    assert check_chunked(src, layout, ["s", "t"], same) == out.read_bytes()
    # iterators as rows of cells are read once, as write_result reads them
    text = "".join(text for text, _ in iter_text_chunks(src, layout, 10))
    cells = [iter([1, None]), (x for x in ["gen", "a,b"]), iter([])]
    written = render_chunk(text, layout, cells)  # type: ignore[arg-type]
    assert written.encode() == out.read_bytes()[len(b"email,n,s,t\r\n") :]


def test_extra_cells_quoted_with_the_file_delimiter(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"name;email\nA;a@example.com\n")
    layout = detect_layout(src)
    out = tmp_path / "out.csv"
    write_result(src, layout, out, ["s"], [["x;y, z"]])
    assert out.read_bytes() == b'name;email;s\nA;a@example.com;"x;y, z"\n'
    assert check_chunked(src, layout, ["s"], [["x;y, z"]]) == out.read_bytes()


def test_preamble_lines_before_header(tmp_path: Path) -> None:
    records = [
        ("pre", "Customer export", "\n"),
        ("pre", "Generated 2024-05-01; by admin", "\n"),
        ("pre", "", "\n"),
        ("header", "Name,Email Address,Phone", "\n"),
        ("data", "Ann,ann@example.com,123", "\n"),
        ("data", "Bob,bob@example.com,456", "\n"),
    ]
    layout, emails, out = run(tmp_path, raw_of(records).encode())
    assert layout.skip_records == 4 and layout.email_index == 1
    assert layout.header == ["Name", "Email Address", "Phone"]
    assert emails == ["ann@example.com", "bob@example.com"]
    assert out.read_bytes() == expected_csv(records, extras_for(emails)).encode()


def test_blank_lines_empty_emails_short_rows_and_no_final_newline(tmp_path: Path) -> None:
    records = [
        ("blank", "", "\n"),
        ("header", "id,name,email,city", "\n"),
        ("data", "1,Ann,ann@example.com,Paris", "\n"),
        ("blank", "", "\n"),
        ("blank", "", "\r\n"),
        ("data", "2,Bob,,Nice", "\n"),  # empty email: still a row
        ("data", "3,Short", "\n"),  # too short: email "", extras right after its cells
        ("data", "   ", "\n"),  # white space only is a record, not a blank line
        ("data", "5,Eve,eve@example.com,Lyon", ""),  # no terminator
    ]
    layout, emails, out = run(tmp_path, raw_of(records).encode())
    assert layout.skip_records == 2 and layout.email_index == 2
    assert emails == ["ann@example.com", "", "", "", "eve@example.com"]
    data = out.read_bytes()
    assert data == expected_csv(records, extras_for(emails)).encode()
    assert data.endswith(b"5,Eve,eve@example.com,Lyon,ok,n4")
    assert b"\n3,Short,bad,n2\n" in data
