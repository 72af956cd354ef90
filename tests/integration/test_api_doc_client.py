"""docs/api.md's "A client in 20 lines", run as written against a running server: the
document's Python block saved as a script and run by the test's interpreter with `$MAILVET`
and `$KEY` set, in a folder holding `contacts.csv`, against one `mailvet run all` process
(test_api_schemathesis.py's `api_server`) whose DNS and SMTP are a local mail world (no
internet). It must check the address, run the list as a job to file_completed, save the
result and print the balance, each figure what the server itself says afterwards."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.test_api_schemathesis import Server, api_server
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
MX_HOST = "127.0.0.78"
CREDITS = 100
# ann is a mailbox, bob is not, the third row is no address: 2 distinct valid ones
CONTACTS = "email,name\r\nann@example.com,Ann\r\nbob@example.com,Bob\r\nnot an address,-\r\n"


def client_code() -> str:
    section = DOC.read_text(encoding="utf-8").split("## A client in 20 lines", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert found is not None, "no Python block under 'A client in 20 lines'"
    return found.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    world = MailWorld()
    world.zone.add("example.com", mx=[(10, "mx.example.com")])
    world.zone.add("mx.example.com", a=[MX_HOST])
    ok = "250 2.1.5 OK"
    world.add_smtp(MX_HOST, SmtpBehaviour(mailboxes={"postmaster": ok, "ann": ok}))
    with api_server(tmp_path_factory.mktemp("doc-client"), world, credits=CREDITS) as made:
        yield made


def test_the_documented_client_runs_against_the_server(server: Server, tmp_path: Path) -> None:
    code = client_code()
    assert len([line for line in code.splitlines() if line.strip()]) <= 20
    script = tmp_path / "client.py"
    script.write_text(code, encoding="utf-8")
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    env = dict(os.environ, MAILVET=server.url, KEY=server.key)

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"deliverable accepted credits left: {CREDITS - 1}", done.stdout
    counts = {"deliverable": 1, "undeliverable": 2, "risky": 0, "unknown": 0}
    assert lines[-2] == f"file_completed {counts}", done.stdout
    assert lines[-1] == f"balance: {CREDITS - 1 - 2}", done.stdout  # the job: 2 valid ones
    with open(tmp_path / "contacts.mailvet.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(row["email"], row["mailvet_status"]) for row in rows] == [
        ("ann@example.com", "deliverable"),
        ("bob@example.com", "undeliverable"),
        ("not an address", "undeliverable"),
    ]
    credits = httpx.get(
        server.url + "/api/v1/credits", headers={"x-api-key": server.key}, timeout=10
    ).json()
    assert credits["balance"] == CREDITS - 3 and credits["reserved"] == 0
