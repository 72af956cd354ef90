"""The public API against its own OpenAPI schema (issue 9: "schemathesis run against /schema
for the /api/v1 routes, with no 5xx"): one `mailvet run all` process on the embedded default
(the SaaS as it ships), the DNS and SMTP of a local mail world (no address a fuzzer makes up
reaches the internet), an account with credits and a key of every scope made by the CLI;
then schemathesis's own command (`st run`) reads /schema/openapi.json from that server and
sends what it generates, valid and invalid, to every /api operation, with the key and
without it. Its check `not_a_server_error` fails the run on any 5xx answer.

The examples are bounded (`--max-examples`, a fixed `--seed`) so the run is repeatable and
takes well under a minute here; the server's log is printed when the run fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mailvet.cli import app
from tests.mailcatcher import free_port
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration

DOMAIN = "fuzz-mail.test"
MX_HOST = "127.0.0.77"
BIN = Path(sys.executable).parent


@dataclass
class Server:
    url: str
    key: str
    log: Path


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = CliRunner().invoke(app, list(args), input=stdin, env=env)
    assert done.exit_code == 0, done.output
    return done.stdout.strip()


def _wait_for_health(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-4000:]
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)  # polling a server process that is starting
    raise AssertionError("mailvet run all did not answer /health:\n" + log.read_text()[-4000:])


@contextmanager
def api_server(root: Path, world: MailWorld, *, credits: int) -> Iterator[Server]:
    """`mailvet run all` on the embedded default under `root`, its DNS and SMTP `world`'s
    (started and stopped here), with an account holding `credits` and a key of every scope
    made by the CLI; stopped with SIGTERM on leaving. Also used by test_api_doc_client.py."""
    world.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVET_")}
    env.update(world.env())
    env.update(
        MAILVET_DATA_DIR=str(root / "data"),
        MAILVET_WEB_PORT=str(port),
        MAILVET_HEALTH_PORT="0",
        MAILVET_MAILER="log",
        MAILVET_LOG_JSON="true",
        MAILVET_WEBHOOK_ALLOW_PRIVATE="false",
        MAILVET_API_RATE_LIMIT="100000/second",  # the fuzzer is not what the limit is for
        MAILVET_DNS_TIMEOUT="1",
    )
    try:
        email = "fuzz@example.com"
        _cli(
            env, "users", "create", email, "--confirmed", "--credits", str(credits), stdin="x" * 12
        )
        key = _cli(env, "apikeys", "create", email, "--label", "fuzz")
        log = root / "server.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(BIN / "mailvet"), "run", "all"], env=env, stdout=out, stderr=out, cwd=root
            )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_for_health(url, proc, log)
            yield Server(url=url, key=key, log=log)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        world.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    world = MailWorld()
    world.zone.add(DOMAIN, mx=[(10, f"mx.{DOMAIN}")])
    world.zone.add(f"mx.{DOMAIN}", a=[MX_HOST])
    world.add_smtp(MX_HOST, SmtpBehaviour(mailboxes={"postmaster": "250 2.1.5 OK"}))
    with api_server(tmp_path_factory.mktemp("schemathesis"), world, credits=1_000_000) as made:
        yield made


def _finished_job(server: Server) -> str:
    """The id of a job of the account that has completed: a two-row list, syntax only."""
    headers = {"authorization": f"Bearer {server.key}"}
    listed = b"email\r\npostmaster@" + DOMAIN.encode() + b"\r\nnot an address\r\n"
    started = httpx.post(
        server.url + "/api/v1/jobs",
        headers=headers,
        files={"file": ("list.csv", listed, "text/csv")},
        data={"checks": "syntax"},
        timeout=30,
    )
    assert started.status_code == 201, started.text
    url = f"{server.url}/api/v1/jobs/{started.json()['id']}"
    deadline = time.monotonic() + 60
    while (job := httpx.get(url, headers=headers, timeout=10).json())["finished_at"] is None:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)  # nothing tells this process that the server's job has ended
    assert job["status"] == "file_completed", job
    return str(job["id"])


def _config(server: Server, root: Path) -> Path:
    """schemathesis.toml: the {job_id} routes get a completed job of the account (else
    every id they are sent is a 404, and their handlers past the lookup are never run);
    DELETE one of its own, so that the others' job is not deleted under them."""
    read, deleted = _finished_job(server), _finished_job(server)
    blocks = [
        f'[[operations]]\ninclude-name = "{method} {path}"\n'
        f'parameters = {{ "path.job_id" = "{job_id}" }}\n'
        for method, path, job_id in (
            ("GET", "/api/v1/jobs/{job_id}", read),
            ("GET", "/api/v1/jobs/{job_id}/results", read),
            ("DELETE", "/api/v1/jobs/{job_id}", deleted),
        )
    ]
    config = root / "schemathesis.toml"
    config.write_text("\n".join(blocks), encoding="utf-8")
    return config


