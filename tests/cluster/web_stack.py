"""The SaaS on the distributed stack, shared by the tests that need it: the five back-end
roles and two `mailvet run web` processes (the same MAILVET_SECRET_KEY, ports of their
own) as separate processes on a fresh PostgreSQL database, RabbitMQ and moto S3
(tests/cluster/harness.py), probing a mail world of their own. While the web processes
start, the first account is made by `mailvet users create ... --confirmed --credits N` (the
command under test) and the other two in this process by services.accounts.create_account
(a `users create` costs about 3 CPU-s on a 2-core machine busy starting seven roles).

Starting it costs about ten process starts, so tests/cluster/test_web_replicas.py and
tests/e2e/test_distributed_browser.py share one: their `web_stack` fixtures call
`shared_web_stack(request)`, which starts it for the first and stops it after the last
selected test that uses a fixture named `web_stack` (so `pytest one_of_them.py` stops it
at that module's end, and nothing stays running behind the rest of the suite).

The app-wide limit of both processes is RATE_LIMIT requests per IP per day: a test that
counts gets a loopback address of its own (127.0.1.x) for its clients; a day's window
(aligned on the epoch) cannot restart during a test but at midnight UTC.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from mailvet.adapters.db.database import make_database
from mailvet.clock import utc_now
from mailvet.services.accounts import create_account
from tests.cluster.harness import (
    BACK_END,
    Cluster,
    delete_rabbit_objects,
    fresh_database,
)
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld
from tests.s3server import MotoS3
from tests.services import postgres_problem, rabbit_problem, require

FIXTURE = "web_stack"
CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')
COLUMN_INPUT = re.compile(r'name="email_column" value="(\d+)"')
ROWS_DONE = re.compile(r'id="rows-done">(\d+)<')
STATUS_LABEL = re.compile(r'id="job-status">([^<]+)<')
BALANCE = re.compile(r'<strong id="balance">(\d+)</strong>')
PASSWORD = "correct horse battery staple"
CREDITS = 1_000
RATE_LIMIT = 100  # per IP per day
CHUNK_SIZE = 60
DOMAIN = "replica-mail.com"
MX_HOST = "127.0.0.72"
USERS = 240  # user0..user239@DOMAIN: the even ones have a mailbox
NAMED = ("ann", "bob", "cy")  # these have one too; any other local part gets 550 5.1.1
# the accounts: the replica test's owner (made by `users create`), the browser test's owner,
# and a stranger to both
ACCOUNTS = ("ann.replica@example.com", "dina.replica@example.com", "eve.replica@example.com")
_KEY = pytest.StashKey["WebStack"]()


@dataclass
class WebStack:
    cluster: Cluster
    urls: list[str]  # web 1, web 2
    s3_host: str  # host:port of the object storage (pre-signed links go there)
    accounts: dict[str, str]  # address -> account id
    _closing: ExitStack = field(default_factory=ExitStack)

    def close(self) -> None:
        self._closing.close()


def mail_world() -> MailWorld:
    world = MailWorld()
    world.zone.add(DOMAIN, mx=[(10, f"mx.{DOMAIN}")])
    world.zone.add(f"mx.{DOMAIN}", a=[MX_HOST])
    ok = "250 2.1.5 OK"
    mailboxes = {name: ok for name in ("postmaster", *NAMED)}
    mailboxes |= {f"user{i}": ok for i in range(0, USERS, 2)}
    world.add_smtp(MX_HOST, SmtpBehaviour(mailboxes=mailboxes, latency=0.02, max_connections=8))
    return world


def make_account(cluster: Cluster, email: str, credits: int = CREDITS) -> str:
    """`mailvet users create EMAIL --confirmed --credits N` with PASSWORD; the account id."""
    made = cluster.cli(
        *("users", "create", email, "--confirmed", "--credits", str(credits)), input=PASSWORD
    )
    return made.stdout.strip()


def csrf_token(client: httpx.Client, path: str = "/login") -> str:
    """The CSRF token of the form on `path` (the client keeps the cookie that goes with it)."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF_INPUT.search(page.text)
    assert found is not None, page.text
    return found.group(1)


