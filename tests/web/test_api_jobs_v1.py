"""The public API's jobs through HTTP (web/api/jobs.py over services/api_jobs.py) on the SaaS
app with the pipeline in the same process (memory bus and storage, fake DNS, a scripted
SMTP prober): a CSV and an XLSX list to completion, their counts per row, the result
files (whole, filtered, csv/xlsx), the list's pages and status filter, deleting, another
account's jobs, the scopes, broken uploads (a problem each, no job, no file, no credit),
an unconfirmed account, credits charged as for a browser job, and the OpenAPI schema."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openpyxl
import pytest
import uvicorn
from litestar import Litestar
from sqlalchemy import func, select

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.adapters.db.models import JobRow
from mailvet.adapters.db.webhook_models import JobCallbackRow, WebhookDeliveryRow
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.domain.job import JobStatus
from mailvet.pipeline import object_keys
from mailvet.pipeline.job_files import decode_stored_layout, encode_stored_layout
from mailvet.pipeline.runner import Pipeline
from mailvet.services import api_jobs as api_jobs_service
from mailvet.services import api_keys, credits
from mailvet.settings import load_settings
from mailvet.tabular import convert
from mailvet.web.api import api_router
from mailvet.web.api.auth import PROBLEM_JSON
from mailvet.web.app import create_app
from mailvet.web.context import build_web_context
from mailvet.web.jobs.results import REWRITES_AT_ONCE, rewrite_turns
from tests.api_validation_helpers import ScriptedProber, account_with
from tests.fakes import FakeResolver
from tests.waiting import until
from tests.web.account_helpers import writing
from tests.web.jobs_helpers import every_turn_held
from tests.web.shell_helpers import cheap_hasher, look

pytestmark = pytest.mark.pipeline

JOBS = "/api/v1/jobs"
UPLOAD_LIMIT = 64 * 1024
FINAL = {status.value for status in JobStatus if status.is_final}
VIEW_FIELDS = {
    "id",
    "filename",
    "status",
    "rows_total",
    "rows_done",
    "unique_addresses",
    "cost",
    "counts",
    "reasons",
    "created_at",
    "started_at",
    "finished_at",
    "error",
}
# ScriptedProber: `gone` has no mailbox (550), `grey` is greylisted (451: unknown, refunded),
# anything else exists; gmial.com is a typo of a popular provider (risky)
CSV_LIST = (
    b"name,email\r\n"
    b"Ann,ann@example.com\r\n"
    b"Ann again,ANN@example.com\r\n"
    b"Gone,gone@example.com\r\n"
    b"Grey,grey@example.com\r\n"
    b"Typo,bob@gmial.com\r\n"
    b"Broken,not-an-address\r\n"
)
CSV_STATUSES = {"deliverable": 2, "undeliverable": 2, "risky": 1, "unknown": 1}


def xlsx_list() -> bytes:
    book = openpyxl.Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "Notes"
    notes.append(["nothing", "here"])
    people = book.create_sheet("People")
    people.append(["Name", "Mail"])
    people.append(["Ann", "ann@example.com"])
    people.append(["Gone", "gone@example.com"])
    people.append(["Zed", "zed@example.org"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@dataclass
class JobsApi:
    client: httpx.AsyncClient
    deps: Deps
    storage: MemoryStorage
    prober: ScriptedProber
    url: str
    account_id: str
    key: str
    runner: Pipeline
    app: Litestar

    async def start_pipeline(self) -> None:
        """For a test made with `pipeline=False`: the pipeline starts now."""
        await self.runner.start()

    async def take_credits(self, amount: int) -> None:
        """An administrator removes `amount` of the account's credits."""
        async with writing(self.url) as session:
            short = await credits.adjust(
                session, self.account_id, -amount, actor="test", reason="test",
                now=datetime.now(UTC),
            )  # fmt: skip
        assert short is None

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {key or self.key}"}

    async def a_key(self, *scopes: str, account_id: str | None = None) -> str:
        async with writing(self.url) as session:
            made = await api_keys.create_key(
                session,
                account_id or self.account_id,
                label="test",
                scopes=scopes,
                now=datetime.now(UTC),
            )
        return made.key

    async def upload(
        self,
        content: bytes = CSV_LIST,
        filename: str = "contacts.csv",
        *,
        key: str | None = None,
        media: str = "text/csv",
        **fields: str,
    ) -> httpx.Response:
        return await self.client.post(
            JOBS,
            files={"file": (filename, content, media)},
            data=fields or None,
            headers=self.headers(key),
        )

    async def get(self, path: str, *, key: str | None = None, **params: str) -> httpx.Response:
        return await self.client.get(path, params=params or None, headers=self.headers(key))

    async def delete(self, path: str, *, key: str | None = None) -> httpx.Response:
        return await self.client.delete(path, headers=self.headers(key))

    async def started(
        self, content: bytes = CSV_LIST, filename: str = "contacts.csv", **f: str
    ) -> str:
        answer = await self.upload(content, filename, **f)
        assert answer.status_code == 201, answer.text
        job_id: str = answer.json()["id"]
        return job_id

    async def final(self, job_id: str) -> dict[str, Any]:
        """Poll GET /api/v1/jobs/{id} (what a client does) until the job is final; its view."""
        async with asyncio.timeout(30):
            while True:
                answer = await self.get(f"{JOBS}/{job_id}")
                assert answer.status_code == 200, answer.text
                view: dict[str, Any] = answer.json()
                if view["status"] in FINAL:
                    return view
                await asyncio.sleep(0.01)  # the next look, as a client polls

    async def state(self) -> tuple[int, int, int]:
        """(the account's job rows, its ledger entries, its balance)."""
        async with look(self.url) as database, database.session_maker() as session:
            rows = await session.scalar(
                select(func.count()).select_from(JobRow).where(JobRow.owner == self.account_id)
            )
            entries = await session.scalar(
                select(func.count())
                .select_from(LedgerEntryRow)
                .where(LedgerEntryRow.account_id == self.account_id)
            )
            balance = (await credits.balance(session, self.account_id)).balance
        return int(rows or 0), int(entries or 0), balance

    def job_keys(self, job_id: str) -> list[str]:
        return [key for key in self.storage.objects if job_id in key]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def jobs_api(
    tmp_path: Path,
    *,
    balance: int = 100,
    env: Mapping[str, str] | None = None,
    storage: MemoryStorage | None = None,
    pipeline: bool = True,
) -> AsyncIterator[JobsApi]:
    """The app served by uvicorn in the test's own event loop, beside the pipeline: the test
    client would run the app in a thread of its own and hold the test's loop (and with it
    the pipeline, perhaps inside a write transaction) while a request waits for SQLite."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = load_settings(
            {
                "MAILVET_DATA_DIR": str(tmp_path / "data"),
                "MAILVET_PUBLIC_URL": base_url,
                **(env or {}),
            }
        )
        store = storage or MemoryStorage()
        prober = ScriptedProber()
        deps = await build_deps(
            settings,
            storage=store,
            bus=MemoryBus(),
            resolver=FakeResolver(),
            prober=prober,
            syntax_pool=None,
        )
        runner = Pipeline(deps)
        try:
            web = await build_web_context(settings, hasher=cheap_hasher())
            try:
                app = create_app(deps, web=web, areas=[api_router(max_upload_bytes=UPLOAD_LIMIT)])
                if pipeline:
                    await runner.start()
                server = _Server(uvicorn.Config(app, log_config=None, access_log=False))
                serving = asyncio.create_task(server.serve(sockets=[sock]))
                await until(lambda: server.started or serving.done())
                try:
                    async with look(settings.database) as database:
                        ann = await account_with(database, "ann@example.com", balance)
                    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
                        made = JobsApi(
                            client, deps, store, prober, settings.database, ann.id, "", runner, app
                        )
                        made.key = await made.a_key()
                        yield made
                finally:
                    server.should_exit = True
                    await serving
            finally:
                await runner.stop()
                await web.close()
        finally:
            await deps.close()


def problem(answer: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON), answer.headers
    body: dict[str, Any] = answer.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status
    if slug is not None:
        assert body["type"].endswith(slug), body
    return body


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


# --- a CSV and an XLSX list to completion ------------------------------------------------------


async def test_a_csv_list_runs_to_completion_and_counts_its_rows(tmp_path: Path) -> None:
    async with jobs_api(tmp_path) as a:
        created = await a.upload()
        assert created.status_code == 201, created.text
        body = created.json()
        assert set(body) == VIEW_FIELDS
        assert body["status"] == "pending_start"
        assert body["filename"] == "contacts.csv"
        assert (
            body["unique_addresses"] == 5
        )  # distinct valid: ANN@ is not ann@, not-an-address none
        assert created.headers["location"] == f"{JOBS}/{body['id']}"

        done = await a.final(body["id"])

        assert done["status"] == "file_completed", done
        assert (done["rows_total"], done["rows_done"]) == (6, 6)
        assert done["counts"] == CSV_STATUSES
        assert done["reasons"]["accepted"] == 2
        assert done["reasons"]["greylisted"] == 1
        assert done["error"] == ""
        assert done["started_at"] is not None and done["finished_at"] is not None
        assert _times(done, "created_at", "started_at", "finished_at") == sorted(
            _times(done, "created_at", "started_at", "finished_at")
        )
        # charged as a browser job: reserved at intake, settled at the end, the greylisted
        # address refunded
        rows, entries, balance = await a.state()
        assert done["cost"] == 100 - balance
        assert done["cost"] == done["unique_addresses"] - 1
        assert (rows, entries) == (1, 3)  # the opening grant, the reservation, the settlement


async def test_an_xlsx_list_with_a_chosen_sheet_and_column(tmp_path: Path) -> None:
    async with jobs_api(tmp_path) as a:
        job_id = await a.started(
            xlsx_list(),
            "people.xlsx",
            media="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            sheet="People",
            email_column="Mail",
            checks="dns",
        )
        done = await a.final(job_id)
        assert done["status"] == "file_completed", done
        assert done["rows_total"] == 3
        assert done["counts"] == {"deliverable": 0, "undeliverable": 0, "risky": 0, "unknown": 3}
        assert done["reasons"] == {"not_checked": 3}
        assert a.prober.recipients == []  # dns: no mail server asked

        whole = await a.get(f"{JOBS}/{job_id}/results")
        assert whole.status_code == 200, whole.text
        assert whole.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert 'filename="people.mailvet.xlsx"' in whole.headers["content-disposition"]
        sheet = openpyxl.load_workbook(io.BytesIO(whole.content), read_only=True)["People"]
        rows = [list(row) for row in sheet.iter_rows(values_only=True)]
        assert [row[:3] for row in rows] == [
            ["Name", "Mail", "mailvet_status"],
            ["Ann", "ann@example.com", "unknown"],
            ["Gone", "gone@example.com", "unknown"],
            ["Zed", "zed@example.org", "unknown"],
        ]
        fine = await a.get(f"{JOBS}/{job_id}/results", format="xlsx", status="unknown")
        assert fine.status_code == 200, fine.text
        kept = openpyxl.load_workbook(io.BytesIO(fine.content), read_only=True).active
        assert kept is not None
        assert len(list(kept.iter_rows(values_only=True))) == 4  # header and three rows


# --- results ---------------------------------------------------------------------------------


async def test_results_whole_and_filtered_by_segments_combined(tmp_path: Path) -> None:
    async with jobs_api(tmp_path) as a:
        job_id = await a.started()
        await a.final(job_id)

        whole = await a.get(f"{JOBS}/{job_id}/results", format="csv")
        assert whole.status_code == 200, whole.text
        assert whole.headers["content-type"].startswith("text/csv")
        assert whole.headers["content-disposition"] == 'attachment; filename="contacts.mailvet.csv"'
        statuses = [row["mailvet_status"] for row in csv_rows(whole.content)]
        assert sorted(statuses) == sorted(
            ["deliverable"] * 2 + ["undeliverable"] * 2 + ["risky", "unknown"]
        )

        both = await a.get(f"{JOBS}/{job_id}/results", status="deliverable,risky")
        assert both.status_code == 200, both.text
        rows = csv_rows(both.content)
        assert [(r["email"], r["mailvet_status"]) for r in rows] == [
            ("ann@example.com", "deliverable"),
            ("ANN@example.com", "deliverable"),
            ("bob@gmial.com", "risky"),
        ]
        assert "contacts.mailvet.deliverable+risky.csv" in both.headers["content-disposition"]

        rest = await a.get(f"{JOBS}/{job_id}/results", status="except-undeliverable")
        assert {r["mailvet_status"] for r in csv_rows(rest.content)} == {
            "deliverable",
            "risky",
            "unknown",
        }
        every = await a.get(f"{JOBS}/{job_id}/results", status="undeliverable,except-undeliverable")
        assert every.content == whole.content  # every status: the whole result

        problem(await a.get(f"{JOBS}/{job_id}/results", status="good"), 422, "invalid-request")
        problem(await a.get(f"{JOBS}/{job_id}/results", format="pdf"), 422, "invalid-request")


async def test_rewrites_wait_for_one_of_the_processs_few_turns(tmp_path: Path) -> None:
    """A filtered or converted result is rewritten in a thread: REWRITES_AT_ONCE at once in
    a web process. With every turn held, such requests wait (the result as stored does
    not), and are answered one after the other once a turn is free."""
    async with jobs_api(tmp_path) as a:
        job_id = await a.started()
        await a.final(job_id)
        turns = rewrite_turns(a.app.state)
        async with every_turn_held(turns, REWRITES_AT_ONCE) as free_one:
            assert turns.running == REWRITES_AT_ONCE

            whole = await a.get(f"{JOBS}/{job_id}/results")  # as stored: no turn needed
            assert whole.status_code == 200, whole.text
            results = f"{JOBS}/{job_id}/results"
            filtered = asyncio.create_task(a.get(results, status="deliverable"))
            converted = asyncio.create_task(a.get(results, format="xlsx"))
            await until(lambda: turns.waiting == 2 or filtered.done() or converted.done())
            assert not filtered.done() and not converted.done()
            assert turns.waiting == 2

            await free_one()  # one turn free: both, one at a time
            assert (await filtered).status_code == 200
            assert (await converted).status_code == 200
            assert turns.running == REWRITES_AT_ONCE - 1
        assert (turns.running, turns.waiting) == (0, 0)


HOSTILE = "=cmd|' /C calc'!A0"
XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def sheet_values(data: bytes) -> list[list[str]]:
    """The one sheet of a workbook, every cell text (never a formula), trailing empty cells
    cut."""
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert len(book.worksheets) == 1
    rows = []
    for row in book.worksheets[0].iter_rows():
        assert all(cell.value is None or cell.data_type == "s" for cell in row), row
        cells = ["" if cell.value is None else str(cell.value) for cell in row]
        while cells and not cells[-1]:
            cells.pop()
        rows.append(cells)
    return rows


def trimmed(rows: list[list[str]]) -> list[list[str]]:
    out = []
    for row in rows:
        cells = list(row)
        while cells and not cells[-1]:
            cells.pop()
        out.append(cells)
    return out


async def test_a_csv_lists_result_as_xlsx_whole_and_filtered(tmp_path: Path) -> None:
    """format=xlsx of a CSV list: one sheet of the CSV result's rows (header included, the
    mailvet columns too), every cell text: a hostile cell of the list stays inert."""
    hostile_list = CSV_LIST + f'"{HOSTILE}",eve@example.com\r\n'.encode()
    async with jobs_api(tmp_path) as a:
        job_id = await a.started(hostile_list)
        await a.final(job_id)
        as_csv = await a.get(f"{JOBS}/{job_id}/results")
        stored = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8"))))

        whole = await a.get(f"{JOBS}/{job_id}/results", format="xlsx")
        assert whole.status_code == 200, whole.text
        assert whole.headers["content-type"] == XLSX_MEDIA
        assert 'filename="contacts.mailvet.xlsx"' in whole.headers["content-disposition"]
        rows = sheet_values(whole.content)
        assert rows == trimmed(stored)
        assert rows[0][:3] == ["name", "email", "mailvet_status"]
        assert rows[-1][:3] == [HOSTILE, "eve@example.com", "deliverable"]
        assert openpyxl.load_workbook(io.BytesIO(whole.content)).sheetnames == ["contacts"]

        kept = await a.get(f"{JOBS}/{job_id}/results", format="xlsx", status="deliverable,risky")
        assert kept.status_code == 200, kept.text
        assert "contacts.mailvet.deliverable+risky.xlsx" in kept.headers["content-disposition"]
        wanted = [stored[0]] + [r for r in stored[1:] if r[2] in ("deliverable", "risky")]
        assert sheet_values(kept.content) == trimmed(wanted)
        assert [r[1] for r in sheet_values(kept.content)[1:]] == [
            "ann@example.com", "ANN@example.com", "bob@gmial.com", "eve@example.com"
        ]  # fmt: skip


async def test_an_xlsx_lists_result_as_csv_whole_and_filtered(tmp_path: Path) -> None:
    """format=csv of an XLSX list: the address sheet's rows (header and rows, the mailvet
    columns appended) as CSV; a text cell that starts like a formula gets a quote."""
    book = openpyxl.load_workbook(io.BytesIO(xlsx_list()))
    people = book["People"]
    people.append(["Grey", "grey@example.com"])
    people.append([None, "eve@example.com"])
    people.cell(row=people.max_row, column=1).value = HOSTILE
    people.cell(row=people.max_row, column=1).data_type = "s"  # text, as typed with a quote
    data = io.BytesIO()
    book.save(data)
    async with jobs_api(tmp_path) as a:
        job_id = await a.started(
            data.getvalue(), "people.xlsx", media=XLSX_MEDIA, sheet="People", email_column="Mail"
        )
        done = await a.final(job_id)
        assert done["status"] == "file_completed", done
        whole = await a.get(f"{JOBS}/{job_id}/results", format="csv")
        assert whole.status_code == 200, whole.text
        assert whole.headers["content-type"].startswith("text/csv")
        assert 'filename="people.mailvet.csv"' in whole.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(whole.content.decode("utf-8"))))
        sheet = openpyxl.load_workbook(
            io.BytesIO((await a.get(f"{JOBS}/{job_id}/results")).content)
        )
        stored = [
            ["" if v is None else str(v) for v in row]
            for row in sheet["People"].iter_rows(values_only=True)
        ]
        assert [row[:13] for row in rows[:-1]] == [row[:13] for row in stored[:-1]]
        assert rows[0][:4] == ["Name", "Mail", "mailvet_status", "mailvet_reason"]
        assert rows[-1][:3] == ["'" + HOSTILE, "eve@example.com", "deliverable"]  # inert
        assert {len(row) for row in rows} == {2 + 11}  # every verdict cell, empty ones too
        assert [row[2] for row in rows[1:]] == [
            "deliverable", "undeliverable", "deliverable", "unknown", "deliverable"
        ]  # fmt: skip

        kept = await a.get(f"{JOBS}/{job_id}/results", format="csv", status="undeliverable,unknown")
        assert kept.status_code == 200, kept.text
        assert "people.mailvet.undeliverable+unknown.csv" in kept.headers["content-disposition"]
        assert list(csv.reader(io.StringIO(kept.content.decode("utf-8")))) == [
            rows[0], rows[2], rows[4]
        ]  # fmt: skip

        # an XLSX list's result asked as XLSX is a sheet the list's workbook held already:
        # no count refuses it (a sheet as full as a workbook holds was refused, its header
        # counted again; here the limit is made smaller than the list to show the rule)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(api_jobs_service, "MAX_ROWS", 1)
            same = await a.get(f"{JOBS}/{job_id}/results", format="xlsx", status="deliverable")
            assert same.status_code == 200, same.text


async def test_a_result_too_big_for_a_workbook_is_a_422_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XLSX holds 1,048,576 rows: a result of more asked as XLSX is refused from its counts
    before anything is fetched; a cell too long for one is refused by the writer; neither
    leaves a file behind."""
    long_cell = CSV_LIST + b"Long," + b"x" * 40 + b"@example.com\r\n"
    async with jobs_api(tmp_path) as a:
        job_id = await a.started(long_cell)
        await a.final(job_id)
        results = f"{JOBS}/{job_id}/results"
        monkeypatch.setattr(api_jobs_service, "MAX_ROWS", 7)  # the header and 6 rows
        body = problem(await a.get(results, format="xlsx"), 422, "too-large-for-xlsx")
        assert "8 rows" in body["detail"] and "format=csv" in body["detail"], body
        fine = await a.get(results, format="xlsx", status="deliverable")  # header and 4
        assert fine.status_code == 200, fine.text
        monkeypatch.setattr(api_jobs_service, "MAX_ROWS", 1 << 20)
        monkeypatch.setattr(convert, "MAX_CELL_CHARS", 40)
        body = problem(await a.get(results, format="xlsx"), 422, "too-large-for-xlsx")
        assert "characters" in body["detail"], body
        assert (await a.get(results, format="csv")).status_code == 200
        scratch = a.deps.settings.scratch_dir
        assert not scratch.exists() or list(scratch.iterdir()) == []


