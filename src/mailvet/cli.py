"""The `mailvet` command line: validate a list, check one address."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import msgspec
import typer

from mailvet.bootstrap import build_deps
from mailvet.domain.job import JobStatus
from mailvet.domain.ports import JobRepository
from mailvet.domain.verdict import RESULT_COLUMNS, Check, Status, Verdict
from mailvet.logs import configure_logging
from mailvet.pipeline import keys
from mailvet.pipeline.resultgen import Summary
from mailvet.pipeline.runner import Pipeline
from mailvet.pipeline.submit import fetch_result, submit_file
from mailvet.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    name="mailvet",
    help="Validate email lists: syntax, DNS, SMTP mailbox probe and risk signals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    typer.echo(f"mailvet: error: {message}", err=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    configure_logging(settings.log_level, settings.log_json)
    return settings


def default_output(source: Path) -> Path:
    suffix = ".xlsx" if source.suffix.lower() == ".xlsx" else ".csv"
    return source.with_name(f"{source.stem}.mailvet{suffix}")


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
) -> None:
    """Validate every address of a list and write it back with mailvet_* columns appended."""
    settings = _settings()
    if not input.exists():
        fail(f"{input}: no such file")
    if not input.is_file():
        fail(f"{input}: not a file")
    out = output or default_output(input)
    if out.resolve() == input.resolve():
        fail("the output file must not be the input file")
    if not out.parent.is_dir():
        fail(f"{out.parent}: no such directory for the output")
    summary = asyncio.run(_validate(settings, input, out, email_column, checks or settings.engine.checks))
    _print_summary(summary, out)


async def _validate(
    settings: Settings, source: Path, out: Path, email_column: str | None, checks: Check
) -> Summary:
    deps = await build_deps(settings)
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(
            deps.jobs, deps.storage, deps.bus, source, email_column=email_column, checks=checks
        )
        status = await _follow(deps.jobs, job_id)
        if status.is_error:
            job = await deps.jobs.get(job_id)
            fail(job.error or status.value)
        summary = await fetch_result(deps.jobs, deps.storage, job_id, out)
        await deps.storage.delete_prefix(keys.completed(job_id))
        return summary
    finally:
        await pipeline.stop()
        await deps.close()


async def _follow(jobs: JobRepository, job_id: str) -> JobStatus:
    """Wait for the job to finish, drawing a progress bar on stderr."""
    bar = _ProgressBar()
    while True:
        job = await jobs.get(job_id)
        bar.draw(job.rows_done, job.rows_total, job.status)
        if job.status.is_final:
            bar.done()
            return job.status
        await asyncio.sleep(0.1)


class _ProgressBar:
    WIDTH = 30

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._start = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def draw(self, done: int, total: int, status: JobStatus) -> None:
        now = time.monotonic()
        if total == 0 and not status.is_final:
            return  # not counted yet
        if now - self._last < (0.1 if self._tty else 2.0) and not status.is_final:
            return
        self._last = now
        filled = int(self.WIDTH * done / total) if total else (self.WIDTH if status.is_final else 0)
        rate = done / max(now - self._start, 1e-6)
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done:,}/{total:,} rows  {rate:,.0f} rows/s"
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
    checks: Annotated[Check | None, typer.Option(help="syntax, dns or smtp [default: smtp].")] = None,
) -> None:
    """Validate one address and print the verdict."""
    settings = _settings()
    verdict = asyncio.run(_check(settings, address, checks or settings.engine.checks))
    record = dict(zip(RESULT_COLUMNS, verdict.columns(), strict=True))
    if json:
        typer.echo(msgspec.json.encode({"email": address, **verdict_json(verdict)}).decode())
    else:
        for name, value in record.items():
            typer.echo(f"{name:<20} {value}")


def verdict_json(verdict: Verdict) -> dict[str, object]:
    """The verdict with the public column names (without the mailvet_ prefix), typed."""
    return {
        "status": verdict.status.value,
        "reason": verdict.reason.value,
        "normalized": verdict.normalized,
        "suggestion": verdict.suggestion,
        "disposable": verdict.disposable,
        "role": verdict.role,
        "free": verdict.free,
        "catch_all": verdict.catch_all,
        "mx": verdict.mx,
        "smtp_code": verdict.smtp_code,
    }


async def _check(settings: Settings, address: str, checks: Check) -> Verdict:
    from mailvet.adapters.db.memory import MemoryJobRepository

    deps = await build_deps(settings, jobs=MemoryJobRepository())
    try:
        return await deps.engine.check(address, checks)
    finally:
        await deps.close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
