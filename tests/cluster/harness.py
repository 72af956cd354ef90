"""Run mailvet's roles as separate processes on RabbitMQ + PostgreSQL + S3 (moto), for tests
and benchmarks: start, kill -9, restart any of them, and watch a job through the database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from mailvet.adapters.db.migrate import upgrade
from tests.pg import scratch_database, url_of

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
AMQP_URL = os.environ.get("MAILVET_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MAILVET = str(Path(sys.executable).with_name("mailvet"))
BACK_END = ("intake", "publisher", "orchestrator", "worker", "resultgen")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, migrated PostgreSQL database; yields its SQLAlchemy URL, drops it afterwards."""
    with scratch_database("mailvet_cluster") as name:
        url = url_of(name)
        upgrade(url)
        yield url


def delete_rabbit_objects(prefix: str) -> None:
    """Remove every queue named `<prefix>.*` and the dead-letter exchange."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True, timeout=60
    )
    names = [n for n in listed.stdout.split() if n.startswith(f"{prefix}.")]

    async def delete() -> None:
        import aio_pika

        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            for name in names:
                await channel.queue_delete(name)
            await channel.exchange_delete(f"{prefix}.dlx")

    asyncio.run(delete())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    database_url: str
    s3_endpoint: str
    extra_env: Mapping[str, str] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"mvcl{uuid.uuid4().hex[:8]}")
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _db: psycopg.Connection[tuple[object, ...]] | None = None
    web_port: int = field(default_factory=lambda: free_port())

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("MAILVET_")}
        return {
            **base,
            "MAILVET_BUS": "rabbit",
            "MAILVET_RABBITMQ_URL": AMQP_URL,
            "MAILVET_RABBITMQ_PREFIX": self.prefix,
            "MAILVET_STORAGE": "s3",
            "MAILVET_S3_ENDPOINT": self.s3_endpoint,
            "MAILVET_S3_ACCESS_KEY": "testing",
            "MAILVET_S3_SECRET_KEY": "testing",
            "MAILVET_S3_BUCKET": f"{self.prefix}-bucket",
            "MAILVET_DATABASE_URL": self.database_url,
            "MAILVET_DATA_DIR": str(self.root / "data"),
            "MAILVET_LOG_LEVEL": "info",
            # outside the embedded default the web role refuses to start without one
            "MAILVET_SECRET_KEY": "cluster-test-secret-key-of-32-characters-or-more",
            "PYTHONUNBUFFERED": "1",
            "MAILVET_WEB_PORT": str(self.web_port),
            # the roles share this host: no health server unless a test gives a role a port
            "MAILVET_HEALTH_PORT": "0",
            **self.extra_env,
        }

    def start(self, role: str, name: str | None = None, **env: str) -> None:
        name = name or role
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [MAILVET, "run", role],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def start_all(self, roles: tuple[str, ...] = BACK_END) -> None:
        for role in roles:
            self.start(role)

    def start_web_replicas(self, count: int = 2, timeout: float = 60.0) -> list[str]:
        """`count` more `mailvet run web` processes (web1, web2, ...), each on a port of its
        own; their base URLs once each one answers /health."""
        ports = [free_port() for _ in range(count)]
        for number, port in enumerate(ports, 1):
            # each replica is reached at its own address here (behind one load balancer
            # they would share one): the links it makes, like S3's way back, lead to it
            self.start(
                "web",
                f"web{number}",
                MAILVET_WEB_PORT=str(port),
                MAILVET_PUBLIC_URL=f"http://127.0.0.1:{port}",
            )
        for port in ports:
            status, body = self.http_get("/health", timeout=timeout, port=port)
            if status != 200:
                raise AssertionError(f"web on port {port}: {status} {body!r}")
        return [f"http://127.0.0.1:{port}" for port in ports]

    def kill(self, name: str) -> None:
        """kill -9: no chance to finish or hand anything back."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        if self._db is not None:
            self._db.close()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.procs.pop(name)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_log(self, name: str, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log(name):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} never logged {text!r}")
            time.sleep(0.005)

    def cli(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`mailvet ARGS` with this cluster's settings; `input`: its stdin (a password)."""
        done = subprocess.run(
            [MAILVET, *args], env=self.env, input=input, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(f"mailvet {' '.join(args)}: {done.returncode}\n{done.stderr}")
        return done

    def submit(self, path: Path, *extra: str) -> str:
        return self.cli("submit", str(path), *extra).stdout.strip()

    def job(self, job_id: str) -> dict[str, object]:
        """The job's row, read straight from the database (tolerates a database restart)."""
        dsn = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        for _ in range(300):
            try:
                if self._db is None or self._db.closed:
                    self._db = psycopg.connect(dsn, autocommit=True)
                row = self._db.execute(
                    "SELECT status, rows_done, rows_total, error FROM jobs WHERE id = %s", (job_id,)
                ).fetchone()
                break
            except psycopg.OperationalError:
                if self._db is not None:
                    self._db.close()
                self._db = None
                time.sleep(0.2)
        else:
            raise AssertionError("database unreachable")
        if row is None:
            return {"status": "missing", "rows_done": 0, "rows_total": 0, "error": ""}
        return dict(zip(("status", "rows_done", "rows_total", "error"), row, strict=True))

    def wait_for(self, job_id: str, predicate: object, timeout: float = 120.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if predicate(job):  # type: ignore[operator]
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} stuck: {job}")
            time.sleep(0.005)

    def wait_done(self, job_id: str, timeout: float = 180.0) -> dict[str, object]:
        return self.wait_for(
            job_id,
            lambda j: j["status"] == "file_completed" or str(j["status"]).startswith("error_"),
            timeout,
        )

    def http_get(
        self, path: str, timeout: float = 30.0, port: int | None = None
    ) -> tuple[int, bytes]:
        """GET from the web role (on `port`, default web_port), waiting for it to listen."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port or self.web_port}{path}", timeout=5
                ) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def fetch(self, job_id: str, out: Path) -> bytes:
        self.cli("fetch", job_id, "-o", str(out))
        return out.read_bytes()
