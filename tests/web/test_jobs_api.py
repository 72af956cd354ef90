"""The web role's job API and health, edge to edge on in-memory adapters and a real Pipeline."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import openpyxl
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.domain.job import JobStatus
from mailvet.domain.ports import MessageBus, ObjectStorage
from mailvet.pipeline import object_keys
from mailvet.pipeline.runner import Pipeline
from mailvet.settings import load_settings
from mailvet.web.app import create_app
from tests.fakes import FakeProber, FakeResolver, WatchedJobs

pytestmark = pytest.mark.pipeline

FINAL = {status.value for status in JobStatus if status.is_final}
CSV_LIST = b"email,name\nalice@example.com,Alice\nnot-an-address,Bob\n"
MULTIPART = "multipart/form-data; boundary=xyz"
END = b"\r\n--xyz--\r\n"


NEXT = b"\r\n"  # ends a part's body before the next part


def part(name: str, filename: str | None = None) -> bytes:
    """The head of one part of a hand-made multipart body (boundary `xyz`)."""
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return f"--xyz\r\nContent-Disposition: {disposition}\r\n\r\n".encode()


class PresigningStorage(MemoryStorage):
    """MemoryStorage that also hands out links, as S3Storage does."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, timedelta]] = []

    def presigned_get(self, key: str, expires: timedelta = timedelta(seconds=60)) -> str:
        self.links.append((key, expires))
        return f"https://s3.example.test/mailvet/{key}?X-Amz-Signature=abc"