async def test_a_result_asked_in_the_other_kind_is_not_a_link(tmp_path: Path) -> None:
    """The whole result in its own kind is the storage's link; in the other kind it is
    converted here."""
    storage = PresigningStorage()
    async with jobs_api(tmp_path, storage=storage) as a:
        job_id = await a.started()
        await a.final(job_id)
        assert (await a.get(f"{JOBS}/{job_id}/results", format="csv")).status_code == 307
        converted = await a.get(f"{JOBS}/{job_id}/results", format="xlsx")
        assert converted.status_code == 200, converted.text
        assert len(sheet_values(converted.content)) == 7  # the header and six rows


LINK = timedelta(seconds=60)


class PresigningStorage(MemoryStorage):
    """MemoryStorage that also hands out links, as S3Storage does."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def presigned_get(self, key: str, expires: timedelta = LINK) -> str:
        self.links.append(key)
        seconds = int(expires.total_seconds())
        return f"https://s3.example.test/mailvet/{key}?X-Amz-Expires={seconds}"


async def test_the_whole_result_is_a_short_lived_link_where_the_storage_presigns(
    tmp_path: Path,
) -> None:
    storage = PresigningStorage()
    async with jobs_api(tmp_path, storage=storage) as a:
        job_id = await a.started()
        await a.final(job_id)
        answer = await a.get(f"{JOBS}/{job_id}/results")
        assert answer.status_code == 307, answer.text
        assert answer.headers["location"].startswith("https://s3.example.test/mailvet/")
        assert storage.links == [object_keys.completed(job_id)]
        filtered = await a.get(f"{JOBS}/{job_id}/results", status="deliverable")
        assert filtered.status_code == 200  # a filtered one is made here
        assert {r["mailvet_status"] for r in csv_rows(filtered.content)} == {"deliverable"}


async def test_results_before_completion_and_of_a_failed_job_are_409(tmp_path: Path) -> None:
    async with jobs_api(tmp_path, pipeline=False) as a:
        job_id = await a.started()
        problem(await a.get(f"{JOBS}/{job_id}/results"), 409, "result-not-ready")
    async with jobs_api(tmp_path / "short", balance=7, pipeline=False) as a:
        job_id = await a.started()
        await a.take_credits(5)  # before intake reserves the list's 5
        await a.start_pipeline()
        failed = await a.final(job_id)
        assert failed["status"] == "error_insufficient_credits"
        problem(await a.get(f"{JOBS}/{job_id}/results"), 409, "result-not-ready")


# --- credits ---------------------------------------------------------------------------------


async def test_a_balance_too_low_for_the_list_is_402_and_starts_nothing(tmp_path: Path) -> None:
    """The list's cost (its distinct valid addresses, 5) is known once it is read: a
    balance under it is refused at once, nothing stored, no job, no ledger entry."""
    async with jobs_api(tmp_path, balance=4) as a:
        body = problem(await a.upload(), 402, "insufficient-credits")
        assert "5" in body["detail"] and "4" in body["detail"]
        assert await a.state() == (0, 1, 4)  # the grant alone
        assert not [key for key in a.storage.objects if "drafts/" in key or "uploaded" in key]


async def test_a_balance_spent_before_intake_ends_the_job_charged_nothing(tmp_path: Path) -> None:
    """The balance covered the list at the start and was spent before intake reserved it:
    the pipeline ends the job as error_insufficient_credits and takes nothing."""
    async with jobs_api(tmp_path, balance=7, pipeline=False) as a:
        created = await a.upload()
        assert created.status_code == 201, created.text
        await a.take_credits(5)
        await a.start_pipeline()
        failed = await a.final(created.json()["id"])
        assert failed["status"] == "error_insufficient_credits"
        assert "5" in failed["error"] and "2" in failed["error"]
        assert failed["cost"] == 0 and failed["started_at"] is None  # intake refused it
        assert failed["counts"] == {"deliverable": 0, "undeliverable": 0, "risky": 0, "unknown": 0}
        assert await a.state() == (1, 2, 2)  # the grant and the removal: nothing reserved


async def test_credits_off_charges_nothing(tmp_path: Path) -> None:
    async with jobs_api(tmp_path, balance=0, env={"MAILVET_CREDITS": "off"}) as a:
        done = await a.final(await a.started())
        assert done["status"] == "file_completed"
        assert done["cost"] == 0
        # started when intake accepted it, though no ledger entry says so
        times = _times(done, "created_at", "started_at", "finished_at")
        assert times == sorted(times), done
        assert done["counts"] == CSV_STATUSES
        assert await a.state() == (1, 0, 0)


async def test_a_job_accepted_before_intake_kept_its_time_started_at_its_reservation(
    tmp_path: Path,
) -> None:
    """A job whose stored layout has no acceptance time (accepted by an older intake) shows
    the time of its ledger reservation, as before."""
    async with jobs_api(tmp_path) as a:
        job_id = await a.started()
        done = await a.final(job_id)
        async with writing(a.url) as session:
            row = await session.get(JobRow, job_id)
            assert row is not None
            stored = decode_stored_layout(row.layout)
            assert stored.accepted_at is not None
            assert done["started_at"] == msgspec.to_builtins(stored.accepted_at)
            row.layout = encode_stored_layout(msgspec.structs.replace(stored, accepted_at=None))
            reserved = await session.scalar(
                select(LedgerEntryRow.created_at).where(
                    LedgerEntryRow.job_id == job_id, LedgerEntryRow.kind == "job_reserve"
                )
            )
        assert reserved is not None
        older = (await a.get(f"{JOBS}/{job_id}")).json()
        assert older["started_at"] == msgspec.to_builtins(reserved)
        assert older["started_at"] != done["started_at"]


# --- callback_url (issue 9 §3) ----------------------------------------------------------------


async def test_a_callback_url_is_kept_and_gets_the_jobs_event(tmp_path: Path) -> None:
    env = {"MAILVET_WEBHOOK_ALLOW_PRIVATE": "true"}  # the fake resolver answers 192.0.2.1
    async with jobs_api(tmp_path, env=env) as a:
        url = "https://hooks.example.com/mailvet?job=1"
        job_id = await a.started(callback_url=url)
        done = await a.final(job_id)
        async with look(a.url) as database, database.session_maker() as session:
            stored = await session.scalar(
                select(JobCallbackRow.url).where(JobCallbackRow.job_id == job_id)
            )
            sent = (
                (
                    await session.execute(
                        select(WebhookDeliveryRow).where(WebhookDeliveryRow.job_id == job_id)
                    )
                )
                .scalars()
                .all()
            )
        assert stored == url
        [delivery] = sent
        assert (delivery.url, delivery.type) == (url, "job.completed")
        event = msgspec.json.decode(delivery.body)
        assert event["data"]["job"]["id"] == job_id
        assert event["data"]["job"]["status"] == done["status"] == "file_completed"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://hooks.example.com/x", "private"),  # resolves to 192.0.2.1: not public
        ("http://127.0.0.1:8080/hook", "private"),
        ("http://2130706433/hook", "private"),  # 127.0.0.1 written as a number
        ("ftp://hooks.example.com/x", ""),
        ("https://user:pw@hooks.example.com/x", ""),
        ("not a url", ""),
    ],
)
async def test_a_callback_url_that_may_not_be_called_is_422_and_starts_nothing(
    tmp_path: Path, url: str, why: str
) -> None:
    async with jobs_api(tmp_path) as a:
        body = problem(await a.upload(callback_url=url), 422, "invalid-request")
        assert body["detail"].startswith("callback_url: ")
        assert why in body["detail"]
        assert await a.state() == (0, 1, 100)
        assert a.storage.objects == {}


# --- the list ----------------------------------------------------------------------------------


async def test_the_list_is_paginated_newest_first_and_filtered_by_status(tmp_path: Path) -> None:
    async with jobs_api(tmp_path, balance=15, pipeline=False) as a:
        started = [await a.started() for _ in range(3)]  # the balance covers each one ...
        await a.take_credits(3)  # ... but only two of them once intake reserves them
        await a.start_pipeline()
        views = {job_id: await a.final(job_id) for job_id in started}
        [failed] = [i for i, v in views.items() if v["status"] == "error_insufficient_credits"]
        done = [job_id for job_id in started if job_id != failed]
        assert all(views[job_id]["status"] == "file_completed" for job_id in done)

        first = await a.get(JOBS, per_page="2")
        assert first.status_code == 200, first.text
        page = first.json()
        assert set(page) == {"items", "total", "page", "per_page", "has_more"}
        assert (page["total"], page["page"], page["per_page"], page["has_more"]) == (3, 1, 2, True)
        assert all(set(item) == VIEW_FIELDS for item in page["items"])
        second = (await a.get(JOBS, per_page="2", page="2")).json()
        assert second["has_more"] is False
        ids = [item["id"] for item in page["items"] + second["items"]]
        assert sorted(ids) == sorted([*done, failed])
        created = [item["created_at"] for item in page["items"] + second["items"]]
        assert created == sorted(created, reverse=True)

        completed = (await a.get(JOBS, status="file_completed")).json()
        assert sorted(item["id"] for item in completed["items"]) == sorted(done)
        assert completed["total"] == 2
        short = (await a.get(JOBS, status="error_insufficient_credits")).json()
        assert [item["id"] for item in short["items"]] == [failed]
        assert (await a.get(JOBS, status="file_queued")).json()["items"] == []

        problem(await a.get(JOBS, status="done"), 422, "invalid-request")
        problem(await a.get(JOBS, page="0"), 422)
        problem(await a.get(JOBS, per_page="101"), 422)
        problem(await a.get(JOBS, page="x"), 422)
        problem(await a.get(JOBS, page=str(10**7)), 422)
        problem(await a.get(JOBS, page="9" * 30), 422)  # past SQL's integers: still a 422


# --- deleting --------------------------------------------------------------------------------


async def test_delete_answers_204_and_the_job_and_its_files_are_gone(tmp_path: Path) -> None:
    async with jobs_api(tmp_path) as a:
        job_id = await a.started()
        await a.final(job_id)
        assert a.job_keys(job_id)  # the list and its result are stored

        answer = await a.delete(f"{JOBS}/{job_id}")

        assert answer.status_code == 204, answer.text
        assert answer.content == b""
        assert a.job_keys(job_id) == []
        problem(await a.get(f"{JOBS}/{job_id}"), 404, "job-not-found")
        problem(await a.delete(f"{JOBS}/{job_id}"), 404)
        assert (await a.state())[0] == 0


async def test_a_running_job_cannot_be_deleted(tmp_path: Path) -> None:
    async with jobs_api(tmp_path) as a:
        job_id = await a.started(b"email\nslow@example.com\n", "slow.csv")
        async with asyncio.timeout(10):
            while not a.prober.asked("slow"):  # noqa: ASYNC110 - the prober holds the job
                await asyncio.sleep(0.01)
        problem(await a.delete(f"{JOBS}/{job_id}"), 409, "job-running")
        assert (await a.get(f"{JOBS}/{job_id}")).json()["status"] == "file_validation_in_progress"
        assert a.job_keys(job_id)
        a.prober.release.set()
        assert (await a.final(job_id))["status"] == "file_completed"
        assert (await a.delete(f"{JOBS}/{job_id}")).status_code == 204


# --- another account, unknown ids, scopes -------------------------------------------------------


async def test_another_accounts_job_is_404_on_every_route(tmp_path: Path) -> None:
    async with jobs_api(tmp_path) as a:
        job_id = await a.started()
        await a.final(job_id)
        async with look(a.url) as database:
            bob = await account_with(database, "bob@example.com", 100)
        other = await a.a_key(account_id=bob.id)
        for target in (job_id, "0" * 32, "not-an-id", "x" * 300):
            for answer in (
                await a.get(f"{JOBS}/{target}", key=other),
                await a.get(f"{JOBS}/{target}/results", key=other),
                await a.delete(f"{JOBS}/{target}", key=other),
            ):
                body = problem(answer, 404, "job-not-found")
                assert body["detail"] == "no such job"
        listed = (await a.get(JOBS, key=other)).json()
        assert (listed["items"], listed["total"]) == ([], 0)
        assert a.job_keys(job_id)  # still there for its owner
        assert (await a.get(f"{JOBS}/{job_id}")).status_code == 200


async def test_scopes(tmp_path: Path) -> None:
    async with jobs_api(tmp_path) as a:
        job_id = await a.started()
        await a.final(job_id)
        reader = await a.a_key("jobs:read")
        validator = await a.a_key("validate")
        writer = await a.a_key("jobs:write")

        problem(await a.upload(key=reader), 403, "insufficient-scope")
        problem(await a.delete(f"{JOBS}/{job_id}", key=reader), 403, "insufficient-scope")
        assert (await a.get(f"{JOBS}/{job_id}", key=reader)).status_code == 200
        assert (await a.get(f"{JOBS}/{job_id}/results", key=reader)).status_code == 200
        assert (await a.get(JOBS, key=reader)).status_code == 200
        for path in (JOBS, f"{JOBS}/{job_id}", f"{JOBS}/{job_id}/results"):
            problem(await a.get(path, key=validator), 403, "insufficient-scope")
            problem(await a.get(path, key=writer), 403, "insufficient-scope")
        problem(await a.upload(key=validator), 403, "insufficient-scope")
        assert (await a.state())[0] == 1
        problem(await a.client.get(JOBS), 401, "missing-api-key")
        assert (await a.delete(f"{JOBS}/{job_id}", key=writer)).status_code == 204


# --- broken uploads ----------------------------------------------------------------------------


def multipart(*parts: tuple[str, str | None, bytes]) -> tuple[bytes, str]:
    """A hand-made multipart body of (name, filename, content) parts, and its content type."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--xyz\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + b"--xyz--\r\n", "multipart/form-data; boundary=xyz"


