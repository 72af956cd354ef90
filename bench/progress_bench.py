"""Live progress: the delay from a progress write in the database to a Server-Sent Events
client seeing it (issue 8 §3 and §7: within a second, also across web replicas).

    python bench/progress_bench.py [--rows 3000] [--chunk-size 100] [--latency 0.1]
                                   [--skip-embedded]

1. Distributed: the five back-end roles and two `mailvet run web` processes as separate
   processes on PostgreSQL + RabbitMQ + moto S3 (tests/cluster/harness.py). An account
   made with `mailvet users create` signs in on web 1, uploads a list of `--rows` addresses
   and starts it on web 2; the job page's event stream is read on BOTH web processes at
   once while the workers probe a local mail server answering every command `--latency`
   seconds late, recording each chunk (`--chunk-size` rows) as they go.
2. Embedded default: the same on `mailvet run all` (one process, a SQLite file, local
   storage, the in-process bus), one stream.

How a write is timed: triggers on `jobs` (added to the bench's own database) log every
insert and every update that changes `rows_done`, `rows_total` or `status`, with the time
it runs (`clock_timestamp()` in PostgreSQL, `julianday('now')` in SQLite, milliseconds):
the worker's chunk record (record_chunk's last statement before its commit) or a status
change, on the host's clock, which this script reads too. Each `progress` event is
matched to the first logged state it shows (rows done, rows total, status label); its
delay is its arrival time minus that write's time. An event showing a state written
before its stream was requested (the state when the page opens) is left out; one written
after the request but before the server subscribed counts, set-up included.
Printed per stream: events, median and max delay. Targets: the median and the max of
every stream at most 1 s.
Needs PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) running.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from _common import clean_env, report_targets  # noqa: E402

from mailvet.domain.job import JobStatus  # noqa: E402
from mailvet.web.jobs.labels import status_label  # noqa: E402
from tests.cluster.harness import (  # noqa: E402
    BACK_END,
    MAILVET,
    Cluster,
    delete_rabbit_objects,
    free_port,
    fresh_database,
)
from tests.cluster.web_stack import (  # noqa: E402
    COLUMN_INPUT,
    CSRF_INPUT,
    ROWS_DONE,
    STATUS_LABEL,
)
from tests.mailworld.smtp_server import SmtpBehaviour  # noqa: E402
from tests.mailworld.world import MailWorld  # noqa: E402
from tests.s3server import MotoS3  # noqa: E402
from tests.sse import SseParser  # noqa: E402

PASSWORD = "correct horse battery staple"  # noqa: S105  (the bench account's, in its own database)
EMAIL = "bench.progress@example.com"
DOMAIN = "progress-mail.com"
MX_HOST = "127.0.0.71"
TARGET_SECONDS = 1.0
ROWS_TOTAL = re.compile(r'id="rows-total">(\d+)<')

PG_LOG = """
CREATE TABLE IF NOT EXISTS bench_progress (
    job_id text NOT NULL, rows_done integer NOT NULL, rows_total integer NOT NULL,
    status text NOT NULL, at double precision NOT NULL);
CREATE OR REPLACE FUNCTION bench_progress_log() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.rows_done IS DISTINCT FROM OLD.rows_done
        OR NEW.rows_total IS DISTINCT FROM OLD.rows_total OR NEW.status IS DISTINCT FROM OLD.status
    THEN
        INSERT INTO bench_progress VALUES (
            NEW.id, NEW.rows_done, NEW.rows_total, NEW.status,
            extract(epoch FROM clock_timestamp()));
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS bench_progress ON jobs;
CREATE TRIGGER bench_progress AFTER INSERT OR UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION bench_progress_log();
"""
SQLITE_LOG = """
CREATE TABLE IF NOT EXISTS bench_progress (
    job_id TEXT NOT NULL, rows_done INTEGER NOT NULL, rows_total INTEGER NOT NULL,
    status TEXT NOT NULL, at REAL NOT NULL);
CREATE TRIGGER IF NOT EXISTS bench_progress_new AFTER INSERT ON jobs
BEGIN
    INSERT INTO bench_progress
    VALUES (NEW.id, NEW.rows_done, NEW.rows_total, NEW.status,
            (julianday('now') - 2440587.5) * 86400.0);
END;
CREATE TRIGGER IF NOT EXISTS bench_progress AFTER UPDATE ON jobs
WHEN NEW.rows_done IS NOT OLD.rows_done OR NEW.rows_total IS NOT OLD.rows_total
    OR NEW.status IS NOT OLD.status
BEGIN
    INSERT INTO bench_progress
    VALUES (NEW.id, NEW.rows_done, NEW.rows_total, NEW.status,
            (julianday('now') - 2440587.5) * 86400.0);
