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
