"""Body limits of the /app area: the upload's 200 MiB is the upload handler's alone, every
other /app post takes a few KiB; an anonymous post is refused before any of its body is read
(not after Litestar's CSRF middleware has parsed the form to look for its token)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mailvet.web.jobs.pages import FORM_BODY_LIMIT
from tests.web.jobs_helpers import lists_app

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
