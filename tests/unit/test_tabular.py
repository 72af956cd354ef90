"""File-format layer: layout detection, streamed reading, byte-preserving result files."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import openpyxl
import pytest

from mailvet.pipeline.tabular import (
    FileLayout,
    InputError,
    count_rows,
    detect_layout,
    iter_emails,
    result_kind,
    write_result,
)

pytestmark = pytest.mark.unit

EXTRA_HEADER = ["status", "note"]


def extras_for(emails: Sequence[str]) -> list[list[str]]:
    return [["ok" if "@" in e else "bad", f"n{i}"] for i, e in enumerate(emails)]


def run(
    tmp_path: Path,
    data: bytes,
    name: str = "in.csv",
    out_kind: str | None = None,
    **kw: str,
) -> tuple[FileLayout, list[str], Path]:
    """detect → iter/count (must agree) → write_result; returns (layout, emails, out path)."""
    src = tmp_path / name
    src.write_bytes(data)
    layout = detect_layout(src, **kw)
    emails = list(iter_emails(src, layout))
    assert count_rows(src, layout) == len(emails)
    kind = out_kind or result_kind(layout, None)
    out = tmp_path / f"out.{kind}"
    written = write_result(src, layout, out, EXTRA_HEADER, extras_for(emails), out_kind=kind)  # type: ignore[arg-type]
    assert written == len(emails)
    return layout, emails, out


def expected_csv(
    records: Sequence[tuple[str, str, str]], emails_extras: Sequence[Sequence[str]], sep: str = ","
) -> str:
    """Rebuild the expected output from (role, raw record text without terminator,
    terminator) with role in {"pre", "header", "blank", "data"}."""
    out = []
    extras = iter(emails_extras)
    for role, text, term in records:
        if role == "header":
            out.append(text + sep + sep.join(EXTRA_HEADER) + term)
        elif role == "data":
            out.append(text + sep + sep.join(next(extras)) + term)
        else:
            out.append(text + term)
    assert next(extras, None) is None
    return "".join(out)


def raw_of(records: Sequence[tuple[str, str, str]]) -> str:
    return "".join(text + term for _, text, term in records)


# --------------------------------------------------------------------------- delimiters


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_delimiters(tmp_path: Path, sep: str) -> None:
    records = [
        ("header", sep.join(["id", "Email", "name", "city"]), "\n"),
        ("data", sep.join(["1", "ann@example.com", "Ann", "Paris"]), "\n"),
        ("data", sep.join(["2", " bob@example.org ", "Bob", "Nice"]), "\n"),
        ("data", sep.join(["3", "carl@example.net", "Carl", "Lyon"]), "\n"),
    ]
    layout, emails, out = run(tmp_path, raw_of(records).encode())
    assert layout.kind == "csv"
    assert layout.delimiter == sep
    assert layout.has_header and layout.header == ["id", "Email", "name", "city"]
    assert layout.email_index == 1 and layout.skip_records == 1
    assert emails == ["ann@example.com", "bob@example.org", "carl@example.net"]
    assert out.read_bytes() == expected_csv(records, extras_for(emails), sep).encode()


def test_semicolon_with_commas_inside_quotes(tmp_path: Path) -> None:
    records = [
        ("header", "name;email;amount", "\r\n"),
        ("data", '"Smith, John";john@example.com;"1,5"', "\r\n"),
        ("data", '"Doe, Jane";jane@example.com;"2,25"', "\r\n"),
    ]
    layout, emails, out = run(tmp_path, raw_of(records).encode())
    assert layout.delimiter == ";"
    assert emails == ["john@example.com", "jane@example.com"]
    assert out.read_bytes() == expected_csv(records, extras_for(emails), ";").encode()


def test_one_column_file_uses_comma(tmp_path: Path) -> None:
    records = [("header", "email", "\n"), ("data", "a@example.com", "\n"), ("data", "b@x.org", "\n")]
    layout, emails, out = run(tmp_path, raw_of(records).encode())
    assert layout.delimiter == "," and layout.email_index == 0 and layout.has_header
    assert out.read_bytes() == expected_csv(records, extras_for(emails)).encode()


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("codec", "bom", "layout_encoding"),
    [
        ("utf-8", b"\xef\xbb\xbf", "utf-8"),
        ("utf-16-le", b"\xff\xfe", "utf-16-le"),
        ("utf-16-be", b"\xfe\xff", "utf-16-be"),
        ("utf-8", b"", "utf-8"),
    ],
)
def test_bom_and_utf16_round_trip(
    tmp_path: Path, codec: str, bom: bytes, layout_encoding: str
) -> None:
    records = [
        ("header", "Prénom,E-mail", "\r\n"),
        ("data", "Zoë,zoe@exämple.com", "\r\n"),
        ("data", "José,jose@example.es", "\r\n"),
    ]
    data = bom + raw_of(records).encode(codec)
    layout, emails, out = run(tmp_path, data)
    assert layout.encoding == layout_encoding
    assert layout.bom is bool(bom)
    assert layout.header == ["Prénom", "E-mail"]  # no BOM left in the first cell
    assert emails == ["zoe@exämple.com", "jose@example.es"]
    assert out.read_bytes() == bom + expected_csv(records, extras_for(emails)).encode(codec)


def test_cp1252_round_trip_byte_for_byte(tmp_path: Path) -> None:
    data = b"nom;email\r\nRen\xe9;rene@example.fr\r\nL\xe9a;lea@example.fr\r\n"
    layout, emails, out = run(tmp_path, data)
    assert layout.encoding == "cp1252" and not layout.bom
    assert list(iter_emails(tmp_path / "in.csv", layout)) == ["rene@example.fr", "lea@example.fr"]
    assert out.read_bytes() == (
        b"nom;email;status;note\r\nRen\xe9;rene@example.fr;ok;n0\r\nL\xe9a;lea@example.fr;ok;n1\r\n"
    )


def test_latin1_fallback(tmp_path: Path) -> None:
    # 0x81 is undefined in cp1252: only latin-1 decodes this file.
    data = b"email,name\na@example.com,X\x81\xe9\n"
    layout, emails, out = run(tmp_path, data)
    assert layout.encoding == "latin-1"
    assert out.read_bytes() == b"email,name,status,note\na@example.com,X\x81\xe9,ok,n0\n"


def test_utf8_found_past_the_first_block(tmp_path: Path) -> None:
    # ASCII for more than the 64 KiB sample, then one cp1252 byte: the whole file is checked.
    body = "".join(f"u{i}@example.com,x\n" for i in range(5000))
    data = b"email,n\n" + body.encode() + b"last@example.com,Ren\xe9\n"
    layout, emails, out = run(tmp_path, data)
    assert layout.encoding == "cp1252"
    assert out.read_bytes().endswith(b"last@example.com,Ren\xe9,ok,n5000\n")


# --------------------------------------------------------------------------- raw preservation


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
    assert rows == [["email", "h,1", "h2", "h3"], ["a@example.com", *extras[0]], ["b@example.com", *extras[1]]]


def test_extra_cells_not_str_and_no_extra_cells(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"email,n\r\na@example.com,1\r\nb@example.com,2\r\nc@example.com,3")
    layout = detect_layout(src)
    out = tmp_path / "out.csv"
    rows: list[Sequence[object]] = [[1, None], (x for x in ["gen", "a,b"]), []]
    assert write_result(src, layout, out, ["s", "t"], rows) == 3  # type: ignore[arg-type]
    assert out.read_bytes() == (
        b'email,n,s,t\r\na@example.com,1,1,\r\nb@example.com,2,gen,"a,b"\r\nc@example.com,3'
    )


def test_extra_cells_quoted_with_the_file_delimiter(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"name;email\nA;a@example.com\n")
    layout = detect_layout(src)
    out = tmp_path / "out.csv"
    write_result(src, layout, out, ["s"], [["x;y, z"]])
    assert out.read_bytes() == b'name;email;s\nA;a@example.com;"x;y, z"\n'


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


# --------------------------------------------------------------------------- header / column choice


@pytest.mark.parametrize(
    "name", ["email", "E-Mail", "E_mail", "Email Address", "emailid", "Courriel", "correo", "User Email", "contact-email", "MAIL"]
)
def test_header_names(tmp_path: Path, name: str) -> None:
    layout, emails, _ = run(tmp_path, f"id,{name},x\n1,a@example.com,z\n".encode())
    assert layout.has_header and layout.email_index == 1 and layout.header[1] == name
    assert emails == ["a@example.com"]


def test_two_email_named_columns_prefers_the_one_with_addresses(tmp_path: Path) -> None:
    layout, emails, _ = run(tmp_path, b"mail,email\nyes,a@example.com\nno,b@example.com\n")
    assert layout.email_index == 1 and emails == ["a@example.com", "b@example.com"]


def test_email_column_by_name_case_insensitive(tmp_path: Path) -> None:
    data = b"id,Work Address,Home Address\n1,w@example.com,h@example.com\n"
    layout, emails, _ = run(tmp_path, data, email_column=" home address ")
    assert layout.email_index == 2 and layout.skip_records == 1 and emails == ["h@example.com"]


def test_email_column_by_name_after_preamble(tmp_path: Path) -> None:
    data = b"report\nid,Contact\n1,c@example.com\n"
    layout, emails, _ = run(tmp_path, data, email_column="contact")
    assert layout.skip_records == 2 and layout.email_index == 1 and emails == ["c@example.com"]


def test_email_column_by_number(tmp_path: Path) -> None:
    data = b"id,primary,secondary\n1,p@example.com,s@example.com\n2,q@example.com,t@example.com\n"
    layout, emails, _ = run(tmp_path, data, email_column="3")
    assert layout.email_index == 2 and layout.has_header and emails == ["s@example.com", "t@example.com"]


def test_email_column_by_number_without_header(tmp_path: Path) -> None:
    data = b"p@example.com,s@example.com\nq@example.com,t@example.com\n"
    layout, emails, _ = run(tmp_path, data, email_column="2")
    assert not layout.has_header and layout.skip_records == 0
    assert emails == ["s@example.com", "t@example.com"]


def test_email_column_number_out_of_range(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"id,email\n1,a@example.com\n")
    with pytest.raises(InputError, match="column 7 is out of range"):
        detect_layout(src, email_column="7")


def test_no_header_first_row_has_addresses(tmp_path: Path) -> None:
    records = [
        ("data", "Ann,ann@example.com", "\n"),
        ("data", "Bob,bob@example.com", "\n"),
        ("data", "Carl,not-an-address", "\n"),
    ]
    layout, emails, out = run(tmp_path, raw_of(records).encode())
    assert not layout.has_header and layout.header == [] and layout.skip_records == 0
    assert layout.email_index == 1
    assert emails == ["ann@example.com", "bob@example.com", "not-an-address"]
    assert out.read_bytes() == expected_csv(records, extras_for(emails)).encode()


def test_data_value_that_looks_like_a_header_name_is_not_a_header(tmp_path: Path) -> None:
    data = b"a@example.com,phone\nb@example.com,mail\n"
    layout, emails, _ = run(tmp_path, data)
    assert not layout.has_header and emails == ["a@example.com", "b@example.com"]


def test_unknown_header_names_first_row_without_at(tmp_path: Path) -> None:
    data = b"Nom,Adresse electronique,Ville\nAnn,ann@example.com,Paris\nBob,bob@example.com,Nice\n"
    layout, emails, _ = run(tmp_path, data)
    assert layout.has_header and layout.skip_records == 1 and layout.email_index == 1
    assert emails == ["ann@example.com", "bob@example.com"]


def test_column_with_most_addresses_wins(tmp_path: Path) -> None:
    data = b"note@x,a@example.com\nplain,b@example.com\n,c@example.com\n"
    layout, emails, _ = run(tmp_path, data)
    assert layout.email_index == 1 and emails == ["a@example.com", "b@example.com", "c@example.com"]


def test_filename_gives_the_extension_of_a_storage_temp_file(tmp_path: Path) -> None:
    src = tmp_path / "upload-7f3a"
    src.write_bytes(b"a@example.com\nb@example.com\n")
    assert detect_layout(src, filename="list.txt").kind == "txt"
    assert detect_layout(src).kind == "csv"


# --------------------------------------------------------------------------- TXT


def test_txt_without_header(tmp_path: Path) -> None:
    data = b"ann@example.com\r\n\r\n  bob@example.com  \r\nnot an address\r\ncarl@example.com"
    layout, emails, out = run(tmp_path, data, name="list.txt")
    assert layout.kind == "txt" and not layout.has_header and layout.skip_records == 0
    assert emails == ["ann@example.com", "bob@example.com", "not an address", "carl@example.com"]
    assert out.read_bytes() == (
        b"email,status,note\r\n"
        b"ann@example.com,ok,n0\r\nbob@example.com,ok,n1\r\n"
        b"not an address,bad,n2\r\ncarl@example.com,ok,n3\r\n"
    )


def test_txt_with_header_and_quoting(tmp_path: Path) -> None:
    data = "\nEmails\nann@example.com\n\"odd\"@example.com\nzoë@exämple.com\n".encode()
    layout, emails, out = run(tmp_path, data, name="list.txt")
    assert layout.kind == "txt" and layout.has_header and layout.header == ["Emails"]
    assert layout.skip_records == 2
    assert emails == ["ann@example.com", '"odd"@example.com', "zoë@exämple.com"]
    assert out.read_bytes().decode() == (
        'Emails,status,note\r\nann@example.com,ok,n0\r\n"""odd""@example.com",ok,n1\r\n'
        "zoë@exämple.com,ok,n2\r\n"
    )


