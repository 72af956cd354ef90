"""One health story: `healthy()` over the ports a role uses, served by every role's own uvicorn
server on MAILVET_HEALTH_HOST:MAILVET_HEALTH_PORT (127.0.0.1:9464 by default) with /metrics,
and as a bare status on the web role's public port."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mailvet import serve as serve_module
from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.memory import MemoryJobRepository
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.domain.job import Job
from mailvet.health import health_app, healthy, needs
from mailvet.settings import load_settings
from mailvet.web.app import create_app
from tests.fakes import FakeProber, FakeResolver


class PingBus(MemoryBus):
    """A bus with a broker behind it: `ping` answers `answer`, or raises it."""

    def __init__(self, answer: bool | Exception | None) -> None:
        super().__init__()
        self.answer = answer
        self.pings = 0

    async def ping(self) -> bool | None:  # type: ignore[override]  # None: a broken answer
        self.pings += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class StuckJobs(MemoryJobRepository):
    """A job database that never answers a listing (a hung connection)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    async def list_jobs(self, limit: int = 100) -> list[Job]:
        self.asked += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class BrokenStorage(MemoryStorage):
    async def exists(self, key: str) -> bool:
        raise ConnectionRefusedError("refused")


async def make_deps(tmp_path: Path, env: dict[str, str] | None = None, **ports: object) -> Deps:
    settings = load_settings({"MAILVET_DATA_DIR": str(tmp_path / "data"), **(env or {})})
    return await build_deps(
        settings,
        jobs=ports.get("jobs") or MemoryJobRepository(),  # type: ignore[arg-type]
        storage=ports.get("storage") or MemoryStorage(),  # type: ignore[arg-type]
        bus=ports.get("bus") or MemoryBus(),  # type: ignore[arg-type]
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[Deps]:
    deps = await make_deps(tmp_path)
    try:
        yield deps
    finally:
        await deps.close()


async def test_the_memory_bus_answers_a_ping() -> None:
    assert await MemoryBus().ping() is True


def test_each_role_needs_the_ports_it_uses() -> None:
    assert needs(["worker"]) == {"bus"}
    assert needs(["orchestrator"]) == {"bus", "database"}
    assert needs(["web"]) == needs(["resultgen"]) == {"bus", "database", "storage"}
    assert needs(["worker", "orchestrator"]) == {"bus", "database"}


async def test_check_asks_every_port_of_the_roles(deps: Deps) -> None:
    health = await healthy(deps, ["intake"])
    assert health.status == "ok"
    assert health.checks == {"bus": "ok", "database": "ok", "storage": "ok"}


@pytest.mark.parametrize("answer", [False, None, ConnectionError("refused")])
async def test_a_bus_that_does_not_answer_makes_any_role_unavailable(
    tmp_path: Path, answer: bool | Exception | None
) -> None:
    bus = PingBus(answer)
    deps = await make_deps(tmp_path, bus=bus)
    try:
        for role in ("worker", "web"):
            health = await healthy(deps, [role])
            assert health.status == "unavailable"
            assert health.checks["bus"] == "failed"
            assert health.error == "the message bus does not answer"
    finally:
        await deps.close()
    assert bus.pings == 2


async def test_a_hung_database_answers_timeout_within_the_limit(tmp_path: Path) -> None:
    jobs = StuckJobs()
    deps = await make_deps(tmp_path, jobs=jobs, storage=BrokenStorage())
    try:
        health = await healthy(deps, ["publisher"], within=0.05)
        # the worker does not use the database nor the storage: it stays healthy
        worker = await healthy(deps, ["worker"], within=0.05)
    finally:
        await deps.close()
    assert jobs.asked == 1
    assert health.status == "unavailable"
    assert health.checks == {"bus": "ok", "database": "timeout", "storage": "failed"}
    assert worker.status == "ok"


async def _asgi_get(app: object, method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path)


async def test_the_back_end_app_answers_only_get_health_and_metrics(deps: Deps) -> None:
    app = health_app(deps, ["worker"])
    ok = await _asgi_get(app, "GET", "/health")
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "roles": ["worker"], "checks": {"bus": "ok"}}
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        answer = await _asgi_get(app, method, "/health")
        assert answer.status_code == 405, method
        assert answer.headers["allow"] == "GET"
    for path in ("/", "/healthz", "/health/x", "/api/jobs"):
        assert (await _asgi_get(app, "GET", path)).status_code == 404, path
    scraped = await _asgi_get(app, "GET", "/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert "mailvet_rows_total" in scraped.text


async def test_the_back_end_app_answers_503_when_the_bus_is_down(tmp_path: Path) -> None:
    deps = await make_deps(tmp_path, bus=PingBus(False))
    try:
        answer = await _asgi_get(health_app(deps, ["worker"]), "GET", "/health")
    finally:
        await deps.close()
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"bus": "failed"}


