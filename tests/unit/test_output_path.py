"""`-o PATH` writes a regular file only (issue 7 §3): anything else at PATH, or a place that
cannot hold a file, is one `mailvet: error:` line and exit 2, and PATH is left as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailvet.cli import app
from mailvet.output_path import OutputPathError, check_output, output_file

pytestmark = pytest.mark.unit


def _source(folder: Path) -> Path:
    source = folder / "l.csv"
    source.write_text("email\na@example.com\n")
    return source


def _validate(folder: Path, out: str) -> tuple[int, str]:
    env = {"MAILVET_DATA_DIR": str(folder / "data")}
    result = CliRunner().invoke(
        app, ["validate", str(_source(folder)), "--checks", "syntax", "-o", out], env=env
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _one_error(output: str, *words: str) -> None:
    lines = output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailvet: error: "), output
    assert "Traceback" not in output
    for word in words:
        assert word in lines[0], output


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".mailvet-tmp"))


def test_a_fifo_is_refused_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    code, output = _validate(tmp_path, str(fifo))
    assert code == 2
    _one_error(output, "named pipe")
    assert fifo.is_fifo() and _leftovers(tmp_path) == []


def test_a_symlink_is_refused_and_its_target_never_written(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    code, output = _validate(tmp_path, str(link))
    assert code == 2
    _one_error(output, "symbolic link")
    assert link.is_symlink() and target.read_text() == "precious\n"
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "nowhere.csv")
    code, output = _validate(tmp_path, str(dangling))
    assert code == 2 and not (tmp_path / "nowhere.csv").exists()
    _one_error(output, "symbolic link")


def test_a_directory_is_refused_without_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "out.csv"
    folder.mkdir()
    code, output = _validate(tmp_path, str(folder))
    assert code == 2
    _one_error(output, "directory")
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_device_node_is_refused(tmp_path: Path) -> None:
    code, output = _validate(tmp_path, "/dev/null")
    assert code == 2
    _one_error(output, "character device")


@pytest.mark.parametrize("place", ["/proc/self/out.csv", "/sys/out.csv", "/proc/out.csv"])
def test_system_folders_are_refused(tmp_path: Path, place: str) -> None:
    code, output = _validate(tmp_path, place)
    assert code == 2
    _one_error(output, "system folder")


def test_a_folder_that_is_a_file_or_missing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    code, output = _validate(tmp_path, str(tmp_path / "plain" / "out.csv"))
    assert code == 2
    _one_error(output, "no such directory")
    code, output = _validate(tmp_path, str(tmp_path / "missing" / "out.csv"))
    assert code == 2
    _one_error(output, "no such directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_an_unwritable_folder_is_refused_before_the_job(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, output = _validate(tmp_path, str(locked / "out.csv"))
    finally:
        locked.chmod(0o755)
    assert code == 2
    _one_error(output, "cannot write")
    assert list(locked.iterdir()) == []


def test_a_regular_file_is_replaced_whole_and_nothing_is_left_beside_it(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_text("old result\n")
    code, output = _validate(tmp_path, str(out))
    assert code == 0, output
    assert out.read_text().startswith("email,mailvet_status")
    assert _leftovers(tmp_path) == []


def test_a_rejected_input_prints_only_its_error_line_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "names.csv"
    source.write_text("name\nfoo\nbar\n")
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app,
        ["validate", str(source), "--checks", "syntax", "-o", str(out)],
        env={"MAILVET_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.exit_code == 2
    _one_error(result.output, "email column")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_fetch_refuses_a_symlink_too(tmp_path: Path) -> None:
    link = tmp_path / "out.csv"
    link.symlink_to(tmp_path / "target")
    result = CliRunner().invoke(
        app, ["fetch", "job-1", "-o", str(link)], env={"MAILVET_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 2
    _one_error(result.output, "symbolic link")


def test_output_file_checks_again_before_the_rename(tmp_path: Path) -> None:
    """A name that turns into a link while the result is written is not replaced."""
    out = tmp_path / "out.csv"
    target = tmp_path / "target"
    with pytest.raises(OutputPathError, match="symbolic link"), output_file(out) as temp:
        temp.write_text("result\n")
        out.symlink_to(target)
    assert out.is_symlink() and not target.exists()
    assert _leftovers(tmp_path) == []


def test_output_file_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with pytest.raises(RuntimeError), output_file(out) as temp:
        temp.write_text("half a result")
        raise RuntimeError("writer failed")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_output_file_writes_through_a_rename(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with output_file(out) as temp:
        assert temp.parent == tmp_path and temp.exists()
        temp.write_text("result\n")
        assert not out.exists()
    assert out.read_text() == "result\n" and _leftovers(tmp_path) == []


def test_check_output_accepts_nothing_or_a_regular_file(tmp_path: Path) -> None:
    check_output(tmp_path / "new.csv")
    (tmp_path / "old.csv").write_text("x")
    check_output(tmp_path / "old.csv")


def test_a_name_too_long_for_the_file_system_is_one_clear_line(tmp_path: Path) -> None:
    code, output = _validate(tmp_path, str(tmp_path / ("r" * 300 + ".csv")))
    assert code == 2
    _one_error(output, "cannot write", "File name too long")
    assert _leftovers(tmp_path) == []
