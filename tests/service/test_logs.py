"""The libraries' own log records come out as JSON lines like ours (mailvet.logs)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mailvet import serve as serve_module
from mailvet.logs import RootHandler, configure_logging
from tests.service.test_health import _free_port, make_deps


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_stdlib_records_are_json_lines(json_logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    # (errors: a RabbitBus demotes aio-pika's reconnection chatter, tests/unit/test_bus.py)
    logging.getLogger("aio_pika.channel").error("Channel %s failed", "x")
    logging.getLogger("some.library").warning("a warning")
    logging.getLogger("aiormq.connection").debug("below the level: dropped")
    logging.getLogger("alembic.runtime.plugins").info("setup plugin x")  # quietened
    try:
        raise ConnectionError("gone")
    except ConnectionError:
        logging.getLogger("aiormq.connection").exception("reader failed")
    lines = _lines(capsys.readouterr().err)  # every line parses as JSON
    assert [(x["logger"], x["level"], x["event"]) for x in lines] == [
        ("aio_pika.channel", "error", "Channel x failed"),
        ("some.library", "warning", "a warning"),
        ("aiormq.connection", "error", "reader failed"),
    ]
    assert "ConnectionError: gone" in str(lines[2]["exception"])  # inside the line
    assert all("timestamp" in x for x in lines)


def test_configuring_twice_keeps_one_root_handler(json_logs: None) -> None:
    configure_logging("info", json=True)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, RootHandler)]
    assert len(handlers) == 1


async def test_uvicorn_lines_are_json(
    json_logs: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deps = await make_deps(tmp_path, {"MAILVET_HEALTH_PORT": str(_free_port())})
    (server,) = serve_module.http_servers(deps, deps.settings, ["worker"])
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    try:
        await server.startup()
        await server.shutdown()
    finally:
        await deps.close()
    lines = _lines(capsys.readouterr().err)
    uvicorn = [x for x in lines if str(x.get("logger", "")).startswith("uvicorn")]
    assert uvicorn, lines
    assert any("Uvicorn running on http://127.0.0.1:" in str(x["event"]) for x in uvicorn)
