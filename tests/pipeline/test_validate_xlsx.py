"""`mailvet validate` on workbooks: --sheet, and a result kind that follows the output name."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from mailvet.domain.verdict import RESULT_COLUMNS
from tests.pipeline.cli_runs import validate

pytestmark = pytest.mark.pipeline


def workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    first = book.active
    first.title = "Staff"
    first.append(["email"])
    first.append(["staff@example.com"])
    clients = book.create_sheet("Clients")
    clients.append(["name", "email"])
    clients.append(["Ann", "ann@example.com"])
    clients.append(["Bob", "bob@example.com"])
    book.save(path)
    return path


def test_an_xlsx_list_to_a_csv_result(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    src = workbook(tmp_path / "people.xlsx")
    out = tmp_path / "result.csv"
    code, output = validate(runner, env, str(src), "-o", str(out), "--sheet", "Clients")
    assert code == 0, output
    assert not out.read_bytes().startswith(b"PK")  # CSV text, not workbook bytes
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0] == ["name", "email", *RESULT_COLUMNS]
    assert [r[:2] for r in rows[1:]] == [["Ann", "ann@example.com"], ["Bob", "bob@example.com"]]


def test_sheet_picks_the_sheet_and_every_sheet_comes_back(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    src = workbook(tmp_path / "people.xlsx")
    out = tmp_path / "result.xlsx"
    code, output = validate(runner, env, str(src), "-o", str(out), "--sheet", "Clients")
    assert code == 0, output
    book = openpyxl.load_workbook(out, read_only=True)
    assert book.sheetnames == ["Staff", "Clients"]
    staff = [list(r) for r in book["Staff"].iter_rows(values_only=True)]
    clients = [list(r) for r in book["Clients"].iter_rows(values_only=True)]
    assert staff == [["email"], ["staff@example.com"]]  # untouched
    assert clients[0] == ["name", "email", *RESULT_COLUMNS]
    assert len(clients) == 3


def test_no_such_sheet(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    src = workbook(tmp_path / "people.xlsx")
    code, output = validate(runner, env, str(src), "--sheet", "Nope")
    assert code == 2
    assert (
        output.strip().splitlines()[-1] == "mailvet: error: people.xlsx has no sheet named 'Nope'"
    )


def test_a_csv_list_asked_for_as_xlsx_is_refused(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    src = tmp_path / "list.csv"
    src.write_bytes(b"email\na@example.com\n")
    out = tmp_path / "result.xlsx"
    code, output = validate(runner, env, str(src), "-o", str(out))
    assert code == 2 and not out.exists()
    assert output.strip() == (
        "mailvet: error: result.xlsx: a CSV or TXT list gives a CSV result; name the output .csv"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "MAILVET_MAX_XLSX_EXPANDED_BYTES",
            "2000",
            "people.xlsx inflates to more than 2,000 bytes (MAILVET_MAX_XLSX_EXPANDED_BYTES)",
        ),
        (
            "MAILVET_MAX_CELL_BYTES",
            "10",
            "people.xlsx: a cell of row 2 holds more than 10 bytes (MAILVET_MAX_CELL_BYTES)",
        ),
    ],
)
def test_the_xlsx_limits_come_from_the_settings(
    runner: CliRunner,
    env: dict[str, str],
    tmp_path: Path,
    variable: str,
    value: str,
    message: str,
) -> None:
    src = workbook(tmp_path / "people.xlsx")
    out = tmp_path / "result.xlsx"
    code, output = validate(runner, {**env, variable: value}, str(src), "-o", str(out))
    assert code == 2 and not out.exists()
    assert output.strip().splitlines()[-1] == f"mailvet: error: {message}"
