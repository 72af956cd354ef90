"""The test session does not depend on the directory it is started in (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailvet.settings import load_settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
# values a test run must not see: other ports, checks, chunking, data folder, DNS servers
HOSTILE = """\
data_dir = "hostile-data"
[smtp]
port = 2525
timeout = 0.25
[engine]
checks = "syntax"
chunk_size = 1
[dns]
servers = ["192.0.2.53"]
"""


def test_the_session_runs_in_an_empty_folder(settings_of_our_own: Path) -> None:
    assert Path.cwd() == settings_of_our_own
    assert not (Path.cwd() / "config").exists()
    assert not [
        name
        for name in os.environ
        if name.startswith("MAILVET_") and not name.startswith("MAILVET_TEST_")
    ]


def test_a_hostile_config_in_the_working_directory_changes_no_result(tmp_path: Path) -> None:
    hostile = tmp_path / "config" / "mailvet.toml"
    hostile.parent.mkdir()
    hostile.write_text(HOSTILE)
    assert load_settings({}, hostile) != load_settings({})  # it would change the settings

    # the settings and CLI tests, started from the folder that holds the file
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "unit",
            str(REPO / "tests" / "unit" / "test_settings.py"),
            str(REPO / "tests" / "unit" / "test_cli_misc.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
    assert not (tmp_path / "hostile-data").exists()