def _schemathesis(
    server: Server, *extra: str, examples: int, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [
        str(BIN / "st"),
        *(["--config-file", str(config)] if config is not None else []),
        "run",
        f"{server.url}/schema/openapi.json",
        "--checks",
        "not_a_server_error",
        "--include-path-regex",
        "^/api/",
        "--max-examples",
        str(examples),
        "--seed",
        "20261201",
        "--request-timeout",
        "40",
        # one worker: st's threads build hypothesis's strategy reprs with ast.parse, whose
        # recursion count CPython 3.11.7 keeps per interpreter, shared by the threads: with
        # 2 workers about one run in eight failed on "SystemError: AST constructor recursion
        # depth mismatch" (cpython gh-106905), never on an answer of the server
        "--workers",
        "1",
        *extra,
    ]
    env = dict(os.environ, NO_COLOR="1", SCHEMATHESIS_HOOKS="")
    return subprocess.run(  # in the server's folder: st keeps its .schemathesis/ cache there
        command, capture_output=True, text=True, env=env, timeout=600, cwd=server.log.parent
    )


def _explain(server: Server, done: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in server.log.read_text().splitlines() if '"error"' in line]
    tail = "\n".join(errors[-20:])
    return f"{done.stdout[-6000:]}{done.stderr[-2000:]}\nserver errors:\n{tail}"


def _api_operations(server: Server) -> int:
    """How many operations the served schema has under /api (/api/v1 and the original's)."""
    schema = httpx.get(server.url + "/schema/openapi.json", timeout=10).json()
    return sum(
        1
        for path, item in schema["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    )


def _assert_every_operation_tested(server: Server, done: subprocess.CompletedProcess[str]) -> None:
    """The run selected and tested every /api operation of the schema (a wrong path, a
    filter or a schema schemathesis cannot read would pass with fewer, or none)."""
    total = _api_operations(server)
    assert total >= 10, total
    selected = re.search(r"Selected: (\d+)/\d+", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert selected is not None and tested is not None, done.stdout[-3000:]
    assert int(selected.group(1)) == int(tested.group(1)) == total, done.stdout[-3000:]


def test_the_schema_lists_the_api_routes(server: Server) -> None:
    schema = httpx.get(server.url + "/schema/openapi.json", timeout=10).text
    for path in ("/api/v1/validate", "/api/v1/validate/batch", "/api/v1/credits"):
        assert f'"{path}"' in schema


def test_no_generated_request_gets_a_server_error_with_a_key(
    server: Server, tmp_path: Path
) -> None:
    config = _config(server, tmp_path)
    done = _schemathesis(
        server, "-H", f"Authorization: Bearer {server.key}", examples=25, config=config
    )
    assert done.returncode == 0, _explain(server, done)
    _assert_every_operation_tested(server, done)
    # the {job_id} routes reached a job: none of them only ever answered 404
    assert "Missing test data" not in done.stdout, done.stdout[-3000:]


def test_no_generated_request_gets_a_server_error_without_a_key(server: Server) -> None:
    done = _schemathesis(server, examples=5)
    assert done.returncode == 0, _explain(server, done)
    _assert_every_operation_tested(server, done)
