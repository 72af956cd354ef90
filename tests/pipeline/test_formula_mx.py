"""A domain's DNS cannot put a formula into mailvet_mx (issue 7 §3): whatever MX host name a
resolver hands over, the result's cell shows as text. (The DNS adapter also refuses such
names: tests/integration/test_dns_hostile.py.)"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.domain.job import JobStatus
from mailvet.domain.ports import MailRoute, RouteKind
from mailvet.domain.verdict import Check
from mailvet.pipeline.runner import Pipeline
from mailvet.pipeline.submit import fetch_result, submit_file
from mailvet.settings import load_settings
from tests.fakes import FakeProber, FakeResolver, WatchedJobs

pytestmark = pytest.mark.pipeline

EVIL = "=cmd|' /C calc'!A0"


@pytest.mark.parametrize("kind", ["csv", "txt"])
async def test_a_formula_mx_host_is_written_as_text(tmp_path: Path, kind: str) -> None:
    jobs = WatchedJobs()
    deps = await build_deps(
        load_settings({"MAILVET_DATA_DIR": str(tmp_path / "data")}),
        jobs=jobs,
        storage=MemoryStorage(),
        resolver=FakeResolver(lambda domain: MailRoute(RouteKind.MX, (EVIL,), (0,))),
        prober=FakeProber(),
        syntax_pool=None,
    )
    source = tmp_path / f"list.{kind}"
    source.write_text("email\nann@evil.example\n" if kind == "csv" else "ann@evil.example\n")
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        job_id = await submit_file(deps.jobs, deps.storage, deps.bus, source, checks=Check.SMTP)
        assert await jobs.final(job_id) is JobStatus.COMPLETED
        out = tmp_path / "out.csv"
        await fetch_result(deps.jobs, deps.storage, job_id, out)
    finally:
        await pipeline.stop()
        await deps.close()
    header, row = list(csv.reader(io.StringIO(out.read_text(), newline="")))
    mx = row[header.index("mailvet_mx")]
    assert mx == "'" + EVIL
    assert f'"\'{EVIL}"' in out.read_text()
