"""The upload guards (issue 7 §4): a client that stops sending mid-body is cut off after
MAILVET_WEB_UPLOAD_IDLE_SECONDS and its partial file removed; a file name that is not UTF-8
or too long is a clear 400 (never a Python repr)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.settings import load_settings
from mailvet.web.app import create_app
from mailvet.web.jobs.upload import MAX_FILENAME_CHARS
from tests.fakes import FakeProber, FakeResolver, WatchedJobs
from tests.web.test_jobs_api import END, MULTIPART, client_for, scratch_files

pytestmark = pytest.mark.pipeline

IDLE = 0.3  # seconds the app waits for the next byte in these tests


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def guarded_deps(data_dir: Path) -> Deps:
    """Deps on in-memory adapters, with an upload idle limit of IDLE seconds."""
    settings = load_settings(
        {"MAILVET_DATA_DIR": str(data_dir), "MAILVET_WEB_UPLOAD_IDLE_SECONDS": str(IDLE)}
    )
    return await build_deps(
        settings,
        jobs=WatchedJobs(),
        storage=MemoryStorage(),
        bus=MemoryBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )


@pytest.fixture
async def deps(data_dir: Path) -> AsyncIterator[Deps]:
    deps = await guarded_deps(data_dir)
    try:
        yield deps
    finally:
        await deps.close()


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "headers": [(b"content-type", MULTIPART.encode()), (b"transfer-encoding", b"chunked")],
        "state": {},
    }


def _head(filename: bytes) -> bytes:
    return (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\n\r\n'
    )


async def test_a_client_that_stops_sending_is_cut_off_and_its_file_removed(
    deps: Deps, data_dir: Path
) -> None:
    """The body stops after its first rows and the client never disconnects: the app answers
    408 on its own, and the partial file is gone before the answer."""
    chunks = [_head(b"list.csv"), b"email\n" + b"a@example.com\n" * 50]
    stalled = asyncio.Event()  # set once the client has sent all it will send
    sent: list[dict[str, Any]] = []
    files_when_stalled: list[Path] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": True}
        if not stalled.is_set():
            files_when_stalled.extend(scratch_files(data_dir))
            stalled.set()
        await asyncio.Event().wait()  # a client that neither sends nor goes away
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = create_app(deps)
    async for _ in client_for(app):
        await asyncio.wait_for(app(_scope("/api/jobs"), receive, send), 30)  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert status == 408, body
    assert msgspec.json.decode(body) == {
        "error": f"the upload stalled: nothing received for {IDLE:g} s"
    }
    assert len(files_when_stalled) == 1  # the partial file existed while the client stalled
    assert scratch_files(data_dir) == []
    assert await deps.jobs.list_jobs() == []


async def _post(client: AsyncTestClient[Litestar], body: bytes) -> Any:
    return await client.post("/api/jobs", content=body, headers={"content-type": MULTIPART})


@pytest.fixture
async def client(deps: Deps) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async for client in client_for(create_app(deps)):
        yield client


@pytest.mark.parametrize("name", [b"caf\xe9.csv", b"\xff\xfe.csv", b"list\xc3.csv"])
async def test_a_file_name_that_is_not_utf8_is_a_clear_400(
    client: AsyncTestClient[Litestar], data_dir: Path, name: bytes
) -> None:
    response = await _post(client, _head(name) + b"email\na@example.com\n" + END)
    assert response.status_code == 400
    assert response.json() == {
        "error": "a part's header is not UTF-8 text: send the file name in UTF-8"
    }
    assert "Error(" not in response.text and "\\x" not in response.text
    assert scratch_files(data_dir) == []


@pytest.mark.parametrize("length", [MAX_FILENAME_CHARS + 1, 2_000, 10_000])
async def test_an_overlong_file_name_is_a_clear_400(
    client: AsyncTestClient[Litestar], data_dir: Path, length: int
) -> None:
    name = b"a" * (length - 4) + b".csv"
    response = await _post(client, _head(name) + b"email\na@example.com\n" + END)
    assert response.status_code == 400
    assert str(MAX_FILENAME_CHARS) in response.json()["error"]
    assert "file name" in response.json()["error"]
    assert scratch_files(data_dir) == []


async def test_a_utf8_name_of_the_longest_length_is_taken(
    client: AsyncTestClient[Litestar], deps: Deps
) -> None:
    name = ("é" * (MAX_FILENAME_CHARS - 4) + ".csv").encode()
    response = await _post(client, _head(name) + b"email\na@example.com\n" + END)
    assert response.status_code == 201, response.text
    job = await deps.jobs.get(response.json()["id"])
    assert job.file.filename == name.decode()
