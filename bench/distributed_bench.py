"""Distributed mode figures: the six roles as separate processes on RabbitMQ + PostgreSQL +
moto S3, beside the in-process mode on the same file, in the same run.

    python bench/distributed_bench.py [--rows 200000] [--smtp-addresses 4000]

1. Syntax-only, N rows: wall time from `mailvet submit` to the job's result file being
   stored (status file_completed), rows/s; and `mailvet validate --checks syntax` (one
   process, embedded default) on the same file. Target: >= 20,000 rows/s distributed.
2. SMTP-bound: a mail server answering every command 40 ms late (up to 20 connections);
   the same list with one worker process, then with two. Target: two workers are faster.
Needs PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) running.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from _common import OUT_DIR, clean_env, mailvet_command, run_child  # noqa: E402
from gen_emails import generate_csv  # noqa: E402

from tests.cluster.harness import Cluster, delete_rabbit_objects, fresh_database  # noqa: E402
from tests.mailworld.smtp_server import SmtpBehaviour  # noqa: E402
from tests.mailworld.world import MailWorld  # noqa: E402
from tests.s3server import MotoS3  # noqa: E402

ROLES = ("web", "intake", "publisher", "orchestrator", "worker", "resultgen")


def timed_job(cluster: Cluster, path: Path, *args: str) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    job_id = cluster.submit(path, *args)
    job = cluster.wait_done(job_id, timeout=1800)
    return time.monotonic() - started, job


def syntax_figures(rows: int, database_url: str, s3: MotoS3, root: Path) -> tuple[float, float]:
    source, _ = generate_csv(OUT_DIR, rows)
    cluster = Cluster(root / "syntax", database_url, s3.endpoint)
    cluster.root.mkdir()
    try:
        cluster.start_all(ROLES)
        cluster.http_get("/health")  # everyone up (web answers last)
        time.sleep(2)
        wall, job = timed_job(cluster, source, "--checks", "syntax")
        assert job["status"] == "file_completed", job
    finally:
        cluster.stop()
        delete_rabbit_objects(cluster.prefix)
    distributed = rows / wall
    embedded_dir = root / "embedded"
    embedded_dir.mkdir()
    run = run_child(
        [
            *mailvet_command(),
            "validate",
            str(source),
            "-o",
            str(embedded_dir / "out.csv"),
            "--checks",
            "syntax",
        ],
        clean_env({"MAILVET_DATA_DIR": str(embedded_dir / "data")}),
        embedded_dir,
        embedded_dir / "validate",
    )
    assert run.returncode == 0, run.stderr
    in_process = rows / run.wall
    print(f"syntax-only, {rows:,} rows ({source.name})")
    print(
        "  six roles as processes (RabbitMQ+PostgreSQL+moto S3): "
        f"{wall:6.2f} s  {distributed:>9,.0f} rows/s"
    )
    print(
        "  one process (mailvet validate, embedded default): "
        f"    {run.wall:6.2f} s  {in_process:>9,.0f} rows/s"
    )
    return distributed, in_process


def smtp_figures(addresses: int, database_url: str, s3: MotoS3, root: Path) -> tuple[float, float]:
    world = MailWorld()
    world.zone.add("slow-mail.com", mx=[(10, "mx.slow-mail.com")])
    world.zone.add("mx.slow-mail.com", a=["127.0.0.70"])
    server = world.add_smtp(
        "127.0.0.70",
        SmtpBehaviour(
            mailboxes={
                "postmaster": "250 2.1.5 OK",
                **{f"user{i}": "250 2.1.5 OK" for i in range(addresses)},
            },
            latency=0.04,
            max_connections=20,
        ),
    )
    source = root / "smtp.csv"
    source.write_text("email\n" + "".join(f"user{i}@slow-mail.com\n" for i in range(addresses)))
    figures = []
    world.start()
    try:
        for workers in (1, 2):
            env = {
                **world.env(),
                "MAILVET_CHUNK_SIZE": "100",
                "MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION": "5",
            }
            cluster = Cluster(root / f"smtp{workers}", database_url, s3.endpoint, extra_env=env)
            cluster.root.mkdir()
            try:
                for role in ROLES:
                    if role != "worker":
                        cluster.start(role)
                for n in range(workers):
                    cluster.start("worker", f"worker-{n}")
                cluster.http_get("/health")
                time.sleep(2)
                wall, job = timed_job(cluster, source, "--checks", "smtp")
                assert job["status"] == "file_completed", job
                figures.append(addresses / wall)
                print(
                    f"smtp-bound, {addresses:,} addresses, {workers} worker process(es): "
                    f"{wall:6.2f} s  {addresses / wall:>7,.0f} addresses/s"
                )
            finally:
                cluster.stop()
                delete_rabbit_objects(cluster.prefix)
        print(
            f"  server: max concurrent connections {server.stats.max_concurrent}, "
            f"limit violations {server.stats.violations}"
        )
    finally:
        world.stop()
    return figures[0], figures[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--smtp-addresses", type=int, default=4_000)
    args = parser.parse_args()
    s3 = MotoS3().start()
    try:
        with (
            fresh_database() as database_url,
            tempfile.TemporaryDirectory(prefix="mvbench-") as folder,
        ):
            root = Path(folder)
            distributed, _ = syntax_figures(args.rows, database_url, s3, root)
            one, two = smtp_figures(args.smtp_addresses, database_url, s3, root)
    finally:
        s3.stop()
    ok_syntax = distributed >= 20_000
    ok_scale = two > one
    print("targets:")
    print(
        f"  [{'ok' if ok_syntax else 'MISSED'}] distributed syntax-only: {distributed:,.0f} rows/s "
        "(target >= 20,000)"
    )
    print(
        f"  [{'ok' if ok_scale else 'MISSED'}] second worker: {one:,.0f} -> {two:,.0f} addresses/s "
        f"({two / one:.2f}x)"
    )
    return 0 if ok_syntax and ok_scale else 1


if __name__ == "__main__":
    sys.exit(main())
