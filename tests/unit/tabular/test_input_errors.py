"""Bad input files: one clear InputError line each."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from mailvet.tabular import InputError, count_rows, detect_layout, iter_emails, write_result
from tests.unit.tabular.support import bad

pytestmark = pytest.mark.unit


def test_missing_email_column_name(tmp_path: Path) -> None:
    message = bad(tmp_path, b"id,email,name\n1,a@example.com,A\n", email_column="courriel")
    assert message == "no column named 'courriel' in the header (columns: id, email, name)"


def test_no_email_column(tmp_path: Path) -> None:
    message = bad(tmp_path, b"id,name\n1,Ann\n2,Bob\n")
    assert message == "could not find an email column; name it with --email-column"


def test_binary_file(tmp_path: Path) -> None:
    message = bad(
        tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), name="x.csv"
    )
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
