"""File-format layer: layout detection, streamed reading, byte-preserving result files."""

from __future__ import annotations

import codecs
import csv
import io
import random
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from mailvet.pipeline.tabular import (
    OUTPUT_ERRORS,
    FileLayout,
    InputError,
    chunk_emails,
    count_rows,
    detect_layout,
    header_text,
    iter_emails,
    iter_text_chunks,
    output_encoding,
    render_chunk,
    render_header,
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
    if layout.kind != "xlsx" and kind == "csv":  # every CSV/TXT fixture: the chunked way too
        assert check_chunked(src, layout, EXTRA_HEADER, extras_for(emails)) == out.read_bytes()
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


# --------------------------------------------------------------------------- chunked-text helpers
#
# The pipeline renders CSV/TXT results chunk by chunk in the workers (header_text,
# iter_text_chunks, chunk_emails, render_header, render_chunk, output_encoding).
# write_result is built on the same functions, so both are compared with an
# independent reference: the original csv.reader-driven writer below.

CHUNK_SIZES = (1, 2, 3, 7, 1_000_000)


def cell_text(value: object) -> str:
    """How a result writes a non-str extra cell (as a spreadsheet shows it)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def quoted_cells(cells: Iterable[object], sep: str, quote: str) -> str:
    """Extra cells as csv.writer(QUOTE_MINIMAL) writes them."""
    out = []
    for cell in map(cell_text, cells):
        if any(c in cell for c in (sep, quote, "\r", "\n")):
            cell = quote + cell.replace(quote, quote * 2) + quote
        out.append(cell)
    return sep.join(out)


def before_terminator(raw: str, tail: str) -> str:
    """Insert tail before the record's line terminator (the last line's, even when a quote
    left open at the end of the file makes that line a mere terminator)."""
    end = 2 if raw.endswith("\r\n") else 1 if raw.endswith(("\r", "\n")) else 0
    return raw[: len(raw) - end] + tail + raw[len(raw) - end :]


def decoded_text(src: Path, layout: FileLayout) -> str:
    with open(src, encoding=layout.encoding, newline="") as fh:
        text = fh.read()
    if layout.bom:
        assert text.startswith("\ufeff")
        text = text[1:]
    return text


def reference_result(
    src: Path, layout: FileLayout, extra_header: Sequence[str], extra_rows: Iterable[Sequence[Any]]
) -> bytes:
    """The result file, made the slow and obvious way: csv.reader decides the records (their
    raw text from reader.line_num), TXT lines go through csv.writer."""
    rows = iter(extra_rows)
    skip = layout.skip_records
    text = decoded_text(src, layout)
    if layout.kind == "txt":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        if not layout.has_header:
            writer.writerow(["email", *extra_header])
        for index, line in enumerate(io.StringIO(text, newline=None)):
            if index < skip:
                if layout.has_header and index == skip - 1:
                    writer.writerow([line.strip(), *extra_header])
            elif line.strip():
                writer.writerow([line.strip(), *map(cell_text, next(rows))])
        assert next(rows, None) is None
        return buf.getvalue().encode("utf-8")
    sep, quote = layout.delimiter, layout.quotechar
    lines = io.StringIO(text, newline="").readlines()
    reader = csv.reader(iter(lines), delimiter=sep, quotechar=quote)
    out = ["\ufeff"] if layout.bom else []
    done = 0
    for index, row in enumerate(reader):
        raw = "".join(lines[done : reader.line_num])
        done = reader.line_num
        if index < skip:
            if layout.has_header and index == skip - 1 and extra_header:
                raw = before_terminator(raw, sep + quoted_cells(extra_header, sep, quote))
        elif row:
            extra = list(next(rows))
            if extra:
                raw = before_terminator(raw, sep + quoted_cells(extra, sep, quote))
        out.append(raw)
    assert done == len(lines) and next(rows, None) is None
    return "".join(out).encode(layout.encoding, "replace")


def chunked_result(
    src: Path,
    layout: FileLayout,
    extra_header: Sequence[str],
    extra_rows: Sequence[Sequence[Any]],
    size: int,
) -> bytes:
    """The result file the pipeline's way (checking the chunk invariants on the way)."""
    header = header_text(src, layout)
    chunks = list(iter_text_chunks(src, layout, size))
    assert header + "".join(text for text, _ in chunks) == decoded_text(src, layout)
    counts = [rows for _, rows in chunks]
    assert sum(counts) == count_rows(src, layout) == len(extra_rows)
    assert all(rows == size for rows in counts[:-1]) and all(0 < rows <= size for rows in counts)
    emails: list[str] = []
    for text, rows in chunks:
        got = chunk_emails(text, layout)
        assert len(got) == rows
        emails += got
        # every chunk starts with a data row (the blank records before it end the chunk before)
        if layout.kind == "txt":
            assert not text.isspace()
        else:
            first = next(
                csv.reader(
                    io.StringIO(text, newline=""),
                    delimiter=layout.delimiter,
                    quotechar=layout.quotechar,
                )
            )
            assert first != []
    assert emails == list(iter_emails(src, layout))
    codec, bom = output_encoding(layout)
    parts = [bom, render_header(header, layout, extra_header).encode(codec, OUTPUT_ERRORS)]
    start = 0
    for text, rows in chunks:
        cells = extra_rows[start : start + rows]
        parts.append(render_chunk(text, layout, cells).encode(codec, OUTPUT_ERRORS))
        start += rows
    return b"".join(parts)


