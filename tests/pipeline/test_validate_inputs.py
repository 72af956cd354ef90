"""`mailvet validate` on awkward and broken input: clear errors, nothing half-written."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from mailvet.cli import app
from mailvet.domain.verdict import RESULT_COLUMNS
from tests.pipeline.cli_runs import validate

pytestmark = pytest.mark.pipeline


def make_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    return path


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# UTF-8 on line 2, a cp1252 byte 3,000 lines later
MIXED = "email\nzoë@exämple.com\n".encode() + b"a@example.com\n" * 3000 + b"Ren\xe9@example.com\n"


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (lambda p: p / "nope.csv", "no such file"),
    "empty": (lambda p: (p / "empty.csv", (p / "empty.csv").write_bytes(b""))[0], "empty"),
    "binary": (
        lambda p: (p / "b.csv", (p / "b.csv").write_bytes(b"\x00\x01\x02" * 100))[0],
        "binary",
    ),
    "no_column": (
        lambda p: (p / "n.csv", (p / "n.csv").write_text("name,city\nAnn,Oslo\nBo,Rome\n"))[0],
        "email column",
    ),
    "not_xlsx": (lambda p: make_zip(p / "w.xlsx"), "xlsx"),
    "mixed_encodings": (lambda p: write(p / "m.csv", MIXED), "mixes encodings: line 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_exit_2(
    case: str, runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    make, words = BAD_INPUTS[case]
    source = make(tmp_path)
    out = tmp_path / "out.csv"
    code, output = validate(runner, env, str(source), "-o", str(out))
    assert code == 2
    lines = [line for line in output.splitlines() if line.startswith("mailvet: error:")]
    assert len(lines) == 1 and words.lower() in lines[0].lower(), output
    assert "Traceback" not in output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_unknown_email_column_name(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "l.csv"
    source.write_text("mail_addr,name\na@b.com,A\n")
    code, output = validate(runner, env, str(source), "--email-column", "courriel")
    assert code == 2 and "courriel" in output and "mail_addr" in output


def test_header_only_list_completes_with_no_rows(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "h.csv"
    source.write_text("email,name\n")
    out = tmp_path / "o.csv"
    code, output = validate(runner, env, str(source), "-o", str(out))
    assert code == 0, output
    assert out.read_text() == "email,name," + ",".join(RESULT_COLUMNS) + "\n"


def test_columns_are_kept_byte_for_byte(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    raw = (
        '\ufeffid;"E-mail";note\r\n'
        '1;alice@gmail.com;"semi;colon"\r\n'
        '2;"bob@yahoo.com";"multi\r\nline ""quoted"""\r\n'
        "3;bad@@x;caf\u00e9\r\n"
        "\r\n"
        "4;alice@gmail.com;dup\r\n"
    ).encode("utf-8")
    source = tmp_path / "in.csv"
    source.write_bytes(raw)
    out = tmp_path / "out.csv"
    code, output = validate(runner, env, str(source), "-o", str(out), "--email-column", "e-mail")
    assert code == 0, output
    result = out.read_bytes()
    records = result.split(b"\r\n")
    assert records[0].startswith('\ufeffid;"E-mail";note;mailvet_status'.encode())
    assert records[1].startswith(
        b'1;alice@gmail.com;"semi;colon";unknown;not_checked;alice@gmail.com'
    )
    assert records[2] == b'2;"bob@yahoo.com";"multi'
    assert records[3].startswith(b'line ""quoted""";unknown;not_checked;bob@yahoo.com')
    assert records[4].startswith("3;bad@@x;caf\u00e9;undeliverable;invalid_syntax".encode())
    assert records[5] == b""  # the blank line is kept and is not a row
    assert records[6].startswith(b"4;alice@gmail.com;dup;unknown;not_checked")
    # every input byte is still there, in order, once the appended cells are removed
    stripped = b"\r\n".join(
        r.split(b";unknown;")[0].split(b";undeliverable;")[0].split(b";mailvet_status")[0]
        for r in records
    )
    assert stripped == raw


