"""Body limits of the /app area: the upload's 200 MiB is the upload handler's alone, every
other /app post takes a few KiB; an anonymous post is refused before any of its body is read
(not after Litestar's CSRF middleware has parsed the form to look for its token); an upload
with a forged CSRF token is refused as its file part begins, nothing of it kept."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.web.jobs.pages import FORM_BODY_LIMIT
from tests.web.jobs_helpers import Browser, ListsApp, lists_app

pytestmark = pytest.mark.pipeline

PROMISED = 100 * 1024 * 1024  # what the request says it will send; it sends 16 bytes


async def _head_only(base_url: str, path: str, accept: str) -> bytes:
    """POST with a Content-Length of 100 MiB and only the first 16 bytes of the body: the
    status line if the app answers without waiting for the rest."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(
            (
                f"POST {path} HTTP/1.1\r\nhost: {url.netloc}\r\naccept: {accept}\r\n"
                "content-type: application/x-www-form-urlencoded\r\n"
                f"content-length: {PROMISED}\r\n\r\nemail=aaaaaaaaaa"
            ).encode()
        )
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_an_anonymous_post_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        for path in ("/app/check", "/app/jobs/new", f"/app/jobs/{'a' * 32}/delete"):
            assert await _head_only(lists.base_url, path, "application/json") == (
                b"HTTP/1.1 401 Unauthorized\r\n"
            ), path
            assert await _head_only(lists.base_url, path, "text/html") == (
                b"HTTP/1.1 303 See Other\r\n"
            ), path


async def test_only_the_upload_takes_a_large_body(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        browser = await lists.browser(await lists.account("ann@example.com"))
        big = "a" * (FORM_BODY_LIMIT + 1)
        answer = await browser.post("/app/check", {"email": big})
        assert answer.status_code == 413
        uploaded = await browser.upload("big.csv", b"email\n" + b"ann@example.com\n" * 20_000)
        assert uploaded.status_code == 303, uploaded.text  # 320 kB, past the form limit
        preview = uploaded.headers["location"]
        answer = await browser.post(f"{preview}/start", {"email_column": "1", "sheet": big})
        assert answer.status_code == 413
        answer = await browser.post(f"/app/jobs/{'a' * 32}/delete", {"x": big})
        assert answer.status_code == 413
        assert (await browser.post("/app/check", {"email": "ann@example.com"})).status_code == 200


async def _upload_head(lists: ListsApp, browser: Browser, token: str) -> bytes:
    """An upload whose body stops just after the file part's header (the file promised, not
    sent): the status line if the app answers without the file."""
    url = urlsplit(lists.base_url)
    cookies = "; ".join(f"{name}={value}" for name, value in browser.client.cookies.items())
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\ncontent-disposition: form-data; name="_csrf_token"\r\n\r\n'
        f"{token}\r\n--{boundary}\r\n"
        'content-disposition: form-data; name="file"; filename="list.csv"\r\n'
        "content-type: text/csv\r\n\r\nemail\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(
            (
                f"POST /app/jobs/new HTTP/1.1\r\nhost: {url.netloc}\r\naccept: text/html\r\n"
                f"cookie: {cookies}\r\n"
                f"content-type: multipart/form-data; boundary={boundary}\r\n"
                f"content-length: {PROMISED}\r\n\r\n"
            ).encode()
            + head
        )
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_forged_upload_is_refused_before_its_file_is_kept(tmp_path: Path) -> None:
    storage = MemoryStorage()
    async with lists_app(tmp_path / "data", pipeline=False, storage=storage) as lists:
        browser = await lists.browser(await lists.account("ann@example.com"))
        token = await browser.csrf()
        other = await lists.browser()
        foreign = await other.csrf()  # a real token, of another browser's cookie
        for forged in ("", "x" * 10, foreign, token[:-1] + ("0" if token[-1] != "0" else "1")):
            assert await _upload_head(lists, browser, forged) == b"HTTP/1.1 403 Forbidden\r\n"
        assert not list(lists.web.settings.scratch_dir.glob("upload-*"))
        assert not storage.objects
        answer = await browser.upload("list.csv", b"email\nann@example.com\n")
        assert answer.status_code == 303  # the browser's own token passes