async def test_the_public_web_app_gives_the_status_alone_and_no_metrics(tmp_path: Path) -> None:
    deps = await make_deps(tmp_path, storage=BrokenStorage())
    try:
        app = create_app(deps, roles=["web", "worker"])
        answer = await _asgi_get(app, "GET", "/health")
        refused = await _asgi_get(app, "POST", "/health")
        scraped = await _asgi_get(app, "GET", "/metrics")
        detail = await _asgi_get(health_app(deps, ["web", "worker"]), "GET", "/health")
    finally:
        await deps.close()
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable"}  # which port failed: not for the internet
    assert refused.status_code == 405
    assert scraped.status_code == 404
    # the same healthy() answer, in full, on the health server
    assert detail.status_code == 503
    assert detail.json() == {
        "status": "unavailable",
        "roles": ["web", "worker"],
        "checks": {"bus": "ok", "database": "ok", "storage": "failed"},
        "error": "the object storage does not answer",
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_back_end_role_serves_health_with_uvicorn_on_the_health_host(
    tmp_path: Path,
) -> None:
    port = _free_port()
    deps = await make_deps(tmp_path, {"MAILVET_HEALTH_PORT": str(port)})
    assert deps.settings.health_host == "127.0.0.1"  # the default: not every interface
    (server,) = serve_module.http_servers(deps, deps.settings, ["worker"])
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    await server.startup()  # what server.serve() does first: listening once it returns
    try:
        (bound,) = [s.getsockname() for srv in server.servers for s in srv.sockets]
        assert bound == ("127.0.0.1", port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ok = await client.get("/health")
            wrong = await client.post("/health", content=b"x")
            missing = await client.get("/anything")
    finally:
        await server.shutdown()
        await deps.close()
    assert ok.status_code == 200 and json.loads(ok.content)["status"] == "ok"
    assert wrong.status_code == 405
    assert missing.status_code == 404


def test_every_role_serves_health_and_metrics_on_127_0_0_1_9464_by_default(tmp_path: Path) -> None:
    settings = load_settings({"MAILVET_DATA_DIR": str(tmp_path / "data")})
    assert (settings.health_host, settings.health_port) == ("127.0.0.1", 9464)
    for roles in (["worker"], ["intake"], ["web"], list(serve_module.ALL_ROLES)):
        servers = serve_module.http_servers(None, settings, roles)  # type: ignore[arg-type]  # built lazily
        addresses = [(s.config.host, s.config.port) for s in servers]
        assert ("127.0.0.1", 9464) in addresses, roles
    off = load_settings({"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_HEALTH_PORT": "0"})
    assert serve_module.http_servers(None, off, ["worker"]) == []  # type: ignore[arg-type]


def test_a_taken_health_port_is_one_error_line_naming_the_variable(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mailvet.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "MAILVET_DATA_DIR": str(tmp_path / "data"),
            "MAILVET_HEALTH_PORT": str(port),
            "MAILVET_WEB_PORT": "0",
        }
        result = CliRunner().invoke(app, ["run", "all"], env=env)
    assert result.exit_code == 2
    (line,) = [x for x in result.output.splitlines() if x.strip()]
    assert line.startswith(f"mailvet: error: MAILVET_HEALTH_PORT={port}: cannot listen on ")
    assert "or 0 to serve no /health" in line


def test_validate_never_serves(tmp_path: Path) -> None:
    from tests.unit.test_startup import run_fresh

    source = tmp_path / "list.csv"
    source.write_text("email\nann@example.com\n")
    env = {"MAILVET_DATA_DIR": str(tmp_path / "data"), "MAILVET_CHECKS": "syntax"}
    code, modules, _ = run_fresh(["validate", str(source), "-o", str(tmp_path / "out.csv")], env)
    assert code == 0
    assert not {"uvicorn", "mailvet.serve", "mailvet.health"} & modules


def test_run_all_serves_metrics_on_the_health_port_only(tmp_path: Path) -> None:
    """`mailvet run all` (embedded bus): /health and /metrics on MAILVET_HEALTH_PORT, a bare
    /health and no /metrics on the public web port, which serves the SaaS's pages."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    health_port, web_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVET_")}
    env.update(
        MAILVET_DATA_DIR=str(tmp_path / "data"),
        MAILVET_HEALTH_PORT=str(health_port),
        MAILVET_WEB_PORT=str(web_port),
        MAILVET_LOG_JSON="true",
    )
    mailvet = str(Path(sys.executable).with_name("mailvet"))
    proc = subprocess.Popen(
        [mailvet, "run", "all"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )

    def get(port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # both ports listen before this line (bound at the start)
            if b"service_started" in line:
                break
        health, scraped = get(health_port, "/health"), get(health_port, "/metrics")
        public, public_metrics = get(web_port, "/health"), get(web_port, "/metrics")
        login = get(web_port, "/login")  # and the SaaS itself: run all includes the web role
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert health[0] == 200 and json.loads(health[1])["roles"] == list(serve_module.ALL_ROLES)
    assert scraped[0] == 200 and "mailvet_rows_total" in scraped[1]
    assert public == (200, '{"status":"ok"}')
    assert public_metrics[0] == 404
    assert login[0] == 200 and 'name="password"' in login[1] and "_csrf_token" in login[1]
