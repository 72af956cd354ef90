"""Issue 9 §4's exactness over real HTTP in one process: the SaaS app served by uvicorn on a
socket (in the test's event loop), 64 concurrent clients of one key calling POST
/api/v1/validate with checks=syntax on an account of 100 credits. Exactly 100 answers are
200, every other one a 402 problem, and the balance ends at 0 (the service tests show the
same below HTTP, tests/integration/test_api_validation_pg.py on PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from mailvet.services import api_keys
from mailvet.web.api import api_router
from mailvet.web.api.auth import PROBLEM_JSON
from tests.api_validation_helpers import (
    CALLS_EACH,
    CLIENTS,
    Ledger,
    account_with,
    ledger,
    many_clients,
)
from tests.waiting import until
from tests.web.account_helpers import writing
from tests.web.shell_helpers import look, shell

pytestmark = pytest.mark.pipeline

VALIDATE = "/api/v1/validate"
CREDITS = 100


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers (the test runner keeps its own)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def test_64_clients_over_http_get_exactly_100_answers_then_402(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        # no per-key rate limit: its default (100 a second, the test's clock standing
        # still) would answer 429 where this test is about 402
        env = {"MAILVET_PUBLIC_URL": base_url, "MAILVET_API_RATE_LIMIT": ""}
        async with shell(tmp_path, env, areas=[api_router()]) as s:
            async with look(s.url) as database:
                ann = await account_with(database, "ann@example.com", CREDITS)
            async with writing(s.url) as session:
                made = await api_keys.create_key(session, ann.id, label="load", now=s.clock.now)
            server = _Server(uvicorn.Config(s.app, log_config=None, access_log=False))
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            await until(lambda: server.started or serving.done())
            answers: list[httpx.Response] = []
            try:
                limits = httpx.Limits(max_connections=CLIENTS)
                async with httpx.AsyncClient(
                    base_url=base_url, timeout=60, limits=limits
                ) as client:

                    async def call(n: int) -> bool:
                        answer = await client.post(
                            VALIDATE,
                            json={"email": f"user{n}@example.org", "checks": "syntax"},
                            headers={"authorization": f"Bearer {made.key}"},
                        )
                        answers.append(answer)
                        return answer.status_code == 200

                    answered, refused = await many_clients(call)
            finally:
                server.should_exit = True
                await serving
            async with look(s.url) as database:
                left = await ledger(database, ann.id)

    assert (answered, refused) == (CREDITS, CLIENTS * CALLS_EACH - CREDITS)
    others = [a for a in answers if a.status_code != 200]
    assert {a.status_code for a in others} == {402}
    for answer in others:
        assert answer.headers["content-type"].startswith(PROBLEM_JSON)
        body = answer.json()
        assert set(body) == {"type", "title", "status", "detail"}
        assert body["status"] == 402 and body["type"].endswith("insufficient-credits")
    assert all(a.json()["reason"] == "not_checked" for a in answers if a.status_code == 200)
    assert left == Ledger(balance=0, entries=CREDITS + 1, spent=CREDITS, refunded=0, pending=0)
