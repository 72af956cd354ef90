"""`mailvet fetch -o NAME`: the output's name must not ask for another kind than the stored
result's (the result is not converted): one clear line, exit 2, nothing written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from mailvet.bootstrap import build_job_store, build_storage
from mailvet.cli import app
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.pipeline import object_keys
from mailvet.pipeline.submit import Summary
from mailvet.settings import load_settings

pytestmark = pytest.mark.unit

WORKBOOK = b"PK\x03\x04 a stored workbook"


async def completed_job(env: dict[str, str], job_id: str, kind: str, body: bytes) -> None:
    """A completed job of the embedded database with its stored result and summary."""
    settings = load_settings(env)
    store = await build_job_store(settings)
    try:
        await store.jobs.add(
            Job(id=job_id, file=FileInfo(filename=f"list.{kind}"), status=JobStatus.COMPLETED)
        )
    finally:
        await store.close()
    storage = build_storage(settings)
    await storage.put_bytes(object_keys.completed(job_id), body)
    summary = Summary(rows=1, by_status={"valid": 1}, result_kind=kind)
    await storage.put_bytes(object_keys.summary(job_id), msgspec.json.encode(summary))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MAILVET_DATA_DIR": str(tmp_path / "data")}


def fetch(env: dict[str, str], job_id: str, out: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["fetch", job_id, "-o", str(out)], env=env)
    return result.exit_code, result.output


def test_an_xlsx_result_fetched_as_csv_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    asyncio.run(completed_job(env, "a" * 32, "xlsx", WORKBOOK))
    code, output = fetch(env, "a" * 32, tmp_path / "x.csv")
    assert code == 2
    assert output.strip() == (
        f"mailvet: error: x.csv: the result of job {'a' * 32} is an XLSX workbook;"
        " name the output .xlsx"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing written


def test_a_csv_result_fetched_as_xlsx_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    asyncio.run(completed_job(env, "b" * 32, "csv", b"email\r\na@b.com\r\n"))
    code, output = fetch(env, "b" * 32, tmp_path / "x.xlsx")
    assert code == 2
    assert "x.xlsx: the result of job" in output and "is a CSV file; name the output .csv" in output
    assert not (tmp_path / "x.xlsx").exists()


@pytest.mark.parametrize("name", ["x.xlsx", "x.result", "x"])
def test_a_result_fetched_under_its_kind_or_no_kind_is_written(
    env: dict[str, str], tmp_path: Path, name: str
) -> None:
    asyncio.run(completed_job(env, "c" * 32, "xlsx", WORKBOOK))
    code, output = fetch(env, "c" * 32, tmp_path / name)
    assert code == 0, output
    assert (tmp_path / name).read_bytes() == WORKBOOK


def test_a_job_not_ready_says_so_before_the_kind(env: dict[str, str], tmp_path: Path) -> None:
    async def pending() -> None:
        store = await build_job_store(load_settings(env))
        try:
            await store.jobs.add(Job(id="d" * 32, file=FileInfo(filename="l.xlsx")))
        finally:
            await store.close()

    asyncio.run(pending())
    code, output = fetch(env, "d" * 32, tmp_path / "x.csv")
    assert code == 2 and f"job {'d' * 32} is pending_start" in output
