"""Layout detection: delimiters, the header and the email column."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mailvet.tabular import InputError, detect_layout
from tests.unit.tabular.support import expected_csv, extras_for, raw_of, run

pytestmark = pytest.mark.unit


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


@pytest.mark.parametrize("sep", [",", ";", "|"])
def test_a_quoted_cell_holding_a_quote_and_a_tab(tmp_path: Path, sep: str) -> None:
    """csv.Sniffer read these as TAB separated (a quote beside a TAB)."""
    records = [
        ("header", f"note{sep}email", "\n"),
        ("data", f'"said ""hi""\tthen"{sep}ann@example.com', "\n"),
    ]
    layout, emails, out = run(tmp_path, raw_of(records).encode())
    assert layout.delimiter == sep and layout.email_index == 1
    assert emails == ["ann@example.com"]
    assert out.read_bytes() == expected_csv(records, extras_for(emails), sep).encode()


@pytest.mark.parametrize(
    ("data", "sep"),
    [
        (b"email,name,note\nann@example.com,Ann,;'\nbob@example.com,Bob,'\n", ","),
        (
            b"note|email|extra|n\n\"x|y\"|ann@example.com|rock 'n' roll|1,5\n"
            b"1,5|bob@example.com|n/a|\"x|y\"\na;b|cy@example.com|1,5|'a;b'\n",
            "|",
        ),
        # found by tests/pipeline/test_validate_fuzz.py (were read as ';', TAB, TAB separated)
        (b"email,name,id\n\n0@example.com,,;'\n\n,,'\n\n", ","),
        (b'name,id,email\n\n"""\t",@,\n\n', ","),
        (b'note,x y,email\r"""\t",@,0..0\r\r', ","),
    ],
)
def test_apostrophes_and_quotes_inside_cells_keep_the_delimiter(
    tmp_path: Path, data: bytes, sep: str
) -> None:
    """The delimiter is the one that gives the records (read with csv's quoting, as they are
    read later) one number of cells; csv.Sniffer took a "'" for a quote character."""
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    assert detect_layout(src).delimiter == sep


def test_rows_without_their_trailing_cells_keep_the_delimiter(tmp_path: Path) -> None:
    """A '|' list whose rows leave off an empty last cell, a TAB in one cell of most rows:
    more records have two cells each read with TAB than four read with '|', but '|' splits
    every record (was read as TAB separated)."""
    data = (
        b"name|note|email|city\n"
        b"Ann|tab\there|ann@example.com\n"
        b"Bob|tab\there|bob@example.com\n"
        b"Cy|tab\there|cy@example.com|Nice\n"
        b"Di|tab\there|di@example.com|Lyon\n"
        b"Ed|x|ed@example.com\n"
    )
    layout, emails, _ = run(tmp_path, data)
    assert layout.delimiter == "|" and layout.email_index == 2 and layout.has_header
    assert emails == [f"{n}@example.com" for n in ("ann", "bob", "cy", "di", "ed")]


def test_one_column_file_uses_comma(tmp_path: Path) -> None:
    records = [
        ("header", "email", "\n"),
        ("data", "a@example.com", "\n"),
        ("data", "b@x.org", "\n"),
    ]
    layout, emails, out = run(tmp_path, raw_of(records).encode())
    assert layout.delimiter == "," and layout.email_index == 0 and layout.has_header
    assert out.read_bytes() == expected_csv(records, extras_for(emails)).encode()


@pytest.mark.parametrize(
    "name",
    [
        "email",
        "E-Mail",
        "E_mail",
        "Email Address",
        "emailid",
        "Courriel",
        "correo",
        "User Email",
        "contact-email",
        "MAIL",
    ],
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
    assert (
        layout.email_index == 2
        and layout.has_header
        and emails == ["s@example.com", "t@example.com"]
    )


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


_CELLS = ("Paris", "x", "Smith, John", "1,5", "ok", "a b", "Doe, Jane", "12,50 EUR", "n/a", "")


def test_line_endings_do_not_change_the_layout(tmp_path: Path) -> None:
    """400 random ;/TAB/| tables (cells with commas in them), each written with LF, CRLF and
    CR-only line ends (old Mac exports): the same delimiter and email column every time
    (csv.Sniffer, used before, splits at LF only: CR-only files were misdetected 398 times
    in 400)."""
    rng = random.Random(7)
    src = tmp_path / "in.csv"
    wrong: list[tuple[int, str, str, int]] = []
    for table in range(400):
        sep = rng.choice(";\t|")
        width = rng.randint(2, 6)
        col = rng.randrange(width)
        header = [f"col{i}" for i in range(width)]
        header[col] = rng.choice(["email", "E-mail", "Courriel"])
        rows = [header]
        for r in range(rng.randint(2, 30)):
            row = [rng.choice(_CELLS) for _ in range(width)]
            row[col] = f"user{r}@example{r % 3}.com"
            rows.append(row)
        for end in ("\n", "\r\n", "\r"):
            src.write_bytes((end.join(sep.join(row) for row in rows) + end).encode())
            layout = detect_layout(src)
            if (layout.delimiter, layout.email_index, layout.has_header) != (sep, col, True):
                wrong.append((table, repr(end), layout.delimiter, layout.email_index))
    assert wrong == []