def test_txt_with_a_delimiter_is_read_as_csv(tmp_path: Path) -> None:
    layout, emails, _ = run(tmp_path, b"name;email\nAnn;ann@example.com\n", name="list.txt")
    assert layout.kind == "csv" and layout.delimiter == ";" and emails == ["ann@example.com"]


def test_txt_cp1252(tmp_path: Path) -> None:
    layout, emails, out = run(tmp_path, b"ren\xe9@example.fr\n", name="l.txt")
    assert layout.encoding == "cp1252" and emails == ["rené@example.fr"]
    assert out.read_bytes() == "email,status,note\r\nrené@example.fr,ok,n0\r\n".encode()


def test_txt_email_column(tmp_path: Path) -> None:
    src = tmp_path / "l.txt"
    src.write_bytes(b"email\na@example.com\n")
    assert detect_layout(src, email_column="EMAIL").has_header
    assert detect_layout(src, email_column="1").email_index == 0
    with pytest.raises(InputError, match=r"no column named 'mail' in the header \(columns: email\)"):
        detect_layout(src, email_column="mail")


# --------------------------------------------------------------------------- XLSX


def make_xlsx(path: Path, rows: Sequence[Sequence[object]], title: str = "Contacts") -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(list(row))
    for row_cells in ws.iter_rows():
        for cell in row_cells:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # text that looks like a formula
    wb.save(path)
    wb.close()


