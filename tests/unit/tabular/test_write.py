"""write_result's contract: one item of extra cells per data row, consumed lazily."""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from mailvet.tabular import detect_layout, iter_emails, write_result
from tests.unit.tabular.support import check_chunked, make_xlsx

pytestmark = pytest.mark.unit


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


def test_a_failed_xlsx_result_leaves_no_file_behind(tmp_path: Path) -> None:
    """An XLSX result that fails half way (too few extra rows, after 500 of 1,000 rows)
    leaves neither its output nor the sheet's temporary file (made beside the output)."""
    src = tmp_path / "in.xlsx"
    make_xlsx(src, [["email"]] + [["a@example.com"]] * 1000)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(ValueError, match="fewer items"):
        write_result(src, detect_layout(src), folder / "out.xlsx", ["s"], [["x"]] * 500)
    assert list(folder.iterdir()) == []


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
    assert isinstance(it, Generator)
    it.close()  # ResourceWarning would fail the run (filterwarnings=error)