def check_chunked(
    src: Path,
    layout: FileLayout,
    extra_header: Sequence[str],
    extra_rows: Sequence[Sequence[Any]],
    sizes: Sequence[int] = CHUNK_SIZES,
) -> bytes:
    """THE property: for every chunk size, BOM + rendered header + rendered chunks ==
    write_result's file == the reference; returns those bytes."""
    expected = reference_result(src, layout, extra_header, extra_rows)
    out = src.with_name(src.name + ".check.csv")
    assert write_result(src, layout, out, extra_header, extra_rows) == len(extra_rows)
    assert out.read_bytes() == expected
    out.unlink()
    for size in sizes:
        assert chunked_result(src, layout, extra_header, extra_rows, size) == expected, size
    return expected


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
    assert check_chunked(src, layout, ["h,1", "h2", "h3"], extras) == out.read_bytes()


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
    same = [[1, None], ("gen", "a,b"), []]
    assert check_chunked(src, layout, ["s", "t"], same) == out.read_bytes()
    # iterators as rows of cells are read once, as write_result reads them
    text = "".join(text for text, _ in iter_text_chunks(src, layout, 10))
    cells = [iter([1, None]), (x for x in ["gen", "a,b"]), iter([])]
    assert render_chunk(text, layout, cells).encode() == out.read_bytes()[len(b"email,n,s,t\r\n") :]


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
    upper = [[e.upper()] for e in iter_emails(src, layout)]
    assert check_chunked(src, layout, ["upper"], upper, (7, 2048, 10**6)) == out.read_bytes()


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


# --------------------------------------------------------------------------- chunked text (CSV/TXT)


def write(tmp_path: Path, data: bytes, name: str = "in.csv") -> Path:
    src = tmp_path / name
    src.write_bytes(data)
    return src


def test_chunks_start_with_a_row_blank_records_stay_at_the_end_of_a_chunk(tmp_path: Path) -> None:
    src = write(tmp_path, b"Export\r\n\r\nemail,n\n\n a@x.com,1\n\n\r\nb@x.com,2\nc@x.com,3\n\n")
    layout = detect_layout(src)
    assert layout.skip_records == 3 and layout.email_index == 0
    assert header_text(src, layout) == "Export\r\n\r\nemail,n\n\n"  # + the blank line after it
    assert list(iter_text_chunks(src, layout, 2)) == [
        (" a@x.com,1\n\n\r\nb@x.com,2\n", 2),
        ("c@x.com,3\n\n", 1),
    ]
    assert list(iter_text_chunks(src, layout, 3)) == [
        (" a@x.com,1\n\n\r\nb@x.com,2\nc@x.com,3\n\n", 3)
    ]
    assert (
        render_header(header_text(src, layout), layout, ["s", "t"])
        == "Export\r\n\r\nemail,n,s,t\n\n"
    )
    assert render_chunk(" a@x.com,1\n\n\r\nb@x.com,2\n", layout, [["ok", "1"], ["bad", "2"]]) == (
        " a@x.com,1,ok,1\n\n\r\nb@x.com,2,bad,2\n"
    )
    assert chunk_emails(" a@x.com,1\n\n\r\nb@x.com,2\n", layout) == ["a@x.com", "b@x.com"]
    check_chunked(src, layout, ["s", "t"], [["ok", "1"], ["bad", "2"], ["x", "3"]])


