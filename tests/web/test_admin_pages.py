"""The administrators' pages (/admin): only an admin gets in; users found by address or name,
disabled (signed out, cannot sign in) and enabled again; credits granted and removed with a
reason through the ledger (never below zero), each form once (its one-time nonce is the
entry's key: sent twice, one entry); every job with its state, paginated and filtered by
state."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.adapters.db.models import JobRow
from mailvet.domain.credits import EntryKind
from mailvet.services import admin as admin_service
from mailvet.services import credits
from mailvet.services.accounts import create_account
from tests.web.account_helpers import account_app, writing
from tests.web.auth_helpers import (
    PASSWORD,
    AuthApp,
    Browser,
    browser,
    confirmed_account,
    log_in,
)
from tests.web.shell_helpers import cheap_hasher, look

pytestmark = pytest.mark.pipeline

ADMIN = "root@example.com"
USER = "ann.lee@example.com"
NONCE = re.compile(r'<input type="hidden" name="nonce" value="([0-9a-f]{32})">')


async def nonce_of(b: Browser, account_id: str) -> str:
    """The one-time nonce of the credits form on the user's page, as a browser gets it."""
    page = await b.get(f"/admin/users/{account_id}")
    found = NONCE.search(page.text)
    assert found is not None, "no nonce in the credits form"
    return found.group(1)


async def adjust(b: Browser, account_id: str, **fields: str) -> httpx.Response:
    """Fill in the credits form of a freshly loaded user page and send it."""
    nonce = await nonce_of(b, account_id)
    return await b.post(f"/admin/users/{account_id}/credits", {"nonce": nonce, **fields})


async def adjustments(s: AuthApp) -> list[tuple[int, str, str]]:
    async with look(s.url) as database, database.session_maker() as session:
        entries = (
            await session.execute(
                select(LedgerEntryRow)
                .where(LedgerEntryRow.kind == EntryKind.ADMIN_ADJUSTMENT.value)
                .order_by(LedgerEntryRow.seq)
            )
        ).scalars()
        return [(e.amount, e.reason, e.actor) for e in entries]


async def make_admin(s: AuthApp) -> str:
    async with writing(s.url) as session:
        account = await create_account(
            session,
            email=ADMIN,
            password=PASSWORD,
            admin=True,
            confirmed=True,
            credits=0,
            hasher=cheap_hasher(),
            now=s.clock(),
        )
    return account.id


async def test_only_an_admin_gets_in(tmp_path: Path) -> None:
    async with account_app(tmp_path) as (s, _), browser(s.app) as b:
        anonymous = await b.get("/admin")
        assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]
        await confirmed_account(s, b, USER)
        await log_in(b, USER)
        for path in ("/admin", "/admin/jobs", f"/admin/users/{uuid.uuid4().hex}"):
            assert (await b.get(path)).status_code == 403, path
        row = await s.account_row(USER)
        assert row is not None
        posted = await b.post(
            f"/admin/users/{row.id}/credits", {"amount": "5", "reason": "x", "nonce": "0" * 32}
        )
        assert posted.status_code == 403
        async with look(s.url) as database, database.session_maker() as session:
            assert (await credits.balance(session, row.id)).balance == 100  # the sign-up grant


async def test_find_disable_enable_and_adjust_credits(tmp_path: Path) -> None:
    async with account_app(tmp_path) as (s, _), browser(s.app) as admin:
        user = admin.fresh()
        await confirmed_account(s, user, USER, first_name="Zoë", last_name="<b>Quill</b>")
        await log_in(user, USER)
        admin_id = await make_admin(s)
        await log_in(admin, ADMIN)
        row = await s.account_row(USER)
        assert row is not None
        listing = await admin.get("/admin")
        assert listing.status_code == 200 and "2 accounts in all." in listing.text
        found = await admin.get("/admin?q=quill")
        assert f'href="/admin/users/{row.id}"' in found.text
        assert "&lt;b&gt;Quill&lt;/b&gt;" in found.text and "<b>Quill</b>" not in found.text
        assert ADMIN not in found.text
        assert "No account matches." in (await admin.get("/admin?q=nobody")).text

        page = await admin.get(f"/admin/users/{row.id}")
        assert page.status_code == 200 and '<dd id="user-balance">100 credits' in page.text
        granted = await adjust(admin, row.id, amount="+250", reason="goodwill  gesture")
        assert granted.status_code == 303
        removed = await adjust(admin, row.id, amount="-50", reason="double grant")
        assert removed.status_code == 303
        too_much = await adjust(admin, row.id, amount="-1000", reason="oops")
        assert too_much.status_code == 400 and "The balance is 300" in too_much.text
        no_reason = await adjust(admin, row.id, amount="5")
        assert no_reason.status_code == 400 and "Say why" in no_reason.text
        not_number = await adjust(admin, row.id, amount="ten", reason="x")
        assert not_number.status_code == 400 and "whole number" in not_number.text
        no_nonce = await admin.post(
            f"/admin/users/{row.id}/credits", {"amount": "5", "reason": "no nonce"}
        )
        assert no_nonce.status_code == 400 and "This form has expired" in no_nonce.text
        async with look(s.url) as database, database.session_maker() as session:
            assert (await credits.balance(session, row.id)).balance == 300
        assert await adjustments(s) == [
            (250, "goodwill gesture", admin_id),
            (-50, "double grant", admin_id),
        ]
        page = await admin.get(f"/admin/users/{row.id}")
        assert '<dd id="user-balance">300 credits' in page.text and "goodwill gesture" in page.text
        assert f'<a href="/admin/users/{admin_id}">{ADMIN}</a></td>' in page.text  # who

        assert await user.whoami() == "signed in"
        off = await admin.post(f"/admin/users/{row.id}/disable")
        assert off.status_code == 303
        assert await user.whoami() is None  # its session ended
        refused = await log_in(user, USER)
        assert refused.status_code == 403
        on = await admin.post(f"/admin/users/{row.id}/enable")
        assert on.status_code == 303
        assert (await log_in(user, USER)).status_code == 303

        myself = await admin.post(f"/admin/users/{admin_id}/disable")
        assert myself.status_code == 400 and "cannot disable yourself" in myself.text
        assert (await admin.get(f"/admin/users/{'0' * 32}")).status_code == 404
        assert (await admin.get("/admin/users/not-an-id")).status_code == 404


