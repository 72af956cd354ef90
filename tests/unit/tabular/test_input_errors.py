"""Bad input files: one clear InputError line each."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mailvet.tabular import (
    FileLayout,
    InputError,
    count_rows,
    detect_layout,
    iter_emails,
    iter_text_chunks,
    write_result,
)
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
    message = (
        "the cell starting at line 32 is longer than 131,072 characters, the limit"
        " (MAILVET_MAX_CELL_BYTES); does a quote open there and never close?"
    )
    for call in (count_rows, lambda p, lay: list(iter_emails(p, lay))):
        with pytest.raises(InputError) as info:
            call(src, layout)
        assert str(info.value) == message
    with pytest.raises(InputError, match="the cell starting at line 32"):
        write_result(src, layout, tmp_path / "out.csv", ["s"], [["x"]] * 31)
    assert not (tmp_path / "out.csv").exists()
    early = bad(tmp_path, b"email,note\n" + broken, name="early.csv")
    assert early == message.replace("line 32", "line 2")


def test_a_file_without_line_breaks_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    # 16 MB on one line: every reader takes it a piece at a time (tracemalloc's peak of the
    # Python heap stays a few MiB; reading the line whole took several times the file)
    src = tmp_path / "flat.csv"
    src.write_bytes(b"email," + b"x" * 16_000_000)
    message = (
        "the cell starting at line 1 is longer than 131,072 characters, the limit"
        " (MAILVET_MAX_CELL_BYTES)"
    )
    layout = FileLayout(kind="csv", header=["email", "x"])
    readers: dict[str, Callable[[], object]] = {
        "detect": lambda: detect_layout(src),
        "count": lambda: count_rows(src, layout),
        "emails": lambda: list(iter_emails(src, layout)),
        "chunks": lambda: list(iter_text_chunks(src, layout, 1000)),
    }
    for name, call in readers.items():
        tracemalloc.start()
        try:
            with pytest.raises(InputError) as info:
                call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert str(info.value) == message, name
        assert peak < 8 * 1024 * 1024, (name, peak)


def test_a_line_over_the_line_limit_with_small_cells(tmp_path: Path) -> None:
    src = tmp_path / "wide.csv"
    src.write_bytes(b"email,n\na@x.com,1\n" + b"b@x.com," * 200_000 + b"\n")
    assert bad(tmp_path, src.read_bytes(), name="wide.csv") == (
        "line 3 is longer than 1,048,576 characters, the limit of a line (eight cells of"
        " MAILVET_MAX_CELL_BYTES = 131,072); no list holds lines that long"
    )
    layout = FileLayout(kind="csv", header=["email", "n"], max_cell=10_000)
    src.write_bytes(b"email,n\na@x.com,1\n" + b"b@x.com," * 10_000 + b"\n")
    assert count_rows(src, layout) == 2  # 80,000 characters: many cells, each short


def test_txt_line_over_max_cell(tmp_path: Path) -> None:
    src = tmp_path / "l.txt"
    src.write_bytes(b"email\na@x.com\n\n" + b"y" * 131_073 + b"\nb@x.com\n")
    layout = detect_layout(src)
    for call in (count_rows, lambda p, lay: list(iter_emails(p, lay))):
        with pytest.raises(InputError) as info:
            call(src, layout)
        assert str(info.value) == (
            "the cell starting at line 4 is longer than 131,072 characters, the limit"
            " (MAILVET_MAX_CELL_BYTES)"
        )
    src.write_bytes(b"email\r\na@x.com\r\n\r\n" + b"y" * 131_072 + b"\r\nb@x.com\r\n")
    assert count_rows(src, layout) == 3  # at the limit
    assert [len(e) for e in iter_emails(src, layout)] == [7, 131_072, 7]