def test_file_without_data_rows_has_no_chunk(tmp_path: Path) -> None:
    src = write(tmp_path, b"email\r\n\r\n\n")
    layout = detect_layout(src)
    assert (
        header_text(src, layout) == "email\r\n\r\n\n"
    )  # all of it: nothing is after the first row
    assert list(iter_text_chunks(src, layout, 5)) == []
    assert render_header("email\r\n\r\n\n", layout, ["s"]) == "email,s\r\n\r\n\n"
    check_chunked(src, layout, ["s"], [])


def test_no_header_and_leading_blank_lines(tmp_path: Path) -> None:
    src = write(tmp_path, b"\n\r\na@x.com,1\nb@x.com,2")
    layout = detect_layout(src)
    assert not layout.has_header and layout.skip_records == 0
    assert header_text(src, layout) == "\n\r\n"  # blank lines before the first row
    assert render_header("\n\r\n", layout, ["s"]) == "\n\r\n"
    assert render_header("", layout, ["s"]) == ""  # no header line in a header-less CSV result
    assert list(iter_text_chunks(src, layout, 1)) == [("a@x.com,1\n", 1), ("b@x.com,2", 1)]
    assert render_chunk("b@x.com,2", layout, [["z"]]) == "b@x.com,2,z"  # no terminator added
    check_chunked(src, layout, ["s"], [["y"], ["z"]])


def test_txt_chunks_header_blank_lines_and_no_final_newline(tmp_path: Path) -> None:
    src = write(tmp_path, b'\n \r\nEmails\n\na@x.com\n  \x0c \r\n "b"@x.com \rc@x.com', "l.txt")
    layout = detect_layout(src)
    assert layout.kind == "txt" and layout.has_header and layout.skip_records == 3
    header = header_text(src, layout)
    assert header == "\n \r\nEmails\n\n"
    assert render_header(header, layout, ["s", "t"]) == "Emails,s,t\r\n"
    chunks = list(iter_text_chunks(src, layout, 2))
    assert chunks == [('a@x.com\n  \x0c \r\n "b"@x.com \r', 2), ("c@x.com", 1)]
    assert chunk_emails(chunks[0][0], layout) == ["a@x.com", '"b"@x.com']
    assert render_chunk(chunks[0][0], layout, [["ok", "a,b"], ["x", None]]) == (
        'a@x.com,ok,"a,b"\r\n"""b""@x.com",x,\r\n'
    )
    check_chunked(src, layout, ["s", "t"], [["ok", "a,b"], ["x", None], ["y", "z"]])


def test_txt_without_header_renders_an_email_header(tmp_path: Path) -> None:
    src = write(tmp_path, b"\r\n a@x.com\r\n\r\nb@x.com\r\n", "l.txt")
    layout = detect_layout(src)
    assert not layout.has_header
    assert header_text(src, layout) == "\r\n"
    assert render_header("\r\n", layout, ["s"]) == render_header("", layout, ["s"]) == "email,s\r\n"
    check_chunked(src, layout, ["s"], [["1"], ["2"]])


@pytest.mark.parametrize(
    ("codec", "bom", "expected"),
    [
        ("utf-8", b"", ("utf-8", b"")),
        ("utf-8", codecs.BOM_UTF8, ("utf-8", codecs.BOM_UTF8)),
        ("utf-16-le", codecs.BOM_UTF16_LE, ("utf-16-le", codecs.BOM_UTF16_LE)),
        ("utf-16-be", codecs.BOM_UTF16_BE, ("utf-16-be", codecs.BOM_UTF16_BE)),
        ("cp1252", b"", ("cp1252", b"")),
    ],
)
def test_output_encoding_and_encodings(
    tmp_path: Path, codec: str, bom: bytes, expected: tuple[str, bytes]
) -> None:
    text = 'Nom;E-mail;Ville\r\nRené;rene@exämple.fr;"Saint-\r\nÉtienne"\nLéa;lea@x.fr;Nice\r\n'
    src = write(tmp_path, bom + text.encode(codec))
    layout = detect_layout(src)
    assert (layout.encoding, layout.bom, layout.delimiter) == (codec, bool(bom), ";")
    assert output_encoding(layout) == expected
    # "€" is in cp1252, "田" in none of the 8-bit codecs: "?" in every result
    rows = [["€ ok", "田"], ["x;y", 'say "hi"']]
    data = check_chunked(src, layout, ["état", "note"], rows)
    assert data.startswith(bom) and data[len(bom) :].decode(codec).startswith(
        "Nom;E-mail;Ville;état;note\r\n"
    )
    assert ("?" if codec == "cp1252" else "田") in data[len(bom) :].decode(codec)
    txt = write(tmp_path, bom + "a@x.com\r\nzoë@x.com\r\n".encode(codec), "l.txt")
    txt_layout = detect_layout(txt)
    assert txt_layout.kind == "txt" and output_encoding(txt_layout) == ("utf-8", b"")
    assert check_chunked(txt, txt_layout, ["s"], [["田"], ["ok"]]).decode() == (
        "email,s\r\na@x.com,田\r\nzoë@x.com,ok\r\n"
    )


