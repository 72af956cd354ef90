"""TXT lists (one address per line): detection and results."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailvet.tabular import InputError, detect_layout
from tests.unit.tabular.support import run

pytestmark = pytest.mark.unit


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
    data = '\nEmails\nann@example.com\n"odd"@example.com\nzoë@exämple.com\n'.encode()
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
    with pytest.raises(
        InputError, match=r"no column named 'mail' in the header \(columns: email\)"
    ):
        detect_layout(src, email_column="mail")