BROKEN: list[tuple[str, tuple[tuple[str, str | None, bytes], ...], int, str]] = [
    ("no file part", (("email_column", None, b"email"),), 422, "no file"),
    ("a file field that is not a file", (("file", None, b"a@b.c"),), 422, "must be a file"),
    ("an empty file", (("file", "empty.csv", b""),), 422, "empty"),
    ("not a list", (("file", "a.csv", b"\x00\x01\x02" * 50),), 422, "binary"),
    ("no address column", (("file", "a.csv", b"name,town\nAnn,Paris\n"),), 422, "email column"),
    (
        "an unknown column",
        (("file", "a.csv", CSV_LIST), ("email_column", None, b"mail_address")),
        422,
        "mail_address",
    ),
    (
        "an unknown sheet",
        (("file", "a.xlsx", xlsx_list()), ("sheet", None, b"Nope")),
        422,
        "Nope",
    ),
    ("bad checks", (("file", "a.csv", CSV_LIST), ("checks", None, b"everything")), 422, "checks"),
    ("too large", (("file", "big.csv", b"a@example.com\n" * 6000),), 413, "larger"),
]


@pytest.mark.parametrize(("what", "parts", "status", "says"), BROKEN, ids=[b[0] for b in BROKEN])
async def test_a_broken_upload_is_a_problem_and_leaves_nothing(
    tmp_path: Path,
    what: str,
    parts: tuple[tuple[str, str | None, bytes], ...],
    status: int,
    says: str,
) -> None:
    async with jobs_api(tmp_path) as a:
        before = await a.state()
        body, content_type = multipart(*parts)
        answer = await a.client.post(
            JOBS, content=body, headers={**a.headers(), "content-type": content_type}
        )
        got = problem(answer, status)
        assert says in got["detail"], got
        assert await a.state() == before
        assert a.storage.objects == {}
        assert not list((tmp_path / "data" / "tmp").glob("*"))  # no scratch file left


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"file": "a.csv"}', "application/json"),
        (b"email\na@example.com\n", "text/csv"),
        (b"file=a.csv", "application/x-www-form-urlencoded"),
    ],
)
async def test_a_body_that_is_not_multipart_is_415(
    tmp_path: Path, content: bytes, content_type: str
) -> None:
    async with jobs_api(tmp_path) as a:
        answer = await a.client.post(
            JOBS, content=content, headers={**a.headers(), "content-type": content_type}
        )
        problem(answer, 415, "unsupported-media-type")
        assert (await a.state())[0] == 0