def read_xlsx(path: Path) -> list[tuple[object, ...]]:
    """Rows of the first sheet (write-only workbooks store no dimension: rows are not padded)."""
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        return [tuple(r) for r in wb.active.iter_rows(values_only=True)]
    finally:
        wb.close()


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
        ("Exported contacts",),  # nothing appended to the preamble
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
        (),  # empty row between rows kept; the trailing ones dropped
        ("b@example.com", "y", "ok", "n1"),
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
    assert read_xlsx(out) == [
        ("name", "email", "city", "status", "note"),
        ("Ann", "ann@example.com", None, "ok", "n0"),
    ]


def test_xlsx_from_storage_temp_file_without_suffix(tmp_path: Path) -> None:
    src = tmp_path / "blob-123"
    make_xlsx(src, [["email"], ["a@example.com"]])
    layout = detect_layout(src, filename="Contacts.xlsx")
    assert layout.kind == "xlsx" and list(iter_emails(src, layout)) == ["a@example.com"]


def test_csv_to_xlsx(tmp_path: Path) -> None:
    layout, emails, out = run(tmp_path, b"id,email\n1,a@example.com\n2\n", out_kind="xlsx")
    assert read_xlsx(out) == [("id", "email", "status", "note"), ("1", "a@example.com", "ok", "n0"), ("2", None, "bad", "n1")]


