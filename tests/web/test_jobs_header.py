"""The header row is changeable on the preview (issue 8 §3): a list whose first row is a
title line is detected with the title as its header; choosing row 2 shows the real header,
and the job started with that choice is read so by intake (its stored layout, its rows)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from mailvet.pipeline.job_files import decode_stored_layout
from mailvet.tabular import InputError
from mailvet.web.jobs.preview import build_preview
from tests.web.jobs_helpers import lists_app

pytestmark = pytest.mark.pipeline

TITLED = (
    b"Customer list, December\r\n"
    b"Name,Reach at\r\n"
    b"Ann,ann@example.com\r\n"
    b"Bob,bob@example.com\r\n"
    b"Cy,cy@example.com\r\n"
)


def test_the_chosen_header_row_is_the_header(tmp_path: Path) -> None:
    path = tmp_path / "titled.csv"
    path.write_bytes(TITLED)
    detected = build_preview(path, filename="titled.csv", email_column=None, sheet=None)
    assert (detected.header_row, detected.header) == (1, ["Customer list", "December"])
    assert detected.rows[0] == ["Name", "Reach at"]  # the real header taken for data
    chosen = build_preview(path, filename="titled.csv", email_column=None, sheet=None, header_row=2)
    assert (chosen.header_row, chosen.header, chosen.email_column) == (2, ["Name", "Reach at"], 2)
    assert chosen.rows == [
        ["Ann", "ann@example.com"],
        ["Bob", "bob@example.com"],
        ["Cy", "cy@example.com"],
    ]
    assert chosen.cost == 3
    none = build_preview(path, filename="titled.csv", email_column="2", sheet=None, header_row=0)
    assert (none.has_header, len(none.rows)) == (False, 5)
    named = build_preview(
        path, filename="titled.csv", email_column="Reach at", sheet=None, header_row=2
    )
    assert named.email_column == 2
    with pytest.raises(InputError, match="row 9 cannot be the header"):
        build_preview(path, filename="titled.csv", email_column=None, sheet=None, header_row=9)


async def test_a_job_started_with_a_chosen_header_row_is_read_with_it(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data") as lists:
        browser = await lists.browser(await lists.account("ann@example.org"))
        preview = (await browser.upload("titled.csv", TITLED)).headers["location"]
        page = await browser.get(preview)
        assert '<option value="1" selected>Row 1</option>' in page.text
        page = await browser.get(preview, params={"header_row": "2", "column": "2"})
        assert page.status_code == 200
        assert '<option value="2" selected>Row 2</option>' in page.text
        assert '<input type="hidden" name="header_row" value="2">' in page.text
        assert "Reach at" in html.unescape(page.text.split("<thead>")[1].split("</thead>")[0])
        started = await browser.post(f"{preview}/start", {"email_column": "2", "header_row": "2"})
        assert started.status_code == 303, started.text
        job_path = started.headers["location"]
        assert (await browser.events(job_path))[-1][0] == "done"
        job_id = job_path.rsplit("/", 1)[1]
        job = await lists.deps.jobs.get(job_id)
        assert job.file.header_row == 2
        assert job.rows_total == 3, job
        layout = decode_stored_layout(job.layout).layout
        assert (layout.header, layout.skip_records) == (["Name", "Reach at"], 2)
        assert re.search(r"Completed", (await browser.get(job_path)).text)


NUMBERED = b"id,email\r\n" + b"".join(b"%d,user%d@example.com\r\n" % (i, i) for i in range(1, 8))


async def test_a_numbered_list_started_as_detected_is_read_as_previewed(tmp_path: Path) -> None:
    """Start posts the email column by number; an id column holding that number must not be
    taken for the header (the detected header row goes with the number)."""
    async with lists_app(tmp_path / "data") as lists:
        browser = await lists.browser(await lists.account("ann@example.org"))
        preview = (await browser.upload("numbered.csv", NUMBERED)).headers["location"]
        page = await browser.get(preview)
        assert '<input type="hidden" name="header_row" value="1">' in page.text
        started = await browser.post(f"{preview}/start", {"email_column": "2", "header_row": "1"})
        assert started.status_code == 303, started.text
        job_path = started.headers["location"]
        assert (await browser.events(job_path))[-1][0] == "done"
        job = await lists.deps.jobs.get(job_path.rsplit("/", 1)[1])
        assert job.rows_total == 7 and job.cost == 7, job
        layout = decode_stored_layout(job.layout).layout
        assert (layout.header, layout.skip_records) == (["id", "email"], 1)
