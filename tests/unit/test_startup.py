"""Start-up: a command imports and builds only what it uses.

The import checks run in a fresh interpreter each (this test process has imported
everything already); they assert on sys.modules, not on timings.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mailvet.adapters.db import migrate
from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.adapters.db.sqlite import SqliteJobRepository, sqlite_path
from mailvet.bootstrap import LazyProber, LazyResolver, build_deps, build_job_reader
from mailvet.cli import app
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.verdict import Check
from mailvet.settings import load_settings

pytestmark = pytest.mark.unit

HEAVY = (
    "litestar",
    "sqlalchemy",
    "advanced_alchemy",
    "alembic",
    "faststream",
    "aio_pika",
    "minio",
    "openpyxl",
)
# what a command may pay for only when it talks to the network or runs the pipeline
NETWORK = ("dns", "structlog", "mailvet.adapters.smtp", "mailvet.pipeline.engine")

PROBE = """
import json, runpy, sys
sys.argv = ["mailvet", *json.loads(sys.argv[1])]
if sys.argv[1:]:
    try:
        runpy.run_module("mailvet", run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
else:
    import mailvet.cli
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def run_fresh(args: list[str], env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    """Run `mailvet ARGS` (or only `import mailvet.cli` when ARGS is empty) in a new
    interpreter; its exit code, the top-level and full names it imported, and stdout."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILVET_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    modules = set(report["modules"])
    return report["code"], modules | {name.split(".")[0] for name in modules}, done.stdout


def imported(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in modules]


def test_importing_the_cli_imports_no_heavy_library() -> None:
    code, modules, _ = run_fresh([])
    assert code == 0
    assert imported(modules, HEAVY + NETWORK) == []


def test_check_syntax_imports_neither_database_bus_nor_network(tmp_path: Path) -> None:
    code, modules, out = run_fresh(
        ["check", "Ann@Example.com", "--checks", "syntax", "--json"],
        env={"MAILVET_DATA_DIR": str(tmp_path / "data")},
    )
    assert code == 0, out
    assert json.loads(out)["normalized"] == "Ann@example.com"
    assert imported(modules, HEAVY + NETWORK) == []
    assert not (tmp_path / "data").exists()  # nothing built, nothing created


async def make_job(url: str, job: Job) -> None:
    await asyncio.to_thread(migrate.upgrade, url)
    database = make_database(url)
    try:
        await SqlJobRepository(database).add(job)
    finally:
        await database.dispose()


def sample_job(job_id: str = "a" * 32) -> Job:
    return Job(
        id=job_id,
        file=FileInfo(filename="list.csv", email_column="Work email", checks=Check.DNS),
        owner="acct-1",
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    )


def test_status_on_the_embedded_database_reads_the_row_without_sqlalchemy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    asyncio.run(make_job(load_settings({"MAILVET_DATA_DIR": str(data)}).database, sample_job()))
    code, modules, out = run_fresh(
        ["status", "a" * 32, "--json"], env={"MAILVET_DATA_DIR": str(data)}
    )
    assert code == 0, out
    assert json.loads(out) == {
        "id": "a" * 32,
        "status": "pending_start",
        "rows_done": 0,
        "rows_total": 0,
        "error": "",
    }
    assert imported(modules, HEAVY + NETWORK) == []


def test_status_of_a_fresh_data_dir_migrates_it_and_says_no_such_job(tmp_path: Path) -> None:
    env = {"MAILVET_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(app, ["status", "b" * 32], env=env)
    assert result.exit_code == 2 and "no job" in result.output
    url = load_settings(env).database
    assert migrate.sqlite_is_current(url)


def test_the_spelt_out_head_is_alembics_head() -> None:
    assert migrate.head() == migrate.HEAD


def test_sqlite_is_current_only_at_head(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/db/mailvet.db"
    assert not migrate.sqlite_is_current(url)
    assert not (tmp_path / "db").exists()  # looking created nothing
    migrate.upgrade(url)
    assert migrate.sqlite_is_current(url)
    migrate.downgrade(url, "base")
    assert not migrate.sqlite_is_current(url)
    assert SqliteJobRepository.open_current(url, migrate.HEAD) is None


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite+aiosqlite:////abs/m.db") == Path("/abs/m.db")
    assert sqlite_path("sqlite:///rel/m.db?timeout=3") == Path("rel/m.db")
    assert sqlite_path("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_path("postgresql+psycopg://u@h/db") is None


async def test_the_stdlib_and_the_sql_repository_read_each_others_rows(tmp_path: Path) -> None:
    """Same file, same stored formats: what one writes the other reads back equal."""
    url = f"sqlite+aiosqlite:///{tmp_path}/mailvet.db"
    await make_job(url, sample_job())  # written through SQLAlchemy
    database = make_database(url)
    sql = SqlJobRepository(database)
    stdlib = SqliteJobRepository.open_current(url, migrate.HEAD)
    assert stdlib is not None
    try:
        await sql.set_status("a" * 32, JobStatus.FILE_ACCEPTED)
        await stdlib.set_counts("a" * 32, rows_total=7, chunks_total=2, layout=b"\x81\xa1k\x01")
        await sql.record_chunk("a" * 32, 0, 4)
        assert not await stdlib.record_chunk("a" * 32, 0, 4)  # the SQL one's chunk counts
        assert await stdlib.record_chunk("a" * 32, 1, 3)
        assert await stdlib.get("a" * 32) == await sql.get("a" * 32)
        other = sample_job("d" * 32)
        await stdlib.add(msgspec_replace(other, created_at=datetime(2027, 1, 1, tzinfo=UTC)))
        assert await sql.list_jobs() == await stdlib.list_jobs()
        assert [job.id for job in await stdlib.list_jobs()] == ["d" * 32, "a" * 32]
        assert await sql.list_active() == await stdlib.list_active()
    finally:
        await stdlib.close()
        await database.dispose()
    settings = load_settings({"MAILVET_DATABASE_URL": url})
    store = await build_job_reader(settings)
    try:
        assert isinstance(store.jobs, SqliteJobRepository)
        assert (await store.jobs.get("a" * 32)).rows_done == 7
    finally:
        await store.close()


def msgspec_replace(job: Job, **changes: object) -> Job:
    import msgspec

    return msgspec.structs.replace(job, **changes)


# The repository contract (tests/integration/test_job_repository.py) on the stdlib SQLite
# repository: the same test functions, with this module's `repo` fixture.
from tests.integration import test_job_repository as contract  # noqa: E402

clock = contract.clock


@pytest.fixture
async def repo(tmp_path: Path, clock: contract.FakeClock) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path}/contract/mailvet.db"
    await asyncio.to_thread(migrate.upgrade, url)
    repository = SqliteJobRepository.open_current(url, migrate.HEAD, now=clock)
    assert repository is not None
    yield repository
    await repository.close()


for _name in dir(contract):
    if _name.startswith("test_"):
        globals()[f"test_stdlib_sqlite_{_name[5:]}"] = getattr(contract, _name)


async def test_a_syntax_only_pipeline_builds_no_resolver_and_no_prober(tmp_path: Path) -> None:
    settings = load_settings({"MAILVET_DATA_DIR": str(tmp_path)})
    deps = await build_deps(settings, syntax_pool=None)
    try:
        verdicts = await deps.engine.check_many(["a@example.com", "nope"], Check.SYNTAX)
        assert [v.reason for v in verdicts] == ["not_checked", "invalid_syntax"]
        assert isinstance(deps.resolver, LazyResolver) and not deps.resolver.built
        assert isinstance(deps.prober, LazyProber) and not deps.prober.built
    finally:
        await deps.close()


CELLS = [
    "a@example.com",
    " Ann@EXAMPLE.com ",
    "info@gmial.com",
    "x@mailinator.com",
    "no-at",
    '"quoted"@example.org',
    "jo@bücher.de",
    "",
]


@pytest.mark.parametrize("cell", CELLS)
async def test_check_syntax_prints_the_engines_syntax_verdict(cell: str, tmp_path: Path) -> None:
    """`check --checks syntax` skips the engine: it must say what the engine says."""
    settings = load_settings({"MAILVET_DATA_DIR": str(tmp_path)})
    deps = await build_deps(settings, syntax_pool=None)
    try:
        [verdict] = await deps.engine.check_many([cell], Check.SYNTAX)
    finally:
        await deps.close()
    env = {"MAILVET_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["check", cell, "--checks", "syntax", "--json"], env=env)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed.pop("email") == cell
    assert printed == json.loads(json.dumps({f: getattr(verdict, f) for f in printed}))


async def test_the_syntax_pool_starts_no_process_until_a_big_chunk_comes(tmp_path: Path) -> None:
    from mailvet.bootstrap import LazyProcessPool

    settings = load_settings({"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_SYNTAX_PROCESSES": "1"})
    deps = await build_deps(settings)
    try:
        pool = deps.syntax_pool
        assert isinstance(pool, LazyProcessPool) and not pool.started
        await deps.engine.check_many(["a@example.com"], Check.SYNTAX)
        assert not pool.started
        assert pool.submit(len, "abc").result(timeout=60) == 3  # made on the first task
        assert pool.started
    finally:
        await deps.close()


def test_what_a_pool_process_imports_is_light() -> None:
    """A spawned pool process unpickles `syntax_chunk` by importing its module."""
    from mailvet.pipeline.chunk_output import syntax_chunk

    code = f"import json, sys, {syntax_chunk.__module__}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    modules = set(json.loads(done.stdout))
    assert imported(modules | {m.split(".")[0] for m in modules}, HEAVY + NETWORK) == []


@pytest.mark.parametrize(
    ("rows", "checks", "warmed"),
    [(5000, Check.SYNTAX, 1), (5000, Check.DNS, 0), (10, Check.SYNTAX, 0)],
)
async def test_intake_starts_the_pool_for_a_big_syntax_only_file(
    rows: int, checks: Check, warmed: int, tmp_path: Path
) -> None:
    from mailvet.adapters.bus.memory import MemoryBus
    from mailvet.adapters.db.memory import MemoryJobRepository
    from mailvet.adapters.storage.memory import MemoryStorage
    from mailvet.domain.messages import JobSubmitted
    from mailvet.pipeline.intake import Intake
    from mailvet.pipeline.submit import submit_file

    calls: list[str] = []
    jobs, storage, bus = MemoryJobRepository(), MemoryStorage(), MemoryBus()
    source = tmp_path / "list.csv"
    source.write_text(
        "email,name\n" + "".join(f"user{i}@example.com,Person {i}\n" for i in range(rows))
    )
    job_id = await submit_file(jobs, storage, bus, source, checks=checks)
    intake = Intake(
        jobs,
        storage,
        bus,
        chunk_size=1000,
        syntax_chunk_size=10_000,
        warm_syntax_pool=lambda: calls.append("warm"),
        scratch=tmp_path / "scratch",
    )
    await intake.handle(JobSubmitted(job_id=job_id))
    assert (await jobs.get(job_id)).status is JobStatus.FILE_ACCEPTED
    assert len(calls) == warmed


def test_validate_on_the_embedded_database_imports_no_heavy_library(tmp_path: Path) -> None:
    env = {"MAILVET_DATA_DIR": str(tmp_path / "data")}
    source = tmp_path / "l.csv"
    source.write_text("email\na@example.com\nnope\n")
    first = CliRunner().invoke(app, ["validate", str(source), "--checks", "syntax"], env=env)
    assert first.exit_code == 0, first.output  # made and migrated the database
    code, modules, out = run_fresh(
        ["validate", str(source), "-o", str(tmp_path / "o.csv"), "--checks", "syntax"], env=env
    )
    assert code == 0, out
    assert imported(modules, HEAVY + ("dns", "mailvet.adapters.smtp")) == []
    assert (tmp_path / "o.csv").read_text().count("\n") == 3
