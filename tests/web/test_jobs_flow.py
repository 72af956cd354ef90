"""A list in the browser, edge to edge over a real uvicorn and the pipeline: upload ->
preview -> start -> live progress over Server-Sent Events -> chart and downloads of the
whole result and of each segment; the shortfall of an account without enough credits."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import openpyxl
import pytest

from mailvet.domain.verdict import RESULT_COLUMNS
from mailvet.services import credits
from tests.web.jobs_helpers import Browser, lists_app

pytestmark = pytest.mark.pipeline

# statuses: deliverable, deliverable (duplicate, by case), undeliverable (no mailbox),
# unknown (451), undeliverable (syntax), deliverable (a role account: a flag, not risky)
LIST = (
    b"name;email;note\r\n"
    b"Ann;ann@example.com;first\r\n"
    b'Ann again;ANN@example.com;"two\r\nlines"\r\n'
    b"Gone;gone@example.com;\r\n"
    b"\r\n"
    b"Later;later@example.com;x\r\n"
    b"Broken;not-an-address;y\r\n"
    b"Info;info@example.com;z\r\n"
)
SEGMENTS = ("deliverable", "undeliverable", "risky", "unknown", "except-undeliverable")
STATUS = len(RESULT_COLUMNS)


def job_path(answer_location: str) -> str:
    assert re.fullmatch(r"/app/jobs/[0-9a-f]{32}", answer_location), answer_location
    return answer_location


async def run_list(browser: Browser, name: str, content: bytes, media: str) -> str:
    uploaded = await browser.upload(name, content, media)
    assert uploaded.status_code == 303, uploaded.text
    preview = uploaded.headers["location"]
    started = await browser.start(preview)
    assert started.status_code == 303, started.text
    return job_path(started.headers["location"])


async def download(browser: Browser, job: str, segment: str) -> bytes:
    """Follow the page's link: a redirect to a short-lived signed link, then the file."""
    link = await browser.get(f"{job}/download/{segment}")
    assert link.status_code == 303, link.text
    target = link.headers["location"]
    assert "expires=" in target and "sig=" in target
    answer = await browser.get(target)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return answer.content


def csv_records(data: bytes) -> list[str]:
    """The raw records of a CSV text (quoted line breaks kept inside their record)."""
    text = data.decode("utf-8")
    records, current = [], ""
    for line in io.StringIO(text, newline="").readlines():
        current += line
        if current.count('"') % 2 == 0:
            records.append(current)
            current = ""
    return records


def status_of(record: str) -> str | None:
    cells = next(csv.reader(io.StringIO(record, newline=""), delimiter=";"))
    return cells[-STATUS] if len(cells) >= STATUS and cells[-STATUS] != "mailvet_status" else None