def test_txt_and_xlsx_inputs(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    txt = tmp_path / "list.txt"
    txt.write_text("alice@gmail.com\n\nnot-an-address\n")
    code, output = validate(runner, env, str(txt))
    assert code == 0, output
    assert (tmp_path / "list.mailvet.csv").read_text().splitlines()[1:] == [
        # mailvet_catch_all is empty: no probe, so not established (not "false")
        "alice@gmail.com,unknown,not_checked,alice@gmail.com,,false,false,true,,,,alice@gmail.com",
        "not-an-address,undeliverable,invalid_syntax,,,false,false,false,,,,",
    ]

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Name", "Email", "Score"])
    sheet.append(["Ann", "ann@outlook.com", 7])
    sheet.append(["Bo", "broken", 3.5])
    xlsx = tmp_path / "people.xlsx"
    book.save(xlsx)
    code, output = validate(runner, env, str(xlsx))
    assert code == 0, output
    result = openpyxl.load_workbook(tmp_path / "people.mailvet.xlsx", read_only=True)
    rows = [list(r) for r in result.active.iter_rows(values_only=True)]
    result.close()
    assert rows[0][:4] == ["Name", "Email", "Score", "mailvet_status"]
    assert rows[1][:5] == ["Ann", "ann@outlook.com", 7, "unknown", "not_checked"]
    assert rows[2][:5] == ["Bo", "broken", 3.5, "undeliverable", "invalid_syntax"]
    catch_all = rows[0].index("mailvet_catch_all")
    assert [rows[1][catch_all], rows[2][catch_all]] == [None, None]  # empty cells


def test_check_command_json(runner: CliRunner, env: dict[str, str]) -> None:
    result = runner.invoke(
        app, ["check", "Info@GMAIL.con", "--json", "--checks", "syntax"], env=env
    )
    assert result.exit_code == 0, result.output
    assert '"status":"risky"' in result.output
    assert '"reason":"suspected_typo"' in result.output
    assert '"suggestion":"info@gmail.com"' in result.output
    assert '"role":true' in result.output


def test_process_pool_gives_the_same_file_as_one_process(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    """Big syntax-only chunks run in worker processes; the result must not change."""
    rows = [f'{i},"user{i}@Example{i % 7}.com",x{i}' for i in range(6000)]
    rows[10] = '10,"not valid@x.com",odd'
    rows[20] = '20,"q""uoted""@x.com","multi\r\nline"'
    source = tmp_path / "big.csv"
    source.write_bytes(("id,email,note\r\n" + "\r\n".join(rows) + "\r\n").encode())
    outputs = []
    for processes in ("2", "0"):
        out = tmp_path / f"out{processes}.csv"
        settings = {
            **env,
            "MAILVET_SYNTAX_PROCESSES": processes,
            "MAILVET_SYNTAX_CHUNK_SIZE": "2500",
        }
        result = runner.invoke(
            app, ["validate", str(source), "-o", str(out), "--checks", "syntax"], env=settings
        )
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    lines = outputs[0].split(b"\r\n")
    assert len(lines) == 6000 + 3  # header, rows (one spans two lines), final empty
    assert lines[11].startswith(b'10,"not valid@x.com",odd,undeliverable,invalid_syntax')


def test_display_name_cells_are_found_and_judged_by_the_address_inside(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    """Exports of mail clients and CRMs: no header, the address column holds display names."""
    source = tmp_path / "contacts.csv"
    source.write_text(
        'Ann,"Ann Lee <ann@gmail.com>",7\n'
        'Bob,"""Bob"" <bob@yahoo.com>",3\n'
        "Cy,Cy <not an address>,1\n"
    )
    code, output = validate(runner, env, str(source))
    assert code == 0, output
    rows = (tmp_path / "contacts.mailvet.csv").read_text().splitlines()
    assert rows[0].startswith('Ann,"Ann Lee <ann@gmail.com>",7,unknown,not_checked,ann@gmail.com,')
    assert rows[1].startswith('Bob,"""Bob"" <bob@yahoo.com>",3,unknown,not_checked,bob@yahoo.com,')
    assert rows[2].startswith("Cy,Cy <not an address>,1,undeliverable,invalid_syntax,")


def test_utf16_without_bom(runner: CliRunner, env: dict[str, str], tmp_path: Path) -> None:
    source = write(tmp_path / "u.csv", "name;email\r\nZoë;zoe@example.com\r\n".encode("utf-16-be"))
    out = tmp_path / "o.csv"
    code, output = validate(runner, env, str(source), "-o", str(out))
    assert code == 0, output
    lines = out.read_bytes().decode("utf-16-be").splitlines()
    assert lines[0] == "name;email;" + ";".join(RESULT_COLUMNS)
    assert lines[1].startswith("Zoë;zoe@example.com;")


def test_max_cell_bytes_setting_holds_csv_cells(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    source = write(tmp_path / "l.csv", b"email,note\na@example.com,x\nb@example.com," + b"y" * 60)
    out = tmp_path / "o.csv"
    code, output = validate(
        runner, {**env, "MAILVET_MAX_CELL_BYTES": "50"}, str(source), "-o", str(out)
    )
    assert code == 2 and not out.exists()
    assert output.strip().splitlines()[-1] == (
        "mailvet: error: the cell starting at line 3 is longer than 50 characters, the limit"
        " (MAILVET_MAX_CELL_BYTES)"
    )
    code, output = validate(runner, env, str(source), "-o", str(out))  # the default: 131,072
    assert code == 0, output