def sign_in(client: httpx.Client, email: str, password: str = PASSWORD) -> None:
    """Sign in through the login form; the client keeps the session cookie."""
    token = csrf_token(client)
    answer = client.post(
        "/login", data={"_csrf_token": token, "email": email, "password": password}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/app"


def make_accounts_here(database_url: str, emails: Sequence[str]) -> dict[str, str]:
    """Confirmed accounts with PASSWORD and CREDITS, made in this process as `users create`
    makes them (one transaction); address -> account id."""

    async def make() -> dict[str, str]:
        database = make_database(database_url)
        try:
            async with database.unit_of_work(write=True) as session:
                made = {}
                for email in emails:
                    account = await create_account(
                        session,
                        email=email,
                        password=PASSWORD,
                        confirmed=True,
                        credits=CREDITS,
                        hasher=PasswordHasher(),
                        now=utc_now(),
                    )
                    made[email] = account.id
                return made
        finally:
            await database.dispose()

    return asyncio.run(make())


def start_web_stack(root: Path) -> WebStack:
    closing = ExitStack()
    try:
        world = mail_world()
        world.start()
        closing.callback(world.stop)
        s3 = MotoS3().start()
        closing.callback(s3.stop)
        database_url = closing.enter_context(fresh_database())
        env = {
            **world.env(),
            "MAILVET_DNS_TIMEOUT": "2",
            # a 4xx of the mail world on a loaded machine (its MX admits 8 connections, and
            # a slot freed by a closed one may be seen late) costs a second, not the
            # 300-s greylisting delay that once held a job past the browser test's minute
            "MAILVET_SMTP_RETRY_DELAY": "1",
            "MAILVET_CHUNK_SIZE": str(CHUNK_SIZE),
            "MAILVET_SECRET_KEY": secrets.token_urlsafe(32),
            "MAILVET_WEB_RATE_LIMIT": f"{RATE_LIMIT}/day",
            "MAILVET_MAILER": "log",
        }
        cluster = Cluster(root, database_url, s3.endpoint, env)
        closing.callback(delete_rabbit_objects, cluster.prefix)
        closing.callback(cluster.stop)
        cluster.start_all(BACK_END)
        first, *others = ACCOUNTS
        with ThreadPoolExecutor(1) as pool:  # while the web processes start
            making = pool.submit(make_account, cluster, first)
            accounts = make_accounts_here(database_url, others)
            urls = cluster.start_web_replicas(2)
            accounts[first] = making.result()
        for name in BACK_END:
            cluster.wait_for_log(name, "service_started")
    except BaseException:
        closing.close()
        raise
    return WebStack(cluster, urls, s3.endpoint, accounts, closing)


def shared_web_stack(request: pytest.FixtureRequest) -> WebStack:
    """The stack for a module-scoped `web_stack` fixture: started on first use, closed when
    the module ends if no later selected test uses it (else by that test's module)."""
    stack = request.config.stash.get(_KEY, None)
    if stack is None:
        require(postgres_problem(), rabbit_problem())
        folders: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        stack = start_web_stack(folders.mktemp("web-stack"))
        request.config.stash[_KEY] = stack
        request.config.add_cleanup(stack.close)  # idempotent: after a crash, at exit

    def close_unless_needed_later() -> None:
        items = request.session.items
        mine = [
            n for n, item in enumerate(items) if getattr(item, "module", None) is request.module
        ]
        later = items[mine[-1] + 1 :] if mine else []
        running = request.config.stash.get(_KEY, None)
        if running is not None and not any(_will_use(item) for item in later):
            del request.config.stash[_KEY]
            running.close()

    request.addfinalizer(close_unless_needed_later)
    return stack


def _will_use(item: pytest.Item) -> bool:
    """Whether a selected test will set the stack up: it asks for the fixture and is not
    skipped by a mark (a browser test without chromium is skipped before its fixtures)."""
    if FIXTURE not in getattr(item, "fixturenames", ()):
        return False
    if any(True for _ in item.iter_markers("skip")):
        return False
    return not any(mark.args and mark.args[0] is True for mark in item.iter_markers("skipif"))
