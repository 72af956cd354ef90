"""Broker cuts with six roles on RabbitMQ: how soon each role is back once the broker answers.

    python bench/broker_cut_bench.py [--cuts 5] [--rows 20000] [--down 1.0]

The six roles run as separate processes (RabbitMQ + PostgreSQL + moto S3, the cluster test
harness), and reach RabbitMQ through a TCP proxy that can be cut (tests/cluster/
test_broker_cut.py's, so only this cluster loses its broker). A 20,000-row job goes through
a slow mail world; in the middle of it the proxy is cut, kept cut for `--down` seconds and
at least until every role has tried to reconnect twice, and restored. Per cut:

- reconnect: seconds from the restore to each role's `bus_reconnected` log line;
- progress: seconds from the restore until the job's rows_done moved again (read from the
  database every 5 ms).

Printed: each cut's figures, then the median over the cuts per role and for progress. The
issue's target: work resumes within 1 s of the broker answering. Needs PostgreSQL
(127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from tests.cluster.conftest import make_list, world_env  # noqa: E402
from tests.cluster.harness import BACK_END, Cluster, delete_rabbit_objects, fresh_database  # noqa: E402
from tests.cluster.test_broker_cut import ProxyThread  # noqa: E402
from tests.mailworld.smtp_server import SmtpBehaviour  # noqa: E402
from tests.mailworld.world import MailWorld  # noqa: E402
from tests.s3server import MotoS3  # noqa: E402

ROLES = (*BACK_END, "web")


def slow_world(rows: int) -> MailWorld:
    """tests/cluster/conftest.py's bulk-mail.com: 50 ms a reply, 12 connections."""
    world = MailWorld()
    world.zone.add("bulk-mail.com", mx=[(10, "mx.bulk-mail.com")])
    world.zone.add("mx.bulk-mail.com", a=["127.0.0.60"])
    mailboxes = {f"user{i}": "250 2.1.5 OK" for i in range(0, rows, 2)}
    world.add_smtp(
        "127.0.0.60",
        SmtpBehaviour(
            mailboxes={"postmaster": "250 2.1.5 OK", **mailboxes},
            latency=0.05,
            max_connections=12,
            max_recipients=20,
        ),
    )
    return world


def reconnected_at(cluster: Cluster, role: str, nth: int) -> datetime | None:
    """When the role logged its `nth` bus_reconnected (1-based), or None."""
    seen = 0
    for line in cluster.log(role).splitlines():
        if '"bus_reconnected"' not in line:
            continue
        seen += 1
        if seen == nth:
            stamp = json.loads(line)["timestamp"].replace("Z", "+00:00")
            return datetime.fromisoformat(stamp)
    return None


def rows_done(cluster: Cluster, job_id: str) -> int:
    return int(cluster.job(job_id)["rows_done"])  # type: ignore[call-overload]


def one_cut(
    cluster: Cluster, proxy: ProxyThread, job_id: str, nth: int, down: float
) -> tuple[dict[str, float], float] | None:
    """Cut, wait, restore; (reconnect seconds per role, progress seconds), or None when the
    job finished before it could be cut."""
    total = int(cluster.job(job_id)["rows_total"])  # type: ignore[call-overload]
    if rows_done(cluster, job_id) > total - 3_000:
        return None
    refused = proxy.proxy.refused
    proxy.cut()
    cut_at = time.monotonic()
    proxy.wait_refused(refused + 2 * len(ROLES))  # every role has tried, about twice
    time.sleep(max(0.0, down - (time.monotonic() - cut_at)))  # a broker away this long
    stalled = rows_done(cluster, job_id)
    proxy.restore()
    restored, restored_at = time.monotonic(), datetime.now(UTC)
    while rows_done(cluster, job_id) <= stalled and time.monotonic() - restored < 300:
        time.sleep(0.005)  # the database is seen only by asking
    progress = time.monotonic() - restored
    back: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while len(back) < len(ROLES) and time.monotonic() < deadline:
        for role in ROLES:
            at = reconnected_at(cluster, role, nth)
            if at is not None:
                back[role] = (at - restored_at).total_seconds()
        time.sleep(0.05)
    return back, progress


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--down", type=float, default=1.0, help="seconds the broker is away")
    parser.add_argument("--debug", nargs="*", default=[], help="roles that log at debug")
    args = parser.parse_args()

    world = slow_world(args.rows)
    world.start()
    s3 = MotoS3().start()
    figures: list[tuple[dict[str, float], float]] = []
    with fresh_database() as url:
        tmp = tempfile.mkdtemp(prefix="broker-cut-")
        print(f"logs in {tmp}", flush=True)
        root = Path(tmp)
        source = make_list(root / "list.csv", args.rows, seed=1)
        proxy = ProxyThread()
        cluster = Cluster(root, url, s3.endpoint, extra_env=world_env(world))
        cluster.extra_env = {**cluster.extra_env, "MAILVET_RABBITMQ_URL": proxy.url}
        try:
            for role in ROLES:
                cluster.start(
                    role, **({"MAILVET_LOG_LEVEL": "debug"} if role in args.debug else {})
                )
            while len(figures) < args.cuts:
                job_id = cluster.submit(source)
                cluster.wait_for(job_id, lambda j: int(j["rows_done"]) >= 1_000)  # type: ignore[call-overload]
                while len(figures) < args.cuts:
                    cut = one_cut(cluster, proxy, job_id, len(figures) + 1, args.down)
                    if cut is None:
                        break
                    figures.append(cut)
                    back, progress = cut
                    shown = ", ".join(
                        f"{role} {back.get(role, float('nan')):.3f}" for role in ROLES
                    )
                    print(
                        f"cut {len(figures)}: reconnected (s) {shown}; progress {progress:.3f} s",
                        flush=True,
                    )
                    time.sleep(1.0)  # let the roles settle before the next cut
                cluster.wait_done(job_id, timeout=600)
        finally:
            cluster.stop()
            delete_rabbit_objects(cluster.prefix)
            proxy.close()
            s3.stop()
            world.stop()

    print(f"\nmedian of {len(figures)} cuts (broker away {args.down:.1f} s):")
    for role in ROLES:
        values = [back[role] for back, _ in figures if role in back]
        print(f"  {role:<13} reconnected {statistics.median(values):.3f} s (max {max(values):.3f})")
    progress = [p for _, p in figures]
    print(f"  job progress  {statistics.median(progress):.3f} s (max {max(progress):.3f})")
    worst = max(max(back.values()) for back, _ in figures)
    ok = statistics.median(progress) < 1.0 and worst < 1.0
    print(f"target: resume within 1 s of the broker answering: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
