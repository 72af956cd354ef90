"""The web server's access log (web/access_log.py, wired in serve.py): method, path without
its query, status and duration; never the query string (a reset token, an address) or the
client's IP; uvicorn's own access line off."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from litestar import Litestar, get
from litestar.params import FromQuery
from litestar.testing import AsyncTestClient

from mailvet import serve
from mailvet.web.access_log import AccessLog

pytestmark = pytest.mark.unit

TOKEN = "Zq3-live-reset-token-that-must-not-be-logged"


@get("/reset-password", sync_to_thread=False)
def reset_page(token: FromQuery[str] = "") -> str:
    return "reset" if token else "no token"


@get("/boom", sync_to_thread=False)
def boom() -> str:
    raise RuntimeError("down")


@pytest.mark.usefixtures("every_level")
async def test_a_request_is_logged_without_its_query_or_the_client() -> None:
    app = Litestar([reset_page, boom], logging_config=None)
    with structlog.testing.capture_logs() as logs:
        async with AsyncTestClient(AccessLog(app)) as client:
            ok = await client.get(f"/reset-password?token={TOKEN}&email=ann%40example.com")
            missing = await client.get("/nowhere?email=ann@example.com")
            failed = await client.get("/boom")
    assert (ok.status_code, missing.status_code, failed.status_code) == (200, 404, 500)
    lines = [entry for entry in logs if entry["event"] == "http_request"]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", "/reset-password", 200),
        ("GET", "/nowhere", 404),
        ("GET", "/boom", 500),
    ]
    assert all(e["log_level"] == "info" and e["duration_ms"] >= 0 for e in lines)
    everything = repr(logs)
    for secret in (TOKEN, "ann@example.com", "ann%40example.com", "testclient"):
        assert secret not in everything


def test_the_web_server_logs_through_it_and_uvicorn_logs_no_access_line() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    web = serve._server(app, "127.0.0.1", 0, health_only=False)
    assert web.config.access_log is False
    assert isinstance(web.config.app, AccessLog) and web.config.app.app is app
    health = serve._server(app, "127.0.0.1", 0, health_only=True)
    assert health.config.access_log is False and health.config.app is app
