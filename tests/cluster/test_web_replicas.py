"""Two web replicas on the distributed stack (issue 8 §5 and §6): the five back-end roles
and two `mailvet run web` processes with the same MAILVET_SECRET_KEY, on PostgreSQL,
RabbitMQ and moto S3, as separate processes (tests/cluster/web_stack.py: the stack the
distributed browser test uses too).

- An account made with `mailvet users create ... --confirmed --credits N` signs in on web 1
  (the login form, its CSRF token); the same cookies sign it in on web 2 (sessions are rows
  of the shared database); a list is uploaded and started on web 2; web 1's Server-Sent
  Events follow it to Completed; the result comes through web 1 (a pre-signed S3 link) and
  a segment through web 2 (a link signed by web 1's key is good on web 2); another account
  gets 404 for the job, its events and its downloads on both; its signing out on web 2
  ends the session for web 1 as well.
- The app-wide per-IP limit is one count for both: requests alternating between the two
  processes are refused with 429 and Retry-After at MAILVET_WEB_RATE_LIMIT, when each
  process alone has seen half of it.

Each client speaks from a loopback address of its own (127.0.1.x: the limit is per IP), so
the flows do not share a count. The windows of the limit are days (aligned on the epoch,
domain/throttle.py): the count cannot restart in the middle of the test but at midnight.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from mailvet.domain.verdict import RESULT_COLUMNS
from tests.cluster.web_stack import (
    ACCOUNTS,
    COLUMN_INPUT,
    CREDITS,
    DOMAIN,
    RATE_LIMIT,
    ROWS_DONE,
    STATUS_LABEL,
    USERS,
    WebStack,
    csrf_token,
    shared_web_stack,
    sign_in,
)
from tests.sse import SseParser

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OWNER, _, OTHER = ACCOUNTS
ROWS = USERS


@pytest.fixture(scope="module")
def web_stack(request: pytest.FixtureRequest) -> WebStack:
    return shared_web_stack(request)


@dataclass
class Replicas:
    stack: WebStack
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, replica: int, ip: str, cookies: httpx.Cookies | None = None) -> httpx.Client:
        """A client of web `replica` (0 or 1) speaking from loopback address `ip`."""
        client = httpx.Client(
            base_url=self.stack.urls[replica],
            transport=httpx.HTTPTransport(local_address=ip),
            headers={"accept": "text/html"},
            cookies=cookies,
            timeout=30,
        )
        self.clients.append(client)
        return client


@pytest.fixture
def replicas(web_stack: WebStack) -> Iterator[Replicas]:
    made = Replicas(web_stack)
    yield made
    for client in made.clients:
        client.close()


def events(client: httpx.Client, path: str) -> list[tuple[str, str]]:
    """(event, data) of a job page's stream until its `done` event."""
    seen: list[tuple[str, str]] = []
    with client.stream("GET", f"{path}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        parser = SseParser()
        for line in stream.iter_lines():
            if (event := parser.feed(line)) is not None:
                seen.append(event)
                if event[0] == "done":
                    return seen
    raise AssertionError(f"the stream ended before `done`: {seen}")


def a_list(path: Path) -> Path:
    """ROWS rows on the mail world's domain: a name column first (not numbers: the column
    number the form posts must not match a cell), duplicates and a few broken addresses."""
    lines = ["name,email,note"]
    for i in range(ROWS):
        email = f"user{i}@{DOMAIN}"
        if i % 40 == 7:
            email = f"broken{i}@@{DOMAIN}"
        elif i % 25 == 3:
            email = f"user{i - 3}@{DOMAIN.upper()}"  # an earlier row's address again
        lines.append(f'Person {i},{email},"note {i}, {i * 7 % 13}"')
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def rows_of(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


def expected_status(email: str) -> str:
    """The stack's mail world: even users have a mailbox, odd ones do not; `broken...` is no
    address."""
    found = re.fullmatch(rf"user(\d+)@{re.escape(DOMAIN)}", email, re.IGNORECASE)
    return "deliverable" if found and int(found.group(1)) % 2 == 0 else "undeliverable"


def test_one_session_and_one_list_across_two_web_processes(
    replicas: Replicas, tmp_path: Path
) -> None:
    email, other = OWNER, OTHER
    web1 = replicas.client(0, "127.0.1.1")
    sign_in(web1, email)
    assert web1.get("/app").status_code == 200

    # web 1's cookies (session token, CSRF secret) sign the same account in on web 2
    web2 = replicas.client(1, "127.0.1.1", cookies=web1.cookies)
    dashboard = web2.get("/app")
    assert dashboard.status_code == 200, dashboard.text
    assert f'<strong id="balance">{CREDITS}</strong>' in dashboard.text
    anonymous = replicas.client(1, "127.0.1.1").get("/app")
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]

    # upload and start on web 2
    source = a_list(tmp_path / "replicas.csv")
    token = csrf_token(web2, "/app/jobs/new")
    uploaded = web2.post(
        "/app/jobs/new",
        data={"_csrf_token": token},
        files={"file": ("replicas.csv", source.read_bytes(), "text/csv")},
    )
    assert uploaded.status_code == 303, uploaded.text
    preview_path = uploaded.headers["location"]
    preview = web2.get(preview_path)
    column = COLUMN_INPUT.search(preview.text)
    assert column is not None, preview.text
    started = web2.post(
        f"{preview_path}/start", data={"_csrf_token": token, "email_column": column.group(1)}
    )
    assert started.status_code == 303, started.text
    job_path = started.headers["location"]
    assert re.fullmatch(r"/app/jobs/[0-9a-f]{32}", job_path), job_path
    job_id = job_path.rsplit("/", 1)[1]

    # web 1 follows it live to the end
    seen = events(web1, job_path)
    progress = [data for event, data in seen if event == "progress"]
    done = [int(found.group(1)) for data in progress if (found := ROWS_DONE.search(data))]
    assert done == sorted(done) and done[-1] == ROWS, done
    final = progress[-1]
    label = STATUS_LABEL.search(final)
    assert label is not None and label.group(1) == "Completed", final
    assert f'href="{job_path}/download/all"' in final
    assert replicas.stack.cluster.job(job_id)["status"] == "file_completed"

    # the whole result through web 1: a pre-signed link to S3
    link = web1.get(f"{job_path}/download/all")
    assert link.status_code == 303, link.text
    assert link.headers["location"].startswith(f"http://{replicas.stack.s3_host}/")
    whole = rows_of(httpx.get(link.headers["location"], timeout=30).content)
    listed = rows_of(source.read_bytes())
    width = len(listed[0])
    assert whole[0] == listed[0] + list(RESULT_COLUMNS)
    assert [row[:width] for row in whole[1:]] == listed[1:]
    assert [row[width] for row in whole[1:]] == [expected_status(r[1]) for r in listed[1:]]

    # a segment through web 2, by the link web 1 signed
    link = web1.get(f"{job_path}/download/deliverable")
    assert link.status_code == 303, link.text
    signed = link.headers["location"]
    assert "sig=" in signed
    segment = web2.get(signed)
    assert segment.status_code == 200, segment.text
    deliverable = rows_of(segment.content)
    assert deliverable[0] == whole[0]
    assert deliverable[1:] == [row for row in whole[1:] if row[width] == "deliverable"]
    assert len(deliverable) > ROWS // 3

    # another account: nothing of this job, on either process
    eve1 = replicas.client(0, "127.0.1.2")
    sign_in(eve1, other)
    eve2 = replicas.client(1, "127.0.1.2", cookies=eve1.cookies)
    for eve in (eve1, eve2):
        for path in (job_path, f"{job_path}/events", f"{job_path}/download/all", signed):
            answer = eve.get(path)
            assert answer.status_code == 404, (path, answer.status_code)

    # signing out on web 2 ends the session web 1 holds too: it is one row, not a cookie
    token = csrf_token(eve2, "/app")
    assert eve2.post("/logout", data={"_csrf_token": token}).status_code == 303
    signed_out = eve1.get("/app")
    assert signed_out.status_code in (302, 303), signed_out.status_code
    assert "/login" in signed_out.headers["location"]


def test_the_per_ip_limit_is_counted_once_for_both_processes(replicas: Replicas) -> None:
    ip = "127.0.1.3"
    pair = (replicas.client(0, ip), replicas.client(1, ip))
    answers = [pair[n % 2].get("/").status_code for n in range(RATE_LIMIT)]
    assert answers == [200] * RATE_LIMIT  # each process has seen RATE_LIMIT / 2
    for client in pair:
        refused = client.get("/")
        assert refused.status_code == 429, refused.text
        assert 0 < int(refused.headers["retry-after"]) <= 86_400
    # another address is counted on its own
    assert replicas.client(1, "127.0.1.4").get("/").status_code == 200