async def test_upload_preview_start_progress_and_segment_downloads(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data") as lists:
        account = await lists.account("owner@example.org", credits=50)
        browser = await lists.browser(account)
        uploaded = await browser.upload("contacts.csv", LIST)
        preview = await browser.get(uploaded.headers["location"])
        assert preview.status_code == 200
        page = preview.text
        assert "selected>Column 2: email</option>" in page  # the detected column
        assert "Header row: record 1 (name, email, note)" in page
        assert "<td>Gone</td>" in page and '<td class="email-column">later@example.com</td>' in page
        assert '<strong id="cost">5</strong>' in page  # 5 distinct valid addresses
        assert '<strong id="preview-balance">50</strong>' in page
        assert 'id="shortfall"' not in page

        started = await browser.start(uploaded.headers["location"])
        job = job_path(started.headers["location"])
        events = await browser.events(job)
        assert events[-1] == ("done", "done")
        final = events[-2][1]
        assert '<strong id="job-status">Completed</strong>' in final
        assert '<span id="rows-done">6</span> / <span id="rows-total">6</span>' in final
        assert "<svg" in final and "Rows per reason" in final
        for segment in SEGMENTS:
            assert f'data-segment="{segment}"' in final

        page = (await browser.get(job)).text
        assert "Completed" in page and "sse-connect" not in page  # finished: no stream
        dashboard = (await browser.get("/app")).text
        assert "contacts.csv" in dashboard and "<td>6</td>" in dashboard
        assert f'href="{job}/download/all"' in dashboard

        whole = await download(browser, job, "all")
        records = csv_records(whole)
        assert records[0].startswith("name;email;note;mailvet_status;")
        statuses = [status_of(r) for r in records]
        assert statuses.count(None) == 2  # the header and the blank line
        assert sorted(s for s in statuses if s) == sorted(
            ["deliverable"] * 3 + ["undeliverable"] * 2 + ["unknown"]
        )
        keeps = {
            "deliverable": {"deliverable"},
            "undeliverable": {"undeliverable"},
            "risky": {"risky"},
            "unknown": {"unknown"},
            "except-undeliverable": {"deliverable", "risky", "unknown"},
        }
        for segment in SEGMENTS:
            part = await download(browser, job, segment)
            expected = [records[0]] + [r for r in records[1:] if status_of(r) in keeps[segment]]
            assert part == "".join(expected).encode(), segment
        async with lists.web.database.session_maker() as session:
            left = await credits.balance(session, account.id)
        assert left.balance == 50 - 4  # 5 reserved, the unknown one refunded


def workbook(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    other = book.active
    assert other is not None
    other.title = "Notes"
    other.append(["nothing here"])
    sheet = book.create_sheet("Contacts")
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_an_xlsx_list_has_its_sheet_chosen_and_xlsx_segments(tmp_path: Path) -> None:
    content = workbook([["Name", "Mail"], ["Ann", "ann@example.com"], ["Gone", "gone@example.com"]])
    media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    async with lists_app(tmp_path / "data") as lists:
        browser = await lists.browser(await lists.account("x@example.org"))
        uploaded = await browser.upload("book.xlsx", content, media)
        preview = (await browser.get(uploaded.headers["location"])).text
        assert '<option value="Contacts" selected>Contacts</option>' in preview
        assert '<option value="Notes">Notes</option>' in preview
        other = await browser.get(uploaded.headers["location"], params={"sheet": "Notes"})
        assert other.status_code == 422
        assert "could not find an email column" in other.text
        started = await browser.start(uploaded.headers["location"], sheet="Contacts")
        job = job_path(started.headers["location"])
        assert (await browser.events(job))[-1][0] == "done"
        whole = openpyxl.load_workbook(io.BytesIO(await download(browser, job, "all")))
        rows = [list(r) for r in whole["Contacts"].iter_rows(values_only=True)]
        part = openpyxl.load_workbook(io.BytesIO(await download(browser, job, "deliverable")))
        kept = [list(r) for r in part["Contacts"].iter_rows(values_only=True)]
        assert kept == [rows[0], rows[1]]
        assert rows[1][2] == "deliverable" and rows[2][2] == "undeliverable"


async def test_a_list_beyond_the_balance_shows_the_shortfall(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data") as lists:
        browser = await lists.browser(await lists.account("poor@example.org", credits=2))
        uploaded = await browser.upload("contacts.csv", LIST)
        preview = (await browser.get(uploaded.headers["location"])).text
        assert "This list needs 5 credits and your balance is 2: 3 missing" in preview, preview
        started = await browser.start(uploaded.headers["location"])
        job = job_path(started.headers["location"])
        events = await browser.events(job)
        final = events[-2][1]
        assert '<strong id="job-status">Failed</strong>' in final
        assert "insufficient credits: this list needs 5, the balance is 2 (3 missing)" in final
        page = (await browser.get(job)).text
        assert "3 missing" in page


async def test_an_unconfirmed_account_previews_but_cannot_start(tmp_path: Path) -> None:
    async with lists_app(tmp_path / "data", pipeline=False) as lists:
        account = await lists.account("new@example.org", confirmed=False)
        browser = await lists.browser(account)
        uploaded = await browser.upload("contacts.csv", LIST)
        preview = (await browser.get(uploaded.headers["location"])).text
        assert "confirm your email address (" in preview and "disabled>Start validation" in preview
        refused = await browser.post(f"{uploaded.headers['location']}/start", {"email_column": "2"})
        assert refused.status_code == 403
        assert "Confirm your email address before you start" in refused.text
        dashboard = (await browser.get("/app")).text
        assert "No lists yet" in dashboard