def test_output_encoding_of_codecs_that_write_a_bom() -> None:
    native = "utf-16-le" if codecs.BOM_UTF16 == codecs.BOM_UTF16_LE else "utf-16-be"
    assert output_encoding(FileLayout(kind="csv", encoding="utf-16")) == (native, codecs.BOM_UTF16)
    assert output_encoding(FileLayout(kind="csv", encoding="utf-8-sig")) == (
        "utf-8",
        codecs.BOM_UTF8,
    )


def test_quoted_records_across_chunk_boundaries(tmp_path: Path) -> None:
    records = [
        'id,email,"note\r\nwith break"\r\n',
        '1,a@x.com,"one\n\ntwo, ""three""\r\n\r\n"\r\n',  # blank lines inside a quoted field
        '2,"b@x.com" ,x"y\n',  # text after the closing quote, a quote in an unquoted field
        "\n",
        '3,c@x.com,"open\r\nclosed"tail\r',  # lone \r line ends
        "4,d@x.com,'single'\r",
        '5,e@x.com,"a,b"\r\n',
        '6,"f@x.com\n",""\n',
        '"7",g@x.com,"x""',  # quote still open at the end of the file: one last record
        ',\n"h@x.com"\n',
    ]
    src = write(tmp_path, "".join(records).encode())
    layout = FileLayout(kind="csv", header=["id", "email", "note"], email_index=1)
    assert header_text(src, layout) == records[0]
    assert [text for text, _ in iter_text_chunks(src, layout, 1)] == [
        records[1],
        records[2] + records[3],
        *records[4:8],
        records[8] + records[9],
    ]
    assert list(iter_emails(src, layout)) == [
        "a@x.com",
        "b@x.com",
        "c@x.com",
        "d@x.com",
        "e@x.com",
        "f@x.com",
        "g@x.com",
    ]
    rows = [[f"r{i}", "a\nb" if i % 2 else ""] for i in range(7)]
    check_chunked(src, layout, ["s", "t"], rows)


def test_record_boundaries_follow_csv_reader_exactly(tmp_path: Path) -> None:
    """With one row per chunk, the header text and the chunks are exactly csv.reader's
    records: the blank ones before the first row, then one row and the blank ones after it."""
    rnd = random.Random(20240501)
    atoms = ["a", " ", ",", '"', '""', "\n", "\r\n", "\r", "x@y", ";", "\x00"]
    for case in range(300):
        text = "".join(rnd.choice(atoms) for _ in range(rnd.randint(1, 80)))
        src = write(tmp_path, text.encode(), f"r{case}.csv")
        layout = FileLayout(
            kind="csv", has_header=False, skip_records=0, email_index=rnd.randint(0, 2)
        )
        lines = io.StringIO(text, newline="").readlines()
        reader = csv.reader(iter(lines))
        expected, done = [("", 0)], 0
        for row in reader:
            raw = "".join(lines[done : reader.line_num])
            done = reader.line_num
            if row:
                expected.append((raw, 1))
            else:
                expected[-1] = (expected[-1][0] + raw, expected[-1][1])
        got = [(header_text(src, layout), 0), *iter_text_chunks(src, layout, 1)]
        assert got == expected, text


def nasty_csv(rnd: random.Random, sep: str, quote: str) -> str:
    def cell() -> str:
        r = rnd.random()
        if r < 0.45:
            return rnd.choice(["", "a", "b@x.org", " c@x.net ", "Zoë", "  ", "€"])
        if r < 0.8:
            inner = rnd.choice(
                [
                    "",
                    "a" + sep + "b",
                    "say " + quote * 2 + "hi" + quote * 2,
                    "l1\nl2",
                    "l1\r\nl2",
                    "l1\rl2",
                    "\n\n",
                    quote * 2,
                    "x\r\n\r\ny",
                ]
            )
            return quote + inner + quote + rnd.choice(["", "", " tail", quote * 2, "x" + quote])
        return rnd.choice(["o" + quote + "brien", quote + "open", "a" + quote, quote])

    out = []
    for _ in range(rnd.randint(0, 12)):
        r = rnd.random()
        if r < 0.1:
            line = ""
        elif r < 0.15:
            line = rnd.choice([" ", "\t", "  "])
        else:
            line = sep.join(cell() for _ in range(rnd.randint(1, 5)))
        out.append(line + rnd.choice(["\n", "\r\n", "\r\n", "\r"]))
    if out and rnd.random() < 0.3:
        out[-1] = out[-1].rstrip("\r\n") or "z"  # no terminator at the end
    return "".join(out)