async def test_an_unconfirmed_account_may_not_start_a_job(tmp_path: Path) -> None:
    async with jobs_api(tmp_path) as a:
        async with look(a.url) as database:
            bob = await account_with(database, "bob@example.com", 10, confirmed=False)
        key = await a.a_key(account_id=bob.id)
        problem(await a.upload(key=key), 403, "account-not-confirmed")
        assert a.storage.objects == {}
        listed = (await a.get(JOBS, key=key)).json()  # reading is still allowed
        assert listed["total"] == 0


# --- the schema ------------------------------------------------------------------------------


async def test_the_schema_documents_every_jobs_route_with_examples(tmp_path: Path) -> None:
    async with jobs_api(tmp_path, pipeline=False) as a:
        schema = (await a.client.get("/schema/openapi.json")).json()
        paths = schema["paths"]
        start = paths[JOBS]["post"]
        form = start["requestBody"]["content"]["multipart/form-data"]
        # the request example is a list the route takes (a fuzzer sending it gets a 201)
        (example,) = form["examples"].values()
        fields = dict(example["value"])
        sent = await a.upload(fields.pop("file").encode(), **fields)
        assert sent.status_code == 201, sent.text
    assert form["schema"]["required"] == ["file"]
    assert set(form["schema"]["properties"]) == {
        "file", "email_column", "sheet", "checks", "callback_url"
    }  # fmt: skip
    assert {"201", "401", "402", "403", "413", "415", "422"} <= set(start["responses"])
    assert start["responses"]["201"]["content"]["application/json"]["examples"]
    short = start["responses"]["402"]["content"][PROBLEM_JSON]["examples"]
    assert [e["value"]["type"].endswith("insufficient-credits") for e in short.values()] == [True]
    assert "402" in start["description"] and "callback_url" in start["description"]
    listing = paths[JOBS]["get"]
    assert {"200", "401", "403", "422"} <= set(listing["responses"])
    assert listing["responses"]["200"]["content"]["application/json"]["examples"]
    one = paths[f"{JOBS}/{{job_id}}"]
    assert {"200", "404"} <= set(one["get"]["responses"])
    assert one["get"]["responses"]["200"]["content"]["application/json"]["examples"]
    assert {"204", "404", "409"} <= set(one["delete"]["responses"])
    assert one["delete"]["responses"]["409"]["content"][PROBLEM_JSON]["examples"]
    results = paths[f"{JOBS}/{{job_id}}/results"]["get"]
    assert {"200", "307", "404", "409", "422"} <= set(results["responses"])
    assert {p["name"] for p in results["parameters"]} >= {"job_id", "status", "format"}
    assert results["responses"]["409"]["content"][PROBLEM_JSON]["examples"]
    files = results["responses"]["200"]["content"]
    assert set(files) == {"text/csv", XLSX_MEDIA}
    for media in files.values():
        assert media["schema"] == {"type": "string", "format": "binary"}
        assert media["examples"]
    assert "Location" in results["responses"]["307"]["headers"]
    # Litestar's own 400 (application/json, no example): no jobs route answers it
    for item in (paths[JOBS], paths[f"{JOBS}/{{job_id}}"], paths[f"{JOBS}/{{job_id}}/results"]):
        for operation in item.values():
            assert "400" not in operation["responses"], operation["operationId"]


def _times(view: dict[str, Any], *names: str) -> list[datetime]:
    """The view's times as datetimes (as text, ':05Z' sorts after ':05.000001Z')."""
    return [datetime.fromisoformat(view[name]) for name in names]
