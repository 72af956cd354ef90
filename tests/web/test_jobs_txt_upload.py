"""A .txt list (one address per line, no header) uploaded through the web form: previewed with
its addresses, started, completed, and its result has one verdict per address."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.jobs_helpers import lists_app

pytestmark = pytest.mark.pipeline

TXT = b"ann@example.org\nbob@example.org\ngone@example.org\n"


async def test_a_txt_list_previews_starts_and_completes(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data") as lists:
        account = await lists.account("owner@example.org", credits=10)
        browser = await lists.browser(account)
        uploaded = await browser.upload("people.txt", TXT, "text/plain")
        assert uploaded.status_code == 303, uploaded.text
        preview = await browser.get(uploaded.headers["location"])
        assert preview.status_code == 200, preview.text
        for address in ("ann@example.org", "bob@example.org", "gone@example.org"):
            assert address in preview.text
        assert '<strong id="cost">3</strong>' in preview.text
        started = await browser.start(uploaded.headers["location"])
        assert started.status_code == 303, started.text
        job = started.headers["location"]
        events = await browser.events(job)
        final = events[-2][1]
        assert '<strong id="job-status">Completed</strong>' in final
        assert '<span id="rows-done">3</span> / <span id="rows-total">3</span>' in final
        result = await browser.get(f"{job}/download/all", follow_redirects=True)
        assert result.status_code == 200, result.text
        text = result.content.decode()
        for address in ("ann@example.org", "bob@example.org", "gone@example.org"):
            assert address in text
        assert text.count("undeliverable") == 1 and text.count("deliverable") == 3
