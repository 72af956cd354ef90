"""write_result's contract: one item of extra cells per data row, consumed lazily."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
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


def test_a_failed_xlsx_result_leaves_no_temporary_file(tmp_path: Path) -> None:
    """openpyxl streams a write-only sheet through a file in the temp folder: a result that
    fails half way (here: too few extra rows, after 500 rows) removes it at once (not only
    at the exit of the process, which may be a long-running worker), and its output."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    script = textwrap.dedent(
        """
        import os
        import sys
        import tempfile
        from pathlib import Path
        from mailvet.tabular import detect_layout, write_result

        src, out = Path(sys.argv[1]), Path(sys.argv[2])
        src.write_text("email\\n" + "a@example.com\\n" * 1000)
        try:
            write_result(src, detect_layout(src), out, ["s"], [["x"]] * 500, out_kind="xlsx")
        except ValueError as exc:
            print(exc)
        print(sorted(os.listdir(tempfile.gettempdir())))  # before openpyxl's exit hook
        """
    )
    env = {**os.environ, "TMPDIR": str(temp)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "in.csv"), str(tmp_path / "out.xlsx")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == "[]"
    assert "fewer items" in done.stdout
    assert not (tmp_path / "out.xlsx").exists()


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
