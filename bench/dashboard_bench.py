"""Dashboard with 1,000 jobs: server time of `GET /app` (issue 8 §7: at most 100 ms, paginated).

    python bench/dashboard_bench.py [--jobs 1000] [--others 20000] [--requests 50]
                                    [--database-url URL]

One account owns `--jobs` jobs (every state, counts on the completed ones) in a fresh
embedded SQLite file, or in the PostgreSQL database of `--database-url` (migrated here;
use an empty scratch database: its jobs and accounts are added, not removed). The SaaS app
(create_app with its WebContext, the lists area, sessions, CSRF, the per-IP limit) is
called in process through httpx's ASGI transport, so the time is the server's: routing,
middleware, the session read, the balance, the page query and the template. Printed: the
median, 95th percentile and worst of `--requests` requests of the first page and of the
last one, one request's queries and the database's plan of the page query the dashboard
runs (services.jobs.page_query) for both pages; then the `targets:` block (p95 of each
page at most TARGET_MS), exit status 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

import httpx  # noqa: E402
from _common import report_targets  # noqa: E402
from sqlalchemy import event, insert  # noqa: E402

from mailvet.adapters.bus.memory import MemoryBus  # noqa: E402
from mailvet.adapters.db.models import JobRow  # noqa: E402
from mailvet.adapters.db.rows import encode_counts  # noqa: E402
from mailvet.adapters.storage.memory import MemoryStorage  # noqa: E402
from mailvet.bootstrap import build_deps  # noqa: E402
from mailvet.domain.job import JobCounts, JobStatus  # noqa: E402
from mailvet.pipeline.job_files import StoredLayout, encode_stored_layout  # noqa: E402
from mailvet.services.accounts import create_account  # noqa: E402
from mailvet.services.jobs import PAGE_SIZE, page_query  # noqa: E402
from mailvet.settings import load_settings  # noqa: E402
from mailvet.tabular import FileLayout  # noqa: E402
from mailvet.web.app import create_app  # noqa: E402
from mailvet.web.context import build_web_context  # noqa: E402
from tests.fakes import FakeProber, FakeResolver  # noqa: E402
from tests.web.shell_helpers import CSRF_INPUT, cheap_hasher, session_area  # noqa: E402

STATES = list(JobStatus)
TARGET_MS = 100.0  # issue 8 §7, server time of one dashboard page


async def run(
    jobs: int, others: int, requests: int, database_url: str | None, data_dir: Path
) -> int:
    env = {"MAILVET_DATA_DIR": str(data_dir), "MAILVET_WEB_RATE_LIMIT": ""}
    if database_url:
        env["MAILVET_DATABASE_URL"] = database_url
        env["MAILVET_SECRET_KEY"] = "b" * 48
    settings = load_settings(env)
    deps = await build_deps(
        settings,
        storage=MemoryStorage(),
        bus=MemoryBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )
    web = await build_web_context(settings, hasher=cheap_hasher())
    try:
        now = datetime.now(UTC)
        async with web.database.session_maker() as session, session.begin():
            account = await create_account(
                session,
                email=f"bench-{uuid.uuid4().hex[:8]}@example.org",
                password=None,
                confirmed=True,
                credits=1000,
                hasher=web.hasher,
                now=now,
            )
            counts = encode_counts(
                JobCounts(
                    statuses={"deliverable": 700, "undeliverable": 200, "unknown": 100},
                    reasons={"accepted": 700, "mailbox_not_found": 200, "timeout": 100},
                    charged=900,
                )
            )
            # what intake stores for a 3-column CSV list
            layout = encode_stored_layout(
                StoredLayout(
                    layout=FileLayout(kind="csv", header=["name", "email", "company"]),
                    chunk_size=1000,
                )
            )
            rows = []
            for n in range(jobs + others):
                status = STATES[n % len(STATES)]
                rows.append(
                    {
                        "id": uuid.uuid4().hex,
                        "filename": f"list-{n:05d}.csv",
                        "checks": "smtp",
                        "status": status.value,
                        "error": "",
                        "rows_total": 1000,
                        "rows_done": 1000 if status is JobStatus.COMPLETED else n % 1000,
                        "chunks_total": 1,
                        "layout": layout,
                        "owner": account.id if n < jobs else f"other-{n % 500:03d}",
                        "cost": 950,
                        "counts": counts if status is JobStatus.COMPLETED else None,
                        "created_at": now - timedelta(minutes=n),
                        "updated_at": now - timedelta(minutes=n),
                    }
                )
            for first in range(0, len(rows), 5000):
                await session.execute(insert(JobRow), rows[first : first + 5000])
        if web.database.engine.dialect.name == "postgresql":  # statistics, as a live table has
            async with web.database.engine.connect() as connection:
                await connection.exec_driver_sql("ANALYZE jobs")
                await connection.commit()
        app = create_app(deps, web=web, areas=[session_area()])
        transport = httpx.ASGITransport(app=cast(Any, app))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers={"accept": "text/html"}
        ) as client:
            token = CSRF_INPUT.search((await client.get("/")).text)
            assert token is not None
            signed = await client.post(
                f"/t/sign-in/{account.id}", headers={"x-csrftoken": token.group(1)}
            )
            assert signed.status_code == 200, signed.text
            last = -(-jobs // PAGE_SIZE)
            queries: list[str] = []
            checks: list[tuple[str, bool, str]] = []

            def count(_c: object, _cur: object, statement: str, *_rest: object) -> None:
                queries.append(statement)

            for label, page in (("first page", 1), (f"page {last}", last)):
                times = []
                for _ in range(requests):
                    start = time.perf_counter()
                    answer = await client.get("/app", params={"page": str(page)})
                    times.append((time.perf_counter() - start) * 1000)
                    assert answer.status_code == 200, answer.status_code
                    assert "list-" in answer.text
                times.sort()
                p95 = times[max(0, int(len(times) * 0.95) - 1)]
                print(
                    f"GET /app {label:>10} ({jobs} jobs, {PAGE_SIZE} a page): "
                    f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, "
                    f"worst {times[-1]:.1f} ms over {requests} requests"
                )
                checks.append(
                    (f"{label} p95", p95 <= TARGET_MS, f"{p95:.1f} ms <= {TARGET_MS:.0f}")
                )
            event.listen(web.database.engine.sync_engine, "before_cursor_execute", count)
            await client.get("/app")
            print(f"queries of one dashboard request: {len(queries)}")
            for label, page in (("first page", 1), (f"page {last}", last)):
                await _print_plan(web.database.engine, account.id, label, page)
            print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
            return report_targets(checks)
    finally:
        await web.close()
        await deps.close()


async def _print_plan(engine: Any, owner: str, label: str, page: int) -> None:
    """The database's plan of the query the dashboard runs for `page` (jobs_page's)."""
    offset = (page - 1) * PAGE_SIZE
    query = page_query(owner=owner).offset(offset).limit(PAGE_SIZE)
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    async with engine.connect() as connection:
        plan = (await connection.exec_driver_sql(explain + str(compiled))).all()
    print(f"plan of the {label} query: " + " | ".join(str(row[-1]) for row in plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--others", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        code = asyncio.run(
            run(args.jobs, args.others, args.requests, args.database_url, Path(folder))
        )
    sys.exit(code)


if __name__ == "__main__":
    main()