END;
"""
READ_LOG = (
    "SELECT rows_done, rows_total, status, at FROM bench_progress WHERE job_id = {} ORDER BY at"
)


@dataclass
class Seen:
    """One `progress` event of a stream: when it arrived and what it showed."""

    at: float
    rows_done: int
    rows_total: int
    label: str


@dataclass
class Stream:
    name: str
    opened: float = 0.0
    seen: list[Seen] = field(default_factory=list)


@dataclass
class Figures:
    name: str
    delays: list[float]
    left_out: int  # the opening state, written before the stream opened
    unmatched: int  # events showing a state no logged write had (should be 0)

    @property
    def median(self) -> float:
        return statistics.median(self.delays) if self.delays else float("nan")

    @property
    def worst(self) -> float:
        return max(self.delays) if self.delays else float("nan")

    def line(self) -> str:
        return (
            f"  {self.name:<34} {len(self.delays):>3} events  median {self.median * 1000:6.0f} ms"
            f"  max {self.worst * 1000:6.0f} ms  (opening state left out: {self.left_out},"
            f" unmatched: {self.unmatched})"
        )


def a_list(path: Path, rows: int) -> Path:
    path.write_text("name,email\n" + "".join(f"P{i},user{i}@{DOMAIN}\n" for i in range(rows)))
    return path


def mail_world(rows: int, latency: float) -> MailWorld:
    world = MailWorld()
    world.zone.add(DOMAIN, mx=[(10, f"mx.{DOMAIN}")])
    world.zone.add(f"mx.{DOMAIN}", a=[MX_HOST])
    mailboxes = {f"user{i}": "250 2.1.5 OK" for i in range(0, rows, 2)}
    world.add_smtp(
        MX_HOST,
        SmtpBehaviour(
            mailboxes={"postmaster": "250 2.1.5 OK", **mailboxes},
            latency=latency,
            max_connections=20,
        ),
    )
    return world


def users_create(env: dict[str, str]) -> None:
    done = subprocess.run(
        [MAILVET, "users", "create", EMAIL, "--confirmed", "--credits", "1000000"],
        input=PASSWORD,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"mailvet users create: {done.stderr}")


async def _token(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    found = CSRF_INPUT.search(page.text)
    if page.status_code != 200 or found is None:
        raise SystemExit(f"GET {client.base_url}{path}: {page.status_code}")
    return found.group(1)


async def _read(client: httpx.AsyncClient, job_path: str, stream: Stream) -> None:
    stream.opened = time.time()  # before the request: a write after it is never left out
    async with client.stream("GET", f"{job_path}/events") as answer:
        if answer.status_code != 200:
            raise SystemExit(f"{stream.name}: events answered {answer.status_code}")
        parser = SseParser()
        async for line in answer.aiter_lines():
            got = parser.feed(line)
            if got is None:
                continue
            arrived = time.time()
            event, text = got
            if event == "done":
                return
            done, total = ROWS_DONE.search(text), ROWS_TOTAL.search(text)
            label = STATUS_LABEL.search(text)
            if event == "progress" and done and total and label:
                shown = (int(done.group(1)), int(total.group(1)), label.group(1))
                stream.seen.append(Seen(arrived, *shown))


async def watch_a_job(urls: list[str], name: str, content: bytes) -> tuple[str, list[Stream]]:
    """Sign in on the first web process, upload and start on the last one, read the job's
    event stream on every one of them at once; the job id and the streams."""
    clients = [
        httpx.AsyncClient(base_url=url, headers={"accept": "text/html"}, timeout=600)
        for url in urls
    ]
    try:
        first, last = clients[0], clients[-1]
        token = await _token(first, "/login")
        signed = await first.post(
            "/login", data={"_csrf_token": token, "email": EMAIL, "password": PASSWORD}
        )
        if signed.status_code != 303:
            raise SystemExit(f"sign-in: {signed.status_code}")
        for client in clients[1:]:
            client.cookies = first.cookies  # one session for every process
        token = await _token(last, "/app/jobs/new")
        uploaded = await last.post(
            "/app/jobs/new",
            data={"_csrf_token": token},
            files={"file": (name, content, "text/csv")},
        )
        if uploaded.status_code != 303:
            raise SystemExit(f"upload: {uploaded.status_code} {uploaded.text[:2000]}")
        preview = uploaded.headers["location"]
        column = COLUMN_INPUT.search((await last.get(preview)).text)
        if column is None:
            raise SystemExit("no email column in the preview")
        started = await last.post(
            f"{preview}/start", data={"_csrf_token": token, "email_column": column.group(1)}
        )
        if started.status_code != 303:
            raise SystemExit(f"start: {started.status_code} {started.text[:2000]}")
        job_path = started.headers["location"]
        streams = [Stream(f"web {n + 1} ({url})") for n, url in enumerate(urls)]
        await asyncio.gather(
            *(_read(client, job_path, s) for client, s in zip(clients, streams, strict=True))
        )
        return job_path.rsplit("/", 1)[1], streams
    finally:
        for client in clients:
            await client.aclose()


def figures_of(stream: Stream, writes: list[tuple[int, int, str, float]], label: str) -> Figures:
    delays: list[float] = []
    left_out = unmatched = 0
    for seen in stream.seen:
        write = next(
            (
                at
                for done, total, status, at in writes
                if (done, total) == (seen.rows_done, seen.rows_total)
                and status_label(JobStatus(status)) == seen.label
            ),
            None,
        )
        if write is None:
            unmatched += 1
        elif write < stream.opened:
            left_out += 1
        else:
            delays.append(seen.at - write)
    return Figures(f"{label}, {stream.name.split(' (')[0]}", delays, left_out, unmatched)


def distributed(args: argparse.Namespace, source: Path, root: Path) -> list[Figures]:
    world = mail_world(args.rows, args.latency)
    world.start()
    s3 = MotoS3().start()
    try:
        with fresh_database() as database_url:
            dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(dsn, autocommit=True) as db:
                db.execute(PG_LOG)
            env = {
                **world.env(),
                "MAILVET_CHUNK_SIZE": str(args.chunk_size),
                "MAILVET_SECRET_KEY": secrets.token_urlsafe(32),
                "MAILVET_WEB_RATE_LIMIT": "100000/minute",
                "MAILVET_MAILER": "log",
            }
            cluster = Cluster(root / "distributed", database_url, s3.endpoint, env)
            cluster.root.mkdir()
            try:
                cluster.start_all(BACK_END)
                users_create(cluster.env)
                urls = cluster.start_web_replicas(2)
                for name in BACK_END:
                    cluster.wait_for_log(name, "service_started")
                started = time.monotonic()
                job_id, streams = _watched(urls, source, [cluster.root / "web2.log"])
                wall = time.monotonic() - started
                with psycopg.connect(dsn) as db:
                    writes = db.execute(READ_LOG.format("%s"), (job_id,)).fetchall()
            finally:
                cluster.stop()
                delete_rabbit_objects(cluster.prefix)
    finally:
        s3.stop()
        world.stop()
    print(f"distributed: job {job_id}, {len(writes)} logged writes, {wall:.1f} s to completion")
    return [figures_of(stream, writes, "distributed") for stream in streams]


def embedded(args: argparse.Namespace, source: Path, root: Path) -> list[Figures]:
    world = mail_world(args.rows, args.latency)
    world.start()
    data = root / "embedded"
    port = free_port()
    env = clean_env(
        {
            **world.env(),
            "MAILVET_DATA_DIR": str(data),
            "MAILVET_WEB_PORT": str(port),
            "MAILVET_HEALTH_PORT": "0",
            "MAILVET_CHUNK_SIZE": str(args.chunk_size),
            "MAILVET_WEB_RATE_LIMIT": "100000/minute",
            "MAILVET_MAILER": "log",
            "MAILVET_LOG_LEVEL": "info",
        }
    )
    try:
        subprocess.run([MAILVET, "db", "upgrade"], env=env, check=True, capture_output=True)
        database = data / "mailvet.db"
        with sqlite3.connect(database) as db:
            db.executescript(SQLITE_LOG)
        db.close()
        users_create(env)
        log = (root / "embedded.log").open("ab")
        process = subprocess.Popen(
            [MAILVET, "run", "all"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url)
            started = time.monotonic()
            job_id, streams = _watched([url], source, [root / "embedded.log"])
            wall = time.monotonic() - started
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        with sqlite3.connect(database) as db:
            writes = db.execute(READ_LOG.format("?"), (job_id,)).fetchall()
        db.close()
    finally:
        world.stop()
    print(f"embedded: job {job_id}, {len(writes)} logged writes, {wall:.1f} s to completion")
    return [figures_of(stream, writes, "embedded (mailvet run all)") for stream in streams]


def _watched(urls: list[str], source: Path, logs: list[Path]) -> tuple[str, list[Stream]]:
    """watch_a_job, with the end of the web logs when it fails (they go with the folder)."""
    try:
        return asyncio.run(watch_a_job(urls, source.name, source.read_bytes()))
    except BaseException:
        for log in logs:
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            print(f"--- {log.name}, last lines:", *lines[-30:], sep="\n", file=sys.stderr)
        raise


def _wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} never answered /health")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_000)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1, help="mail server, s a reply")
    parser.add_argument("--skip-embedded", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mvprogress-") as folder:
        root = Path(folder)
        source = a_list(root / "progress.csv", args.rows)
        figures = distributed(args, source, root)
        if not args.skip_embedded:
            figures += embedded(args, source, root)
    print(f"progress write -> SSE client ({args.rows:,} rows, chunks of {args.chunk_size}):")
    for figure in figures:
        print(figure.line())
    checks = []
    for figure in figures:
        ok = bool(figure.delays) and figure.worst <= TARGET_SECONDS and figure.unmatched == 0
        detail = f"median {figure.median:.3f} s, max {figure.worst:.3f} s (target <= 1 s)"
        checks.append((figure.name, ok, detail))
    return report_targets(checks)


if __name__ == "__main__":
    sys.exit(main())