def random_cells(rnd: random.Random, n: int, sep: str, quote: str) -> list[list[Any]]:
    choices = [
        "ok",
        "",
        "a" + sep + "b",
        "c,d",
        quote + "q" + quote,
        '"',
        "e f",
        "l\nm",
        "c\rr",
        "é",
        "€",
        "田",
        None,
        7,
        2.0,
        True,
    ]
    return [[rnd.choice(choices) for _ in range(rnd.choice([0, 1, 2, 3, 3]))] for _ in range(n)]


def test_randomized_nasty_csv_and_txt(tmp_path: Path) -> None:
    rnd = random.Random(7)
    checked = 0
    for case in range(400):
        sep = rnd.choice([",", ";", "\t", "|"])
        quote = rnd.choice(['"', '"', "'"])
        kind = "txt" if rnd.random() < 0.2 else "csv"
        text = nasty_csv(rnd, sep, quote)
        codec, bom = rnd.choice(
            [
                ("utf-8", b""),
                ("utf-8", codecs.BOM_UTF8),
                ("utf-16-le", codecs.BOM_UTF16_LE),
                ("utf-16-be", codecs.BOM_UTF16_BE),
                ("cp1252", b""),
            ]
        )
        data = text.encode(codec, "replace")
        src = write(tmp_path, bom + data, f"c{case}.{kind}")
        skip = rnd.choice([0, 0, 1, 2])
        layout = FileLayout(
            kind=kind,  # type: ignore[arg-type]
            encoding=codec,
            bom=bool(bom),
            delimiter=sep,
            quotechar=quote,
            has_header=skip > 0,
            email_index=rnd.randint(0, 2) if kind == "csv" else 0,
            skip_records=skip,
        )
        if rnd.random() < 0.3:  # or as detected, when it is a list detect_layout takes
            try:
                layout = detect_layout(src)
            except InputError:
                pass
        n = count_rows(src, layout)
        extra_header = rnd.choice([[], ["s"], ["s" + sep + "t", quote]])
        check_chunked(
            src, layout, extra_header, random_cells(rnd, n, layout.delimiter, layout.quotechar)
        )
        checked += 1
    assert checked == 400


def test_bigger_file_across_read_buffers(tmp_path: Path) -> None:
    rnd = random.Random(3)
    text = "id;email;note\r\n" + "".join(nasty_csv(rnd, ";", '"') for _ in range(1500))
    src = write(tmp_path, codecs.BOM_UTF8 + text.encode())
    layout = FileLayout(
        kind="csv", bom=True, delimiter=";", header=["id", "email", "note"], email_index=1
    )
    n = count_rows(src, layout)
    assert n > 5000
    cells = [[f"v{i}", "x;y" if i % 3 else "z"] for i in range(n)]
    check_chunked(src, layout, ["s", "t"], cells, (7, 1000, 4096, 10**6))


def test_malformed_csv_in_chunks_is_the_count_rows_error(tmp_path: Path) -> None:
    broken = b'b@example.com,"' + b"y" * 200_000 + b"\n"
    src = write(
        tmp_path, b"email,note\n" + b"a@example.com,x\n" * 30 + broken + b"c@example.com,z\n"
    )
    layout = detect_layout(src)
    with pytest.raises(InputError) as counting:
        count_rows(src, layout)
    assert str(counting.value).startswith("malformed CSV near line 32")
    for size in (1, 7, 1000):
        with pytest.raises(InputError) as chunking:
            list(iter_text_chunks(src, layout, size))
        assert str(chunking.value) == str(counting.value)
    assert header_text(src, layout) == "email,note\n"
    # a field over the limit on one line, without quotes
    long_line = b"d@example.com," + b"z" * 140_000 + b"\n"
    src.write_bytes(b"email,note\n" + b"a@example.com,x\n" * 3 + long_line)
    with pytest.raises(InputError, match="malformed CSV near line 5"):
        count_rows(src, layout)
    with pytest.raises(InputError, match="malformed CSV near line 5"):
        list(iter_text_chunks(src, layout, 2))


