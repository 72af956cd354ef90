"""Files in transit stay under MAILVET_DATA_DIR (issue 7 §2): `mailvet validate` writes
nothing to the system temp folder, where full copies of the input and the growing result
used to sit (tempfile.TemporaryDirectory in the pipeline's job files and result writer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

pytestmark = pytest.mark.pipeline

# Runs `mailvet validate` with an audit hook that records every file opened and every
# folder made in TMPDIR (files removed before the end would leave no trace to look at).
DRIVER = """
import json, os, runpy, sys
temp = os.path.realpath(os.environ["TMPDIR"]) + os.sep
seen = []
def hook(event, args):
    if event in ("open", "os.mkdir", "tempfile.mkstemp", "tempfile.mkdtemp") and args:
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            full = os.path.realpath(os.fsdecode(path))
            if (full + os.sep).startswith(temp):
                seen.append([event, full])
report_to = sys.argv[1]
def report():
    with open(report_to, "w") as fh:
        json.dump(seen, fh)
import atexit
atexit.register(report)
sys.addaudithook(hook)
sys.argv = ["mailvet", *sys.argv[2:]]
runpy.run_module("mailvet", run_name="__main__")
"""


def validate_with_tmpdir(tmp_path: Path, source: Path, out: Path) -> list[list[str]]:
    temp = tmp_path / "system-temp"
    temp.mkdir()
    seen = tmp_path / "seen.json"
    env = dict(
        os.environ,
        TMPDIR=str(temp),
        MAILVET_DATA_DIR=str(tmp_path / "data"),
        MAILVET_SYNTAX_PROCESSES="0",  # the pool's fork server keeps a socket in TMPDIR
    )
    args = ["validate", str(source), "-o", str(out), "--checks", "syntax"]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(seen), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(temp.iterdir()) == []
    assert out.exists()
    recorded: list[list[str]] = json.loads(seen.read_text())
    return recorded


def test_csv_validate_writes_nothing_to_the_system_temp_folder(tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_text("email,name\n" + "".join(f"u{i}@example.com,N{i}\n" for i in range(3000)))
    assert validate_with_tmpdir(tmp_path, source, tmp_path / "out.csv") == []
    assert not (tmp_path / "data" / "tmp").exists() or not any(
        (tmp_path / "data" / "tmp").iterdir()
    )


def test_xlsx_validate_writes_nothing_to_the_system_temp_folder(tmp_path: Path) -> None:
    source = tmp_path / "list.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["email", "name"])
    for i in range(200):
        sheet.append([f"u{i}@example.com", f"N{i}"])
    book.save(source)
    assert validate_with_tmpdir(tmp_path, source, tmp_path / "out.xlsx") == []