async def test_every_job_with_its_state_paginated(tmp_path: Path) -> None:
    async with account_app(tmp_path) as (s, _), browser(s.app) as admin:
        await make_admin(s)
        await log_in(admin, ADMIN)
        owner = await s.account_row(ADMIN)
        assert owner is not None
        start = datetime(2026, 11, 1, tzinfo=UTC)
        async with writing(s.url) as session:
            for n in range(55):
                session.add(
                    JobRow(
                        id=uuid.uuid4().hex,
                        filename=f"list-{n:02d}.csv",
                        checks="smtp",
                        status="file_completed" if n % 5 else "error_df",
                        owner=owner.id if n % 2 else "",
                        rows_total=10,
                        rows_done=10 if n % 5 else 4,
                        created_at=start + timedelta(hours=n),
                    )
                )
        first = await admin.get("/admin/jobs")
        assert first.status_code == 200 and "55 jobs." in first.text
        assert first.text.count("<tr data-job=") == 50
        assert "list-54.csv" in first.text and "list-04.csv" not in first.text  # newest first
        assert 'rel="next" href="/admin/jobs?status=&amp;page=2"' in first.text
        assert "Completed" in first.text and "Failed" in first.text
        assert f">{ADMIN}</a>" in first.text and "(no account)" in first.text
        second = await admin.get("/admin/jobs?page=2")
        assert second.text.count("<tr data-job=") == 5 and "list-00.csv" in second.text
        failed = await admin.get("/admin/jobs?status=error_df")
        assert "11 jobs in this state." in failed.text
        assert failed.text.count("<tr data-job=") == 11 and "Completed</span>" not in failed.text
        assert (await admin.get("/admin/jobs?page=0")).status_code == 400


async def test_a_credits_form_sent_twice_adjusts_once(tmp_path: Path) -> None:
    """A double click (two posts of one form at once) and a re-sent POST later: one entry;
    a new rendering of the form (a new nonce) adjusts again. A refused removal leaves its
    nonce unused: the same form sent once the balance allows it goes through."""
    async with account_app(tmp_path) as (s, _), browser(s.app) as admin:
        await confirmed_account(s, admin.fresh(), USER)
        admin_id = await make_admin(s)
        await log_in(admin, ADMIN)
        row = await s.account_row(USER)
        assert row is not None
        url = f"/admin/users/{row.id}/credits"
        form = {"nonce": await nonce_of(admin, row.id), "amount": "1000", "reason": "promo"}

        both = await asyncio.gather(admin.post(url, form), admin.post(url, form))
        assert [answer.status_code for answer in both] == [303, 303]
        again = await admin.post(url, form)  # the browser re-sends the POST
        assert again.status_code == 303
        shown = await admin.follow(again)
        assert "This form was sent before: the balance did not change again." in shown.text
        assert '<dd id="user-balance">1100 credits' in shown.text
        assert await adjustments(s) == [(1000, "promo", admin_id)]

        assert (await adjust(admin, row.id, amount="1000", reason="promo")).status_code == 303
        assert await adjustments(s) == [(1000, "promo", admin_id), (1000, "promo", admin_id)]

        removal = {"nonce": await nonce_of(admin, row.id), "amount": "-2500", "reason": "undo"}
        refused = await admin.post(url, removal)
        assert refused.status_code == 400 and "The balance is 2100" in refused.text
        assert (await adjust(admin, row.id, amount="+400", reason="top-up")).status_code == 303
        assert (await admin.post(url, removal)).status_code == 303
        assert (await admin.post(url, removal)).status_code == 303
        async with look(s.url) as database, database.session_maker() as session:
            assert (await credits.balance(session, row.id)).balance == 0
        assert [amount for amount, _, _ in await adjustments(s)] == [1000, 1000, 400, -2500]


class Switches:
    """An account service that records what it was asked to disable or enable."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    async def set_disabled(self, session: AsyncSession, account_id: str, disabled: bool) -> None:
        self.calls.append((account_id, disabled))


async def test_an_administrator_cannot_disable_themself_but_may_enable() -> None:
    switches = Switches()
    session = cast(AsyncSession, object())  # the fake never uses it
    with pytest.raises(admin_service.SelfDisable):
        await admin_service.set_disabled(switches, session, "a" * 32, True, actor="a" * 32)
    assert switches.calls == []
    await admin_service.set_disabled(switches, session, "a" * 32, False, actor="a" * 32)
    await admin_service.set_disabled(switches, session, "b" * 32, True, actor="a" * 32)
    assert switches.calls == [("a" * 32, False), ("b" * 32, True)]