def test_result_kind() -> None:
    assert result_kind(FileLayout(kind="xlsx"), None) == "xlsx"
    assert result_kind(FileLayout(kind="xlsx"), "out.xlsx") == "xlsx"
    assert result_kind(FileLayout(kind="xlsx"), "out.csv") == "csv"
    assert result_kind(FileLayout(kind="csv"), "out.xlsx") == "csv"
    assert result_kind(FileLayout(kind="txt"), None) == "csv"


# --------------------------------------------------------------------------- bad input


def bad(tmp_path: Path, data: bytes, name: str = "in.csv", **kw: str) -> str:
    src = tmp_path / name
    src.write_bytes(data)
    with pytest.raises(InputError) as info:
        detect_layout(src, **kw)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_email_column_name(tmp_path: Path) -> None:
    message = bad(tmp_path, b"id,email,name\n1,a@example.com,A\n", email_column="courriel")
    assert message == "no column named 'courriel' in the header (columns: id, email, name)"


def test_no_email_column(tmp_path: Path) -> None:
    message = bad(tmp_path, b"id,name\n1,Ann\n2,Bob\n")
    assert message == "could not find an email column; name it with --email-column"


def test_binary_file(tmp_path: Path) -> None:
    message = bad(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), name="x.csv")
    assert message == "x.csv looks like a binary file, not CSV/TXT/XLSX"


