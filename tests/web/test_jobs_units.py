"""The pure pieces of the lists area: status labels, progress, the chart's geometry and
escaping, signed links (downloads, direct-upload callbacks), the new-list page's
form-action, a direct upload's file name, segments of CSV results (bytes, BOM, encodings),
and the progress poller reading every watched job in one query."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import event

from mailvet.adapters.db.database import make_database
from mailvet.adapters.db.repositories import SqlJobRepository
from mailvet.domain.job import FileInfo, Job, JobCounts, JobStatus
from mailvet.domain.verdict import RESULT_COLUMNS
from mailvet.tabular import FileLayout, detect_layout
from mailvet.tabular.segments import write_segment
from mailvet.web.app import TEMPLATES_DIR
from mailvet.web.jobs.chart import chart_of
from mailvet.web.jobs.labels import progress_percent, status_label
from mailvet.web.jobs.links import download_url, link_valid, upload_link, uploaded_path
from mailvet.web.jobs.progress import ProgressHub
from mailvet.web.jobs.results import segment_name
from mailvet.web.jobs.upload import MAX_FILENAME_CHARS, metadata_filename
from mailvet.web.security import content_security_policy, origin_of

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
KEY = "k" * 40


def test_segment_names_follow_the_result_name() -> None:
    assert segment_name("list.csv", "csv", "deliverable") == "list.mailvet.deliverable.csv"
    assert segment_name("in/a.b.xlsx", "xlsx", "risky") == "a.b.mailvet.risky.xlsx"
    assert segment_name("", "csv", "unknown") == "result.mailvet.unknown.csv"


def test_status_labels_are_the_original_ones() -> None:
    assert [status_label(s) for s in JobStatus] == [
        "Pending Start",
        "File Accepted",
        "File Queued",
        "Processing",
        "Completed",
        "Failed",
        "Failed",
        "Failed",
    ]


def test_progress_reaches_100_only_when_completed() -> None:
    assert progress_percent(JobStatus.IN_PROGRESS, 10, 10) == 99
    assert progress_percent(JobStatus.IN_PROGRESS, 1, 3) == 33
    assert progress_percent(JobStatus.FILE_QUEUED, 0, 0) == 0
    assert progress_percent(JobStatus.COMPLETED, 0, 0) == 100


def test_the_chart_scales_bars_per_group_and_escapes_labels() -> None:
    counts = JobCounts(
        statuses={"undeliverable": 1, "deliverable": 4},
        reasons={"accepted": 4, '<script>alert("x")</script>': 1},
    )
    chart = chart_of(counts)
    statuses, reasons = chart.groups
    assert [(b.label, b.count, b.width) for b in statuses.bars] == [
        ("deliverable", 4, 300),
        ("undeliverable", 1, 75),
    ]
    assert [b.label for b in reasons.bars] == ["accepted", '<script>alert("x")</script>']
    assert chart.total == 5
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True)
    svg = env.get_template("jobs/_chart.html").render(chart=chart)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count("<rect ") == 4


def test_a_link_is_bound_to_account_job_segment_and_time() -> None:
    url = download_url(KEY, account_id="a", job_id="j", segment="risky", now=NOW, seconds=60)
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    expires, sig = int(query["expires"]), query["sig"]
    assert url.startswith("/app/jobs/j/file/risky?")

    def valid(
        key: str = KEY,
        account: str = "a",
        job: str = "j",
        segment: str = "risky",
        at: datetime = NOW,
    ) -> bool:
        return link_valid(
            key, account_id=account, job_id=job, segment=segment, expires=expires, sig=sig, now=at
        )

    assert valid(at=NOW + timedelta(seconds=60))
    assert not valid(at=NOW + timedelta(seconds=61))
    assert not valid(account="b") and not valid(job="k") and not valid(segment="all")
    assert not valid(key="other" * 10)


def test_an_upload_callback_is_bound_to_account_draft_key_and_time() -> None:
    path = uploaded_path(KEY, account_id="a", draft_id="d", key="drafts/x/d", now=NOW, seconds=60)
    assert path.startswith("/app/jobs/new/d/uploaded?")
    query = dict(part.split("=") for part in path.split("?")[1].split("&"))
    expires, sig = int(query["expires"]), query["sig"]
    # a download link's signature over the same words is not an upload's (keys of their own)
    assert (
        sig
        != download_url(
            KEY, account_id="a", job_id="d", segment="drafts/x/d", now=NOW, seconds=60
        ).split("sig=")[1]
    )

    def state(
        account: str = "a", draft: str = "d", key: str = "drafts/x/d", at: datetime = NOW, **kw: str
    ) -> str:
        return upload_link(
            KEY,
            account_id=account,
            draft_id=draft,
            key=key,
            expires=expires,
            sig=kw.get("sig", sig),
            now=at,
        )

    assert state() == "valid" and state(at=NOW + timedelta(seconds=60)) == "valid"
    assert state(at=NOW + timedelta(seconds=61)) == "expired"
    assert state(account="b") == state(draft="e") == state(key="drafts/x/e") == "forged"
    assert state(sig="é" * 64) == state(sig="") == "forged"  # never a TypeError


def test_the_new_list_policy_widens_form_action_by_exact_origins_only() -> None:
    assert "form-action 'self';" in content_security_policy()
    policy = content_security_policy(form_action=["https://files.example.com:9000"])
    assert "form-action 'self' https://files.example.com:9000;" in policy
    assert origin_of("http://127.0.0.1:9000/bucket?x=1") == "http://127.0.0.1:9000"
    for bad in [
        "https://files.example.com/bucket",
        "https://files.example.com; script-src *",
        "https://*.example.com",
        "javascript:alert(1)",
        "'unsafe-inline'",
        "",
    ]:
        with pytest.raises(ValueError):
            content_security_policy(form_action=[bad])


@pytest.mark.parametrize(
    ("stored", "name"),
    [
        ("Kontakte%20M%C3%A4rz.csv", "Kontakte März.csv"),
        ("%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "passwd"),
        ("a%5Cb%5Cc.csv", "c.csv"),
        ("%00%1B%0D%0Alist.csv", "list.csv"),
        ("M\xc3\xa4rz.csv", "März.csv"),  # raw UTF-8, read back as Latin-1
        ("", "upload"),
        ("%2F", "upload"),
        ("x" * 10_000, "x" * MAX_FILENAME_CHARS),
    ],
)
def test_a_direct_upload_name_is_cleaned_as_an_uploaded_one(stored: str, name: str) -> None:
    assert metadata_filename(stored) == name


def result_row(cells: list[str], status: str, reason: str) -> list[str]:
    return [*cells, status, reason, *[""] * (len(RESULT_COLUMNS) - 2)]


def test_a_csv_segment_keeps_bytes_bom_and_encoding(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes("\ufeffnom;courriel\r\nÉlodie;e@x.fr\r\n".encode("utf-8"))
    layout = detect_layout(source, filename="in.csv")
    extra = ";" * (len(RESULT_COLUMNS) - 2)
    result = tmp_path / "result"
    header = "nom;courriel;" + ";".join(RESULT_COLUMNS) + "\r\n"
    rows = [
        f"Élodie;e@x.fr;deliverable;accepted{extra}\r\n",
        f'"Zoé\r\nbis";z@x.fr;undeliverable;mailbox_not_found{extra}\r\n',
        "\r\n",
        f"short;deliverable;accepted{extra}\n",
    ]
    result.write_bytes(b"\xef\xbb\xbf" + (header + "".join(rows)).encode("utf-8"))
    out = tmp_path / "out"
    kept = write_segment(result, out, kind="csv", layout=layout, segment="deliverable")
    assert kept == 2
    assert out.read_bytes() == b"\xef\xbb\xbf" + (header + rows[0] + rows[3]).encode("utf-8")
    kept = write_segment(result, out, kind="csv", layout=layout, segment="undeliverable")
    assert out.read_bytes() == b"\xef\xbb\xbf" + (header + rows[1]).encode("utf-8")


def test_an_xlsx_segment_keeps_text_as_text_and_formulas_as_formulas(tmp_path: Path) -> None:
    # openpyxl's writer makes a formula of any text starting with '=': a customer's text
    # cell must stay inert text in a segment, as it is in the result (it came out a live
    # formula before), and a real formula stays one
    import zipfile

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Contacts"
    extra = [""] * (len(RESULT_COLUMNS) - 2)
    sheet.append(["note", "email", *RESULT_COLUMNS])
    sheet.append(["=1+1", "a@x.com", "deliverable", "accepted", *extra])
    inert = sheet.cell(row=2, column=1)
    sheet.append(["x", "b@x.com", "deliverable", "accepted", *extra])
    sheet.cell(row=3, column=1).value = "=cmd|' /C calc'!A0"
    sheet.cell(row=3, column=1).data_type = "s"
    last = 2 + len(RESULT_COLUMNS)
    sheet.cell(row=3, column=last).value = "#N/A"  # text, not Excel's error value
    sheet.cell(row=3, column=last).data_type = "s"
    sheet.append(["y", "c@x.com", "undeliverable", "mailbox_not_found", *extra])
    assert inert.data_type == "f"
    result = tmp_path / "result.xlsx"
    book.save(result)
    layout = FileLayout(kind="xlsx", sheet="Contacts", email_index=1)
    out = tmp_path / "out.xlsx"
    assert write_segment(result, out, kind="xlsx", layout=layout, segment="deliverable") == 2
    with zipfile.ZipFile(out) as archive:
        [name] = [n for n in archive.namelist() if n.startswith("xl/worksheets/")]
        xml = archive.read(name).decode()
    assert xml.count("<f>") == 1 and "<f>1+1</f>" in xml
    assert "cmd|" in xml and "<f>cmd" not in xml
    kept = openpyxl.load_workbook(out, read_only=True)["Contacts"]
    values = [row for row in kept.iter_rows(values_only=True)]
    assert [row[1] for row in values] == ["email", "a@x.com", "b@x.com"]
    assert values[2][0] == "=cmd|' /C calc'!A0"
    assert values[2][last - 1] == "#N/A" and 't="e"' not in xml


def test_a_latin1_csv_segment_stays_latin1(tmp_path: Path) -> None:
    layout = FileLayout(kind="csv", encoding="cp1252", header=["email"], skip_records=1)
    extra = "," * (len(RESULT_COLUMNS) - 2)
    head = "email,mailvet_status\r\n"
    rows = [f"ré@x.fr,risky,catch_all{extra}\r\n", f"b@x.fr,unknown,timeout{extra}\r\n"]
    result = tmp_path / "result"
    result.write_bytes((head + "".join(rows)).encode("cp1252"))
    out = tmp_path / "out"
    assert write_segment(result, out, kind="csv", layout=layout, segment="risky") == 1
    assert out.read_bytes() == (head + rows[0]).encode("cp1252")
    assert write_segment(result, out, kind="csv", layout=layout, segment="undeliverable") == 0
    assert out.read_bytes() == head.encode("cp1252")
    # a cell that is no reason is not a verdict: the row is in no segment
    result.write_bytes((head + rows[0].replace("catch_all", "role")).encode("cp1252"))
    assert write_segment(result, out, kind="csv", layout=layout, segment="risky") == 0


async def test_the_poller_reads_every_watched_job_in_one_query(tmp_path: Path) -> None:
    database = make_database(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await database.create_all()
    jobs = SqlJobRepository(database)
    hub = ProgressHub(database, poll_seconds=0.01)
    queries: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if "FROM jobs" in statement:
            queries.append(statement)

    try:
        ids = [uuid.uuid4().hex for _ in range(30)]
        for job_id in ids:
            await jobs.add(Job(id=job_id, file=FileInfo(filename="a.csv")))
        event.listen(database.engine.sync_engine, "before_cursor_execute", count)
        async with contextlib.AsyncExitStack() as stack:
            streams = [await stack.enter_async_context(hub.watch(job_id)) for job_id in ids]
            firsts = await asyncio.gather(*(anext(s) for s in streams))
            assert {p.job_id for p in firsts} == set(ids)
            assert all(p.status is JobStatus.PENDING_START for p in firsts)
            assert len(queries) == hub.polls  # one query per tick for 30 watchers
            await jobs.set_status(ids[3], JobStatus.FILE_ACCEPTED)
            changed = await anext(streams[3])
            assert changed.status is JobStatus.FILE_ACCEPTED
        assert hub.watched == set()
    finally:
        await hub.close()
        await database.dispose()
