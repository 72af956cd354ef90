"""The `mailvet` command line: validate a list, check one address, drive the services.

Start-up is part of the interface: importing this module costs Typer and the settings, no
more. Each command imports what it uses inside its own function (the database, the bus, the
pipeline, the network adapters), and builds only that: `check --checks syntax` is the pure
domain, `status` a job repository.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from mailvet.cli_apikeys import apikeys_app
from mailvet.cli_billing import billing_app
from mailvet.cli_users import users_app
from mailvet.cli_webhooks import webhooks_app
from mailvet.domain.verdict import Check
from mailvet.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from mailvet.domain.job import Job, JobStatus
    from mailvet.domain.ports import JobRepository, ObjectStorage
    from mailvet.domain.verdict import Verdict
    from mailvet.pipeline.submit import JobLookup, Summary

app = typer.Typer(
    name="mailvet",
    help="Validate email lists: syntax, DNS, SMTP mailbox probe and risk signals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2
T = TypeVar("T")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    typer.echo(f"mailvet: error: {message}", err=True)
    raise typer.Exit(code)


def _load() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))


def _configure_logs(
    settings: Settings, default_level: str | None = None, *, lazy: bool = False
) -> None:
    from mailvet.logs import configure_logging

    # unset: warning-level text for a command, info-level JSON lines for a service
    level = settings.log_level or default_level or "warning"
    json_lines = settings.log_json if settings.log_json is not None else default_level is not None
    configure_logging(level, json_lines, lazy=lazy)


def _settings(default_level: str | None = None) -> Settings:
    """Settings, and logging configured from them (for commands that run the pipeline)."""
    settings = _load()
    _configure_logs(settings, default_level)
    return settings


def default_output(source: Path) -> Path:
    from mailvet.pipeline.submit import result_name

    kind = "xlsx" if source.suffix.lower() == ".xlsx" else "csv"
    return source.with_name(result_name(source.name, kind))


@app.command()
def validate(
    input: Annotated[Path, typer.Argument(help="CSV, TXT (one address a line) or XLSX file.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Result file [default: INPUT.mailvet.csv]")
    ] = None,
    email_column: Annotated[
        str | None, typer.Option(help="Header name (or 1-based number) of the email column.")
    ] = None,
    checks: Annotated[
        Check | None, typer.Option(help="How far to go: syntax, dns or smtp [default: smtp].")
    ] = None,
    sheet: Annotated[
        str | None, typer.Option(help="XLSX: the sheet to read [default: the one with addresses].")
    ] = None,
) -> None:
    """Validate every address of a list and write it back with mailvet_* columns appended.

    The result's kind follows the output's name: `-o result.csv` for an XLSX list writes the
    address sheet as CSV; a CSV or TXT list gives a CSV result only (`-o result.xlsx` is
    refused)."""
    settings = _settings()
    _refuse_shared_services(settings)
    if not input.exists():
        fail(f"{input}: no such file")
    if not input.is_file():
        fail(f"{input}: not a file")
    out = output or default_output(input)
    if out.resolve() == input.resolve():
        fail("the output file must not be the input file")
    _check_output(out)
    chosen = checks or settings.engine.checks
    kind = _wanted_kind(input, out)
    summary = _run_or_fail(
        lambda: _validate(settings, input, out, email_column, chosen, sheet, kind)
    )
    _print_summary(summary, out)


def _check_output(out: Path) -> None:
    """Before a job: `out` must be able to take the result (a regular file or nothing)."""
    from mailvet.output_path import OutputPathError, preflight

    try:
        preflight(out)
    except OutputPathError as exc:
        fail(str(exc))


async def _fetch_to(
    jobs: JobLookup, storage: ObjectStorage, job_id: str, out: Path, *, take: bool = False
) -> Summary:
    """The job's result written to `out` through a temporary file and one rename
    (mailvet.output_path); OutputPathError when `out` cannot take it. `take`: the stored
    result is deleted next, so it may be moved out rather than copied."""
    from mailvet.output_path import OutputPathError, output_file
    from mailvet.pipeline.submit import fetch_result

    with output_file(out) as temp:
        try:
            return await fetch_result(jobs, storage, job_id, temp, take=take)
        except (IsADirectoryError, PermissionError, NotADirectoryError) as exc:
            message = f"{out}: cannot write the result there ({exc.strerror})"
            raise OutputPathError(message) from None


async def _check_fetched_kind(
    jobs: JobLookup, storage: ObjectStorage, job_id: str, out: Path
) -> None:
    """OutputPathError when out's name asks for another kind than the job's stored result."""
    from mailvet.output_path import OutputPathError
    from mailvet.pipeline.submit import completed_job, read_summary
    from mailvet.tabular import kind_of_name

    wanted = kind_of_name(out.name)
    if wanted is None:
        return
    await completed_job(jobs, job_id)  # ResultNotReady first, as without a kind
    stored = (await read_summary(storage, job_id)).result_kind
    if stored != wanted:
        what = "an XLSX workbook" if stored == "xlsx" else "a CSV file"
        raise OutputPathError(
            f"{out.name}: the result of job {job_id} is {what}; name the output .{stored}"
        )


def _refuse_shared_services(settings: Settings) -> None:
    """`validate` runs every service in this process on the embedded database; settings
    that name shared services (a cluster's bus, database or bucket) are refused, so that it
    neither joins a cluster nor touches its jobs."""
    shared = []
    if settings.bus == "rabbit":
        shared.append("MAILVET_BUS=rabbit")
    if not settings.database.startswith("sqlite"):
        shared.append("a non-SQLite MAILVET_DATABASE_URL")
    if settings.storage.backend == "s3":
        shared.append("MAILVET_STORAGE=s3")
    if shared:
        fail(
            f"mailvet validate runs on its own embedded database, but the settings name shared "
            f"services ({', '.join(shared)}): use `mailvet submit` (then `mailvet status` and "
            "`mailvet fetch`) to run a list on them"
        )


def _wanted_kind(source: Path, out: Path) -> str | None:
    """The result kind out's name asks for; a CSV/TXT list asked for as XLSX is refused."""
    from mailvet.tabular import input_is_xlsx, kind_of_name

    kind = kind_of_name(out.name)
    if kind == "xlsx" and not input_is_xlsx(source):
        fail(f"{out.name}: a CSV or TXT list gives a CSV result; name the output .csv")
    return kind


async def _validate(
    settings: Settings,
    source: Path,
    out: Path,
    email_column: str | None,
    checks: Check,
    sheet: str | None = None,
    result_kind: str | None = None,
) -> Summary:
    from mailvet.adapters.db.runs import RunMarker, runs_folder
    from mailvet.bootstrap import build_deps
    from mailvet.pipeline import object_keys
    from mailvet.pipeline.runner import Pipeline
    from mailvet.pipeline.submit import new_job_id, submit_file

    deps = await build_deps(settings)
    try:
        folder = runs_folder(settings.database)
        if folder is not None:
            await _abandon_dead_runs(deps.jobs, folder)
        pipeline = Pipeline(deps, resume=False)  # this run's job only, never another's
        await pipeline.start()
        job_id = new_job_id()
        # held from before the job exists: if this process dies, the next run abandons it
        marker = RunMarker(folder, job_id) if folder is not None else None
        try:
            await submit_file(
                deps.jobs,
                deps.storage,
                deps.bus,
                source,
                email_column=email_column,
                checks=checks,
                job_id=job_id,
                sheet=sheet,
                result_kind=result_kind,
            )
            status = await _follow(deps.jobs, job_id)
            if status.is_error:
                job = await deps.jobs.get(job_id)
                fail(job.error or status.value)
            summary = await _fetch_to(deps.jobs, deps.storage, job_id, out, take=True)
            await deps.storage.delete_prefix(object_keys.completed(job_id))
            return summary
        finally:
            await pipeline.stop()
            if marker is not None and await _settle(deps.jobs, job_id):
                marker.release()
    finally:
        await deps.close()


_INTERRUPTED = "interrupted: the run that held it ended first"


async def _abandon_dead_runs(jobs: JobRepository, folder: Path) -> None:
    """The embedded pipeline keeps no queue between runs: a job that an earlier `validate`
    left unfinished (its process died) can never finish, so say so instead of resuming it.
    Only jobs of dead `validate` runs are touched (see mailvet.adapters.db.runs)."""
    from mailvet.adapters.db.runs import dead_runs
    from mailvet.domain.job import JobStatus
    from mailvet.domain.ports import JobNotFound

    for job_id in dead_runs(folder):
        try:
            job = await jobs.get(job_id)
        except JobNotFound:
            continue  # it died before recording the job
        if not job.status.is_final:
            await jobs.set_status(job_id, JobStatus.ERROR_INTERNAL, _INTERRUPTED)


async def _settle(jobs: JobRepository, job_id: str) -> bool:
    """On the way out: end this run's job if it is still going (the run was interrupted).
    True when the job is final (or was never recorded), so the run's marker can go."""
    from mailvet.domain.job import JobStatus
    from mailvet.domain.ports import JobNotFound

    try:
        job = await jobs.get(job_id)
        if not job.status.is_final:
            await jobs.set_status(job_id, JobStatus.ERROR_INTERNAL, _INTERRUPTED)
    except JobNotFound:
        return True
    except Exception:  # the database is gone too: the marker tells the next run
        return False
    return True


async def _follow(jobs: JobRepository, job_id: str) -> JobStatus:
    """Wait for the job to finish, drawing a progress bar on stderr."""
    import asyncio

    bar = _ProgressBar()
    while True:
        job = await jobs.get(job_id)
        bar.draw(job.rows_done, job.rows_total, job.status)
        if job.status.is_final:
            bar.done()
            return job.status
        await asyncio.sleep(0.05)  # a status read is ~0.1 ms: poll often, finish sooner


class _ProgressBar:
    WIDTH = 30

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._start = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def draw(self, done: int, total: int, status: JobStatus) -> None:
        now = time.monotonic()
        if total == 0 and (not status.is_final or status.is_error):
            return  # not counted yet, or refused before it was: its error line says it all
        if now - self._last < (0.1 if self._tty else 2.0) and not status.is_final:
            return
        self._last = now
        filled = int(self.WIDTH * done / total) if total else (self.WIDTH if status.is_final else 0)
        rate = done / max(now - self._start, 1e-6)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = f"[{bar}] {done:,}/{total:,} rows  {rate:,.0f} rows/s"
        if self._tty:
            sys.stderr.write(f"\r{line}")
        else:
            sys.stderr.write(f"{line}\n")
        sys.stderr.flush()
        self._drawn = True

    def done(self) -> None:
        if self._tty and self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _print_summary(summary: Summary, out: Path) -> None:
    from mailvet.domain.verdict import Status

    total = summary.rows
    typer.echo(f"{'status':<15}{'rows':>10}{'share':>9}")
    for status in Status:
        count = summary.by_status.get(status.value, 0)
        share = 100.0 * count / total if total else 0.0
        typer.echo(f"{status.value:<15}{count:>10,}{share:>8.1f}%")
    typer.echo(f"{'total':<15}{total:>10,}")
    if summary.by_reason:
        reasons = ", ".join(f"{r}={n:,}" for r, n in sorted(summary.by_reason.items()))
        typer.echo(f"reasons: {reasons}")
    typer.echo(f"result: {out}")


@app.command()
def check(
    address: Annotated[str, typer.Argument(help="One email address.")],
    json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    checks: Annotated[
        Check | None, typer.Option(help="syntax, dns or smtp [default: smtp].")
    ] = None,
) -> None:
    """Validate one address and print the verdict."""
    import msgspec

    from mailvet.domain.verdict import RESULT_COLUMNS

    settings = _load()
    chosen = checks or settings.engine.checks
    if chosen is Check.SYNTAX:
        # syntax and the lists alone: the pure domain, nothing to build or connect
        from mailvet.domain.offline import syntax_verdicts

        verdict = syntax_verdicts([address])[0]
    else:
        _configure_logs(settings)
        verdict = _run_or_fail(lambda: _check(settings, address, chosen))
    if json:  # the fields are the column names without "mailvet_"
        fields = msgspec.structs.asdict(verdict)
        typer.echo(msgspec.json.encode({"email": address, **fields}).decode())
    else:
        for name, value in zip(RESULT_COLUMNS, verdict.columns(), strict=True):
            typer.echo(f"{name:<20} {value}")


async def _check(settings: Settings, address: str, checks: Check) -> Verdict:
    from mailvet.adapters.db.memory import MemoryJobRepository
    from mailvet.bootstrap import build_deps

    deps = await build_deps(settings, jobs=MemoryJobRepository(), syntax_pool=None)
    try:
        return await deps.engine.check(address, checks)
    finally:
        await deps.close()


@app.command()
def doctor(
    probe_domain: Annotated[
        str, typer.Option(help="A domain whose mail servers the SMTP check talks to.")
    ] = "gmail.com",
) -> None:
    """Check this machine's set-up for probing: DNS, outbound port 25, HELO name, settings."""
    from mailvet.doctor import run as run_doctor

    settings = _settings()
    raise typer.Exit(run_doctor(settings, probe_domain=probe_domain))


# --- distributed mode: roles, and driving a job from the shell ----------------------------


@app.command()
def run(
    role: Annotated[
        str, typer.Argument(help="web, intake, publisher, orchestrator, worker, resultgen or all")
    ],
) -> None:
    """Run one service (or all of them) until SIGTERM."""
    from mailvet.serve import roles_for
    from mailvet.serve import run as run_service

    settings = _settings(default_level="info")
    try:
        run_service(settings, roles_for(role))
    except SettingsError as exc:
        fail(str(exc))


@app.command()
def submit(
    input: Annotated[Path, typer.Argument(help="CSV, TXT or XLSX file.")],
    email_column: Annotated[
        str | None, typer.Option(help="Name or number of the email column.")
    ] = None,
    checks: Annotated[
        Check | None, typer.Option(help="syntax, dns or smtp [default: smtp].")
    ] = None,
    sheet: Annotated[
        str | None, typer.Option(help="XLSX: the sheet to read [default: the one with addresses].")
    ] = None,
) -> None:
    """Upload a list to the running services; prints the job id."""
    settings = _settings()
    if settings.bus == "memory":
        fail("submit needs the shared services: set MAILVET_BUS=rabbit (or use `mailvet validate`)")
    if not input.is_file():
        fail(f"{input}: no such file")

    async def go() -> str:
        from mailvet.bootstrap import build_bus, build_job_store, build_storage
        from mailvet.pipeline.submit import submit_file

        store = await build_job_store(settings)
        bus = build_bus(settings)
        try:
            return await submit_file(
                store.jobs,
                build_storage(settings),
                bus,
                input,
                email_column=email_column,
                checks=checks or settings.engine.checks,
                sheet=sheet,
            )
        finally:
            await bus.stop()
            await store.close()

    typer.echo(_run_or_fail(go))


@app.command()
def status(
    job_id: Annotated[str, typer.Argument()],
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a job's state and progress."""
    settings = _load()
    _configure_logs(settings, lazy=True)  # only the database's retry warnings may log

    async def go() -> Job:
        from mailvet.bootstrap import build_job_reader

        store = await build_job_reader(settings)  # the job table alone
        try:
            return await store.jobs.get(job_id)
        finally:
            await store.close()

    job = _run_or_fail(go)
    record = {
        "id": job.id,
        "status": job.status.value,
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "error": job.error,
    }
    if json:
        import msgspec

        typer.echo(msgspec.json.encode(record).decode())
    else:
        rows = f"{job.rows_done:,}/{job.rows_total:,} rows"
        typer.echo(f"{job.id}  {job.status.value}  {rows}  {job.error}".rstrip())


@app.command()
def fetch(
    job_id: Annotated[str, typer.Argument()],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the result.")],
) -> None:
    """Download a completed job's result file.

    The output's name must not ask for another kind than the result's (`-o result.csv` of
    an XLSX result is refused: the stored workbook is not converted)."""
    settings = _load()
    _configure_logs(settings, lazy=True)
    _check_output(output)

    async def go() -> Summary:
        from mailvet.bootstrap import build_job_reader, build_storage
        from mailvet.logs import apply_pending

        store = await build_job_reader(settings)
        try:
            storage = build_storage(settings)
            apply_pending()  # the S3 adapter logs through structlog directly
            await _check_fetched_kind(store.jobs, storage, job_id, output)
            return await _fetch_to(store.jobs, storage, job_id, output)
        finally:
            await store.close()

    summary = _run_or_fail(go)
    _print_summary(summary, output)


@app.command()
def asyncapi() -> None:
    """Print the AsyncAPI document of the message flows between the services."""
    from mailvet.adapters.bus.rabbit import RabbitBus
    from mailvet.pipeline.runner import describe_flows

    settings = _load()
    bus = RabbitBus(settings.rabbit.rabbitmq_url, prefix=settings.rabbit.prefix)
    describe_flows(bus)
    typer.echo(bus.asyncapi_json())


db_app = typer.Typer(help="The job database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")  # cli_users.py: accounts of the web application
app.add_typer(apikeys_app, name="apikeys")  # cli_apikeys.py: API keys of the accounts
app.add_typer(webhooks_app, name="webhooks")  # cli_webhooks.py: their webhooks
app.add_typer(billing_app, name="billing")  # cli_billing.py: Stripe's tiers


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Apply the database migrations (idempotent)."""
    from mailvet.adapters.db.migrate import current, upgrade

    settings = _settings()
    try:
        upgrade(settings.database, revision)
    except Exception as exc:  # connection refused, bad URL...
        fail(f"cannot migrate {_safe_url(settings.database)}: {type(exc).__name__}: {exc}")
    typer.echo(f"database at revision {current(settings.database)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _run_or_fail(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    import asyncio

    from mailvet.domain.ports import JobNotFound, ObjectNotFound
    from mailvet.output_path import OutputPathError
    from mailvet.pipeline.submit import ResultNotReady

    try:
        return asyncio.run(make())
    except OutputPathError as exc:
        fail(str(exc))
    except JobNotFound as exc:
        fail(f"no job {exc}")
    except ObjectNotFound as exc:
        fail(f"{exc}: no longer stored (a `mailvet validate` result is written to its output only)")
    except ResultNotReady as exc:
        fail(str(exc))
    except SettingsError as exc:
        fail(str(exc))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