def test_old_xls_file(tmp_path: Path) -> None:
    message = bad(tmp_path, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), name="old.xls")
    assert "old.xls" in message and ".xls" in message


@pytest.mark.parametrize("data", [b"", b"   \r\n\n\t\n", b"\xef\xbb\xbf", b"\xff\xfe \x00\n\x00"])
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    assert bad(tmp_path, data, name="list.csv") == "list.csv is empty"


def test_zip_that_is_not_xlsx(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "hi")
    message = bad(tmp_path, buf.getvalue(), name="list.zip")
    assert message.startswith("list.zip is not a valid XLSX workbook")


def test_xlsx_name_that_is_not_a_workbook(tmp_path: Path) -> None:
    message = bad(tmp_path, b"email\na@example.com\n", name="list.xlsx")
    assert message.startswith("list.xlsx is not a valid XLSX workbook")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        detect_layout(tmp_path / "nope.csv")


def test_malformed_csv_raises_input_error(tmp_path: Path) -> None:
    # An unclosed quote swallows the rest of the file until the csv field limit.
    broken = b'b@example.com,"' + b"y" * 200_000 + b"\n"
    src = tmp_path / "in.csv"
    src.write_bytes(b"email,note\n" + b"a@example.com,x\n" * 30 + broken)
    layout = detect_layout(src)
    for call in (count_rows, lambda p, lay: list(iter_emails(p, lay))):
        with pytest.raises(InputError, match="malformed CSV near line 32"):
            call(src, layout)
    with pytest.raises(InputError, match="malformed CSV"):
        write_result(src, layout, tmp_path / "out.csv", ["s"], [["x"]] * 31)
    assert not (tmp_path / "out.csv").exists()
    early = bad(tmp_path, b"email,note\n" + broken, name="early.csv")
    assert early.startswith("malformed CSV near line 2")


# --------------------------------------------------------------------------- write_result contract


def test_write_result_too_few_extra_rows(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"email\na@example.com\nb@example.com\n")
    layout = detect_layout(src)
    out = tmp_path / "out.csv"
    with pytest.raises(ValueError, match="fewer"):
        write_result(src, layout, out, ["s"], [["x"]])
    assert not out.exists()


@pytest.mark.parametrize("name", ["in.csv", "in.txt"])
def test_write_result_too_many_extra_rows(tmp_path: Path, name: str) -> None:
    src = tmp_path / name
    src.write_bytes(b"a@example.com\nb@example.com\n")
    layout = detect_layout(src)
    out = tmp_path / "out.csv"
    with pytest.raises(ValueError, match="more"):
        write_result(src, layout, out, ["s"], [["x"], ["y"], ["z"]])
    assert not out.exists()


def test_write_result_row_count_mismatch_xlsx(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    make_xlsx(src, [["email"], ["a@example.com"], ["b@example.com"]])
    layout = detect_layout(src)
    out = tmp_path / "out.xlsx"
    with pytest.raises(ValueError, match="fewer"):
        write_result(src, layout, out, ["s"], iter([["x"]]))
    with pytest.raises(ValueError, match="more"):
        write_result(src, layout, out, ["s"], [["x"], ["y"], ["z"]])
    assert not out.exists()


def test_extra_rows_are_consumed_lazily(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("email\n" + "".join(f"u{i}@example.com\n" for i in range(10_000)))
    layout = detect_layout(src)
    emails = iter_emails(src, layout)
    lead = []

    def extras() -> Iterator[list[str]]:
        # The verdict of row i is produced while reading row i (a streamed pipeline).
        for i, email in enumerate(emails):
            lead.append(i)
            yield [email.upper()]

    out = tmp_path / "out.csv"
    assert write_result(src, layout, out, ["upper"], extras()) == 10_000
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1] == ["u0@example.com", "U0@EXAMPLE.COM"] and len(rows) == 10_001


def test_cannot_overwrite_input(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"email\na@example.com\n")
    layout = detect_layout(src)
    with pytest.raises(ValueError):
        write_result(src, layout, src, ["s"], [["x"]])
    assert src.read_bytes() == b"email\na@example.com\n"


def test_iter_emails_is_lazy_and_closes_its_file(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"email\na@example.com\nb@example.com\n")
    layout = detect_layout(src)
    it = iter_emails(src, layout)
    assert next(it) == "a@example.com"
    it.close()  # ResourceWarning would fail the run (filterwarnings=error)
