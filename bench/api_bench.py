"""The public API under load (issue 9 §4): syntax-only `POST /api/v1/validate` with key
authentication and a credit debit per call, one `mailvet run web` process on PostgreSQL.

    .venv/bin/python bench/api_bench.py [--seconds 30] [--health-seconds 10]
        [--connections 32] [--database-url URL] [--env MAILVET_X=VALUE ...]

What it does, in order:
1. a scratch PostgreSQL database (`mailvet_apibench_<hex>` on 127.0.0.1:5432 unless
   --database-url names another empty one), migrated by `mailvet db upgrade`; one confirmed
   account with CREDITS credits (`mailvet users create`) and one key of scope `validate`
   (`mailvet apikeys create`);
2. one `mailvet run web` process (the real server: uvicorn, the SaaS app, its middleware
   and logs as `mailvet run web` has them, MAILVET_API_RATE_LIMIT raised so that the limit
   is not what is measured);
3. `--connections` keep-alive HTTP/1.1 connections from this process (a small raw-asyncio
   client, cheaper than httpx so the client takes little of the two cores), each sending
   the next request when the last answer is in: first `GET /health` for --health-seconds
   (the bare server's floor on the same server, same run), then `POST /api/v1/validate`
   `{"email": <a new address each time>, "checks": "syntax"}` for --seconds;
4. the balance afterwards (`mailvet users balance`): credits used must equal the number of
   200 answers, exactly.

Printed: requests/s, p50, p90, p99 and the worst latency of each phase, the answers by
status, the server's CPU seconds per request, the credits, and the `targets:` block
(≥ 1,500 requests/s sustained, p99 ≤ 50 ms, credits used = successful responses); exit 1
on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import clean_env, mailvet_command, report_targets

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
CREDITS = 5_000_000
EMAIL = "bench@example.com"
TARGET_RPS = 1500.0
TARGET_P99_MS = 50.0


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.rps:>8,.0f} req/s  p50 {self.percentile(50):6.1f} ms"
            f"  p90 {self.percentile(90):6.1f}  p99 {self.percentile(99):6.1f}"
            f"  max {max(self.latencies, default=0) * 1000:7.1f}"
            f"  answers {dict(sorted(self.statuses.items()))}  errors {self.errors}"
        )


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    import psycopg

    name = f"mailvet_apibench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def mailvet(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [*mailvet_command(), *args], env=env, input=stdin, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"mailvet {args[0]} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def wait_for_health(port: int, server: subprocess.Popen[bytes], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"mailvet run web exited with {server.returncode}: see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)  # a bench polling a process it started; not a test
    raise SystemExit("mailvet run web did not answer /health in time")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def drive(
    phase: Phase,
    port: int,
    make_request: Callable[[int], bytes],
    connections: int,
    seconds: float,
) -> None:
    counter = iter(range(10**12))
    stop_at = 0.0

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                request = make_request(next(counter))
                began = time.perf_counter()
                writer.write(request)
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    phase.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                phase.latencies.append(time.perf_counter() - began)
                phase.statuses[status] += 1
        finally:
            writer.close()

    began = time.perf_counter()
    stop_at = began + seconds
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    phase.seconds = time.perf_counter() - began


def health_request(_: int) -> bytes:
    return b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def validate_request(key: str) -> Callable[[int], bytes]:
    prefix = f"POST /api/v1/validate HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {key}\r\n"
    prefix += "content-type: application/json\r\n"

    def make(i: int) -> bytes:
        body = json.dumps({"email": f"user{i}@example{i % 97}.com", "checks": "syntax"})
        return (prefix + f"content-length: {len(body)}\r\n\r\n{body}").encode()

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--health-seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--env", action="append", default=[], metavar="MAILVET_X=VALUE")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="mailvet_apibench_") as tmp,
        scratch_database(args.database_url) as url,
    ):
        port = _free_port()
        env = clean_env(
            {
                "MAILVET_DATA_DIR": tmp,
                "MAILVET_DATABASE_URL": url,
                "MAILVET_SECRET_KEY": secrets.token_urlsafe(32),
                "MAILVET_WEB_PORT": str(port),
                "MAILVET_HEALTH_PORT": "0",
                "MAILVET_MAILER": "log",
                "MAILVET_BUS": "rabbit",  # `run web` alone: the roles' bus (not used here)
                "MAILVET_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/",
                "MAILVET_API_RATE_LIMIT": "1000000/second",
            }
        )
        for item in args.env:
            name, _, value = item.partition("=")
            env[name] = value
        mailvet(["db", "upgrade"], env)
        mailvet(
            ["users", "create", EMAIL, "--confirmed", "--credits", str(CREDITS)],
            env,
            stdin=secrets.token_urlsafe(16) + "\n",
        )
        key = mailvet(["apikeys", "create", EMAIL, "--label", "bench", "--scope", "validate"], env)
        log_path = Path(tmp) / "web.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [*mailvet_command(), "run", "web"], env=env, stdout=log, stderr=log, cwd=tmp
            )
        try:
            try:
                wait_for_health(port, server)
            except SystemExit:
                print(log_path.read_text()[-3000:], file=sys.stderr)
                raise
            health = Phase("GET /health (bare)")
            asyncio.run(drive(health, port, health_request, args.connections, args.health_seconds))
            cpu_before = cpu_seconds(server.pid)
            validate = Phase("POST /api/v1/validate")
            asyncio.run(
                drive(validate, port, validate_request(key), args.connections, args.seconds)
            )
            cpu_used = cpu_seconds(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(timeout=30)
        balance = int(mailvet(["users", "balance", EMAIL], env))

    ok = validate.statuses.get(200, 0)
    used = CREDITS - balance
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"server       : one `mailvet run web` on PostgreSQL, {args.connections} keep-alive"
        " connections, closed loop"
    )
    print(health.line())
    print(validate.line())
    print(
        f"server CPU   : {cpu_used / max(1, len(validate.latencies)) * 1e6:.0f} us a validate"
        f" request ({cpu_used:.1f} s over {validate.seconds:.1f} s)"
    )
    print(
        f"credits      : {CREDITS:,} before, {balance:,} after: {used:,} used for {ok:,}"
        " answers 200"
    )
    print(f"load after   : {load} on {os.cpu_count()} CPUs")
    p99 = validate.percentile(99)
    sys.exit(
        report_targets(
            [
                (
                    "throughput",
                    validate.rps >= TARGET_RPS,
                    f"{validate.rps:,.0f} requests/s (target >= {TARGET_RPS:,.0f})",
                ),
                ("p99", p99 <= TARGET_P99_MS, f"{p99:.1f} ms (target <= {TARGET_P99_MS:.0f})"),
                (
                    "exact credits",
                    used == ok and validate.errors == 0,
                    f"{used:,} used, {ok:,} answers 200, {validate.errors} broken connections",
                ),
            ]
        )
    )


if __name__ == "__main__":
    main()
