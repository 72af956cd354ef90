from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mailvet.cli import app

pytestmark = pytest.mark.unit


def test_asyncapi_documents_every_service_queue() -> None:
    result = CliRunner().invoke(app, ["asyncapi"], env={"MAILVET_RABBITMQ_PREFIX": "mailvet"})
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["asyncapi"].startswith("3.")
    assert set(document["channels"]) >= {
        f"mailvet.{q}"
        for q in ("intake", "publisher", "orchestrator", "work", "results", "rows.{job_id}")
    }


def test_submit_refuses_the_in_process_bus(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "l.csv"
    source.write_text("email\na@b.com\n")
    result = CliRunner().invoke(app, ["submit", str(source)], env={"MAILVET_BUS": "memory"})
    assert result.exit_code == 2 and "MAILVET_BUS=rabbit" in result.output


def test_run_refuses_a_single_role_on_the_in_process_bus(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"MAILVET_BUS": "memory", "MAILVET_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["run", "worker"], env=env)
    assert result.exit_code == 2 and "mailvet run all" in result.output
    assert CliRunner().invoke(app, ["run", "juggler"], env=env).exit_code == 2


def test_doctor_is_registered_and_exits_with_the_doctors_answer(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import mailvet.doctor

    calls: list[tuple[str, str]] = []

    def recording_run(settings, *, probe_domain: str) -> int:  # type: ignore[no-untyped-def]
        calls.append((settings.data_dir, probe_domain))
        return 3

    monkeypatch.setattr(mailvet.doctor, "run", recording_run)
    env = {"MAILVET_DATA_DIR": str(tmp_path)}
    assert CliRunner().invoke(app, ["doctor"], env=env).exit_code == 3
    assert (
        CliRunner().invoke(app, ["doctor", "--probe-domain", "example.org"], env=env).exit_code == 3
    )
    assert calls == [(str(tmp_path), "gmail.com"), (str(tmp_path), "example.org")]


def test_fetch_of_a_result_no_longer_stored_is_one_clear_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A `validate` job's result is removed once written to its output: fetch says so."""
    source = tmp_path / "l.csv"
    source.write_text("email\na@example.com\n")
    env = {"MAILVET_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(source), "--checks", "syntax"], env=env)
    assert result.exit_code == 0, result.output
    import sqlite3

    [(job_id,)] = sqlite3.connect(tmp_path / "data" / "mailvet.db").execute("SELECT id FROM jobs")
    status = runner.invoke(app, ["status", job_id], env=env)
    assert status.exit_code == 0 and "file_completed" in status.output
    fetched = runner.invoke(app, ["fetch", job_id, "-o", str(tmp_path / "o.csv")], env=env)
    assert fetched.exit_code == 2 and "no longer stored" in fetched.output
    assert "Traceback" not in fetched.output