class PingBus(MemoryBus):
    """A bus with a broker behind it: `ping` answers `answer`, or raises it."""

    def __init__(self, answer: bool | Exception) -> None:
        super().__init__()
        self.answer = answer

    async def ping(self) -> bool:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def make_deps(
    data_dir: Path, *, storage: ObjectStorage | None = None, bus: MessageBus | None = None
) -> Deps:
    settings = load_settings({"MAILVET_DATA_DIR": str(data_dir)})
    return await build_deps(
        settings,
        jobs=WatchedJobs(),
        storage=storage or MemoryStorage(),
        bus=bus or MemoryBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def deps(data_dir: Path) -> AsyncIterator[Deps]:
    deps = await make_deps(data_dir)
    try:
        yield deps
    finally:
        await deps.close()


@pytest.fixture
async def pipeline(deps: Deps) -> AsyncIterator[Pipeline]:
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        yield pipeline
    finally:
        await pipeline.stop()


async def client_for(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
async def client(deps: Deps) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The API with no pipeline running: jobs stay pending_start."""
    async for client in client_for(create_app(deps)):
        yield client


@pytest.fixture
async def live_client(deps: Deps, pipeline: Pipeline) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The API over a running pipeline."""
    async for client in client_for(create_app(deps)):
        yield client


def scratch_files(data_dir: Path) -> list[Path]:
    scratch = data_dir / "tmp"
    return sorted(scratch.iterdir()) if scratch.exists() else []


async def upload(
    client: AsyncTestClient[Litestar],
    content: bytes = CSV_LIST,
    filename: str = "contacts.csv",
    **fields: str,
) -> Any:
    return await client.post(
        "/api/jobs", files={"file": (filename, content, "text/csv")}, data=fields or None
    )


async def wait_final(client: AsyncTestClient[Litestar], deps: Deps, job_id: str) -> dict[str, Any]:
    """The API's view of the job once the repository says it is final."""
    assert isinstance(deps.jobs, WatchedJobs)
    await asyncio.wait_for(deps.jobs.final(job_id), 30)
    response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] in FINAL
    return body


# --- the happy path ------------------------------------------------------------------------


async def test_upload_follow_and_download_a_csv(
    live_client: AsyncTestClient[Litestar], deps: Deps, data_dir: Path
) -> None:
    created = await upload(live_client, checks="syntax")
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert created.json() == {"id": job_id, "status": "pending_start"}

    done = await wait_final(live_client, deps, job_id)
    assert done == {
        "id": job_id,
        "status": "file_completed",
        "rows_done": 2,
        "rows_total": 2,
        "error": "",
    }
    job = await deps.jobs.get(job_id)
    assert job.file.filename == "contacts.csv"
    assert job.file.checks.value == "syntax"

    result = await live_client.get(f"/api/jobs/{job_id}/result")
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("text/csv")
    assert result.headers["content-disposition"] == 'attachment; filename="contacts.mailvet.csv"'
    assert int(result.headers["content-length"]) == len(result.content)
    rows = list(csv.DictReader(io.StringIO(result.content.decode("utf-8-sig"))))
    assert [(r["email"], r["name"], r["mailvet_status"], r["mailvet_reason"]) for r in rows] == [
        ("alice@example.com", "Alice", "unknown", "not_checked"),
        ("not-an-address", "Bob", "undeliverable", "invalid_syntax"),
    ]

    summary = await live_client.get(f"/api/jobs/{job_id}/summary")
    assert summary.status_code == 200
    assert summary.json()["rows"] == 2
    assert summary.json()["by_status"] == {"unknown": 1, "undeliverable": 1}
    assert summary.json()["result_kind"] == "csv"

    assert scratch_files(data_dir) == []  # the upload and the download copy are gone


async def test_xlsx_in_xlsx_out_with_a_chosen_column(
    live_client: AsyncTestClient[Litestar], deps: Deps, data_dir: Path
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["name", "work mail"])
    sheet.append(["Ann", "ann@example.org"])
    buffer = io.BytesIO()
    book.save(buffer)

    created = await upload(
        live_client,
        buffer.getvalue(),
        "C:\\Users\\me\\Ünïcode list.xlsx",  # old browsers send the whole path
        checks="SYNTAX",
        email_column="work mail",
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert (await wait_final(live_client, deps, job_id))["status"] == "file_completed"

    result = await live_client.get(f"/api/jobs/{job_id}/result")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert result.headers["content-disposition"] == (
        'attachment; filename="_n_code list.mailvet.xlsx"; '
        "filename*=UTF-8''%C3%9Cn%C3%AFcode%20list.mailvet.xlsx"
    )
    out = openpyxl.load_workbook(io.BytesIO(result.content), read_only=True)
    values = [list(row) for row in out.worksheets[0].iter_rows(values_only=True)]
    out.close()
    header = values[0]
    assert header[:2] == ["name", "work mail"]
    status_at = header.index("mailvet_status")
    assert values[1][status_at] == "unknown"
    assert scratch_files(data_dir) == []


async def test_a_list_the_pipeline_rejects(
    live_client: AsyncTestClient[Litestar], deps: Deps
) -> None:
    """Accepted by the API (201), then failed by intake: the status says why, no result."""
    created = await upload(live_client, b"name,phone\nBob,123\n", checks="syntax")
    assert created.status_code == 201
    job_id = created.json()["id"]
    done = await wait_final(live_client, deps, job_id)
    assert JobStatus(done["status"]).is_error
    assert done["error"]
    result = await live_client.get(f"/api/jobs/{job_id}/result")
    assert result.status_code == 409
    assert result.json() == {"error": f"job {job_id} is {done['status']}"}


async def test_result_redirects_to_a_presigned_link(data_dir: Path) -> None:
    storage = PresigningStorage()
    deps = await make_deps(data_dir, storage=storage)
    pipeline = Pipeline(deps)
    await pipeline.start()
    try:
        async for client in client_for(create_app(deps)):
            job_id = (await upload(client, checks="syntax")).json()["id"]
            assert (await wait_final(client, deps, job_id))["status"] == "file_completed"

            result = await client.get(f"/api/jobs/{job_id}/result", follow_redirects=False)
            assert result.status_code == 307
            assert result.headers["location"] == (
                f"https://s3.example.test/mailvet/{object_keys.completed(job_id)}?X-Amz-Signature=abc"
            )
            assert storage.links == [(object_keys.completed(job_id), timedelta(seconds=60))]
    finally:
        await pipeline.stop()
        await deps.close()
    assert scratch_files(data_dir) == []


# --- bad input: 400, 404, 409, 413, never 500 ------------------------------------------------


async def test_no_file(client: AsyncTestClient[Litestar], deps: Deps) -> None:
    response = await client.post("/api/jobs", files={"checks": (None, "syntax")})
    assert response.status_code == 400
    assert response.json() == {"error": "no file: send the list in the multipart field 'file'"}
    assert await deps.jobs.list_jobs() == []


async def test_browser_form_with_no_file_chosen(client: AsyncTestClient[Litestar]) -> None:
    body = part("file", filename="") + END
    response = await client.post("/api/jobs", content=body, headers={"content-type": MULTIPART})
    assert response.status_code == 400
    assert response.json() == {"error": "no file: send the list in the multipart field 'file'"}


async def test_not_multipart(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/api/jobs", json={"file": "a@b.c"})
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]
    response = await client.post(
        "/api/jobs", content=b"x", headers={"content-type": "multipart/form-data"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "multipart/form-data without a boundary"}


async def test_file_field_that_is_not_a_file(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/api/jobs", files={"file": (None, "a@b.c")})
    assert response.status_code == 400
    assert response.json()["error"] == "the field 'file' must be a file (a part with a filename)"


async def test_malformed_multipart(client: AsyncTestClient[Litestar], data_dir: Path) -> None:
    body = part("file", filename="a.csv") + b"email\n"  # cut off: no closing boundary
    response = await client.post("/api/jobs", content=body, headers={"content-type": MULTIPART})
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed multipart body")
    assert scratch_files(data_dir) == []


async def test_empty_file(client: AsyncTestClient[Litestar], deps: Deps, data_dir: Path) -> None:
    response = await upload(client, b"", checks="syntax")
    assert response.status_code == 400
    assert response.json() == {"error": "the uploaded file is empty"}
    assert await deps.jobs.list_jobs() == []
    assert scratch_files(data_dir) == []


async def test_bad_checks(client: AsyncTestClient[Litestar], deps: Deps, data_dir: Path) -> None:
    response = await upload(client, checks="everything")
    assert response.status_code == 400
    assert response.json() == {"error": "checks must be one of syntax, dns, smtp, not 'everything'"}
    assert await deps.jobs.list_jobs() == []
    assert scratch_files(data_dir) == []


async def test_form_field_too_long(client: AsyncTestClient[Litestar]) -> None:
    response = await upload(client, email_column="x" * 5000)
    assert response.status_code == 400
    assert response.json() == {"error": "the form field 'email_column' is longer than 1024 bytes"}


async def test_too_large_announced(deps: Deps, data_dir: Path) -> None:
    async for client in client_for(create_app(deps, max_upload_bytes=1000)):
        response = await upload(client, b"email\n" + b"a@example.com\n" * 200)
        assert response.status_code == 413
        assert response.json() == {"error": "the upload is larger than the limit of 1000 bytes"}
    assert await deps.jobs.list_jobs() == []
    assert scratch_files(data_dir) == []


async def post_in_chunks(
    app: Litestar, path: str, content_type: str, chunks: list[bytes]
) -> tuple[int, bytes]:
    """POST a chunked body (no content-length) straight through ASGI, one message a chunk:
    the test client would send it as one message."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    pending = iter(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(pending, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", content_type.encode()), (b"transfer-encoding", b"chunked")],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def test_too_large_streamed_without_content_length(deps: Deps, data_dir: Path) -> None:
    """A chunked body is cut off as it streams in; the partly written file is removed."""
    chunks = [part("file", "big.csv"), b"email\n"] + [b"a@example.com\n" * 100] * 100 + [END]
    app = create_app(deps, max_upload_bytes=10_000)
    async for _ in client_for(app):  # runs the app's lifespan around the raw ASGI call
        status, body = await post_in_chunks(app, "/api/jobs", MULTIPART, chunks)
        assert status == 413
        assert msgspec.json.decode(body) == {
            "error": "the upload is larger than the limit of 10000 bytes"
        }
    assert await deps.jobs.list_jobs() == []
    assert scratch_files(data_dir) == []


async def test_chunked_upload_within_the_limit(deps: Deps, data_dir: Path) -> None:
    """The same raw path accepts a body that arrives in many small chunks."""
    rows = b"".join(b"user%d@example.com\n" % i for i in range(300))
    chunks = [part("file", "list.csv"), b"email\n"]
    chunks += [rows[i : i + 97] for i in range(0, len(rows), 97)]
    chunks += [NEXT + part("checks") + b"dns" + END]
    app = create_app(deps)
    async for _ in client_for(app):
        status, body = await post_in_chunks(app, "/api/jobs", MULTIPART, chunks)
    assert status == 201, body
    job_id = msgspec.json.decode(body)["id"]
    job = await deps.jobs.get(job_id)
    assert job.file.checks.value == "dns"
    assert await deps.storage.get_bytes(object_keys.uploaded(job_id)) == b"email\n" + rows
    assert scratch_files(data_dir) == []


async def test_unknown_and_malformed_job_ids(client: AsyncTestClient[Litestar]) -> None:
    missing = "0" * 32
    for path in ("", "/result", "/summary"):
        response = await client.get(f"/api/jobs/{missing}{path}")
        assert response.status_code == 404
        assert response.json() == {"error": f"no such job: {missing}"}
    for bad in ("not%20a%20job", "x" * 65, "%2E%2E", "a.b", "%00", "é"):
        response = await client.get(f"/api/jobs/{bad}")
        assert response.status_code == 404, bad
        assert response.json() == {"error": "no such job"}


async def test_result_before_completion(client: AsyncTestClient[Litestar], deps: Deps) -> None:
    """No pipeline runs here: the job stays pending_start."""
    created = await upload(client, checks="syntax")
    assert created.status_code == 201
    job_id = created.json()["id"]
    assert await deps.storage.exists(object_keys.uploaded(job_id))

    status = await client.get(f"/api/jobs/{job_id}")
    assert status.json() == {
        "id": job_id,
        "status": "pending_start",
        "rows_done": 0,
        "rows_total": 0,
        "error": "",
    }
    for path in ("result", "summary"):
        response = await client.get(f"/api/jobs/{job_id}/{path}")
        assert response.status_code == 409
        assert response.json() == {"error": f"job {job_id} is pending_start"}


async def test_default_checks_come_from_settings(
    client: AsyncTestClient[Litestar], deps: Deps
) -> None:
    created = await upload(client, email_column="  ")
    job = await deps.jobs.get(created.json()["id"])
    assert job.file.checks is deps.settings.engine.checks
    assert job.file.email_column is None


async def test_unknown_route_and_method_answer_json(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/nothing")
    assert response.status_code == 404
    assert set(response.json()) == {"error"}
    response = await client.delete("/api/jobs/" + "0" * 32)
    assert response.status_code == 405
    assert set(response.json()) == {"error"}


# --- health and schema ------------------------------------------------------------------------


async def test_health_ok_with_the_memory_bus(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}  # the detail: on the health server only


@pytest.mark.parametrize("answer", [True, False, ConnectionError("refused")])
async def test_health_follows_the_bus_ping(data_dir: Path, answer: bool | Exception) -> None:
    deps = await make_deps(data_dir, bus=PingBus(answer))
    try:
        async for client in client_for(create_app(deps)):
            response = await client.get("/health")
    finally:
        await deps.close()
    if answer is True:
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
    else:
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable"}


async def test_openapi_schema_renders(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/health", "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/result"} <= set(paths)


async def test_an_upload_picks_the_sheet(
    live_client: AsyncTestClient[Litestar], deps: Deps, data_dir: Path
) -> None:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "Staff"
    first.append(["email"])
    first.append(["staff@example.org"])
    book.create_sheet("Clients").append(["email"])
    book["Clients"].append(["ann@example.org"])
    book["Clients"].append(["bob@example.org"])
    buffer = io.BytesIO()
    book.save(buffer)
    created = await upload(
        live_client, buffer.getvalue(), "list.xlsx", checks="SYNTAX", sheet="Clients"
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    body = await wait_final(live_client, deps, job_id)
    assert body["status"] == "file_completed" and body["rows_total"] == 2
    result = await live_client.get(f"/api/jobs/{job_id}/result")
    out = openpyxl.load_workbook(io.BytesIO(result.content), read_only=True)
    assert out.sheetnames == ["Staff", "Clients"]
    assert len(list(out["Clients"].iter_rows(values_only=True))) == 3
    out.close()