@pytest.fixture
def small_field_limit() -> Iterator[int]:
    old = csv.field_size_limit(40)
    try:
        yield 40
    finally:
        csv.field_size_limit(old)


@pytest.mark.parametrize(
    "big",
    [
        '"' + "x" * 30 + "\r\n" + "y" * 30 + '"',  # lines over the limit, the field too
        '"' + ("w" * 15 + "\r\n") * 4 + '"',  # short lines, but the field is over the limit
        "z" * 60,  # one line, no quotes
        "a" * 20 + '"' + "b" * 30,  # one line, a quote in an unquoted field
    ],
)
@pytest.mark.parametrize("ok_width", [1, 39])
def test_field_size_limit_as_csv_reader(
    tmp_path: Path, small_field_limit: int, big: str, ok_width: int
) -> None:
    ok = "".join(f"{i},u{i}@x.com,{'q' * ok_width}\r\n" for i in range(50))
    src = write(tmp_path, f"id,email,n\r\n{ok}99,z@x.com,{big}\r\n{ok}".encode())
    layout = FileLayout(kind="csv", header=["id", "email", "n"], email_index=1)
    with pytest.raises(InputError) as counting:
        count_rows(src, layout)
    assert str(counting.value).startswith("malformed CSV near line 5")
    for size in (1, 3, 1000):
        with pytest.raises(InputError) as chunking:
            list(iter_text_chunks(src, layout, size))
        assert str(chunking.value) == str(counting.value)
    with pytest.raises(InputError) as writing:
        write_result(src, layout, tmp_path / "out.csv", ["s"], [["x"]] * 101)
    assert str(writing.value) == str(counting.value)
    assert not (tmp_path / "out.csv").exists()
    # at the limit: fine
    src.write_bytes(f'id,email,n\r\n{ok}99,z@x.com,"{"w" * 20}\r\n{"w" * 18}"\r\n{ok}'.encode())
    check_chunked(src, layout, ["s"], [["x"]] * 101, (1, 3, 1000))


def test_undecodable_file_in_chunks(tmp_path: Path) -> None:
    src = write(tmp_path, b"email\na@x.com\nb\xff@x.com\n")
    layout = FileLayout(kind="csv", header=["email"])
    with pytest.raises(InputError, match="not valid utf-8"):
        list(iter_text_chunks(src, layout, 1))


def test_chunk_functions_reject_xlsx_and_bad_arguments(tmp_path: Path) -> None:
    xlsx = FileLayout(kind="xlsx", sheet="Sheet1")
    src = write(tmp_path, b"email\na@x.com\nb@x.com\n")
    for call in (
        lambda: header_text(src, xlsx),
        lambda: iter_text_chunks(src, xlsx, 10),
        lambda: chunk_emails("a@x.com\n", xlsx),
        lambda: render_header("email\n", xlsx, ["s"]),
        lambda: render_chunk("a@x.com\n", xlsx, [["s"]]),
        lambda: output_encoding(xlsx),
    ):
        with pytest.raises(ValueError, match="xlsx"):
            call()
    layout = detect_layout(src)
    with pytest.raises(ValueError, match="rows_per_chunk"):
        iter_text_chunks(src, layout, 0)
    with pytest.raises(ValueError, match="2 data rows but 1"):
        render_chunk("a@x.com\n\nb@x.com\n", layout, [["s"]])
    with pytest.raises(ValueError, match="2 data rows but 3"):
        render_chunk('a@x.com\n"b@\nx.com"\n', layout, [["s"]] * 3)
    txt = FileLayout(kind="txt", has_header=False, skip_records=0)
    with pytest.raises(ValueError, match="1 data rows but 0"):
        render_chunk(" \na@x.com\n\n", txt, [])
    with pytest.raises(ValueError, match="header text"):
        render_header("email\na@x.com\n", layout, ["s"])


def test_text_chunks_are_lazy_and_close_their_file(tmp_path: Path) -> None:
    src = write(tmp_path, b"email\n" + b"".join(b"u%d@x.com\n" % i for i in range(100)))
    layout = detect_layout(src)
    chunks = iter_text_chunks(src, layout, 10)
    assert next(chunks) == ("".join(f"u{i}@x.com\n" for i in range(10)), 10)
    chunks.close()  # ResourceWarning would fail the run (filterwarnings=error)
    del chunks
    assert [rows for _, rows in iter_text_chunks(src, layout, 30)] == [30, 30, 30, 10]
