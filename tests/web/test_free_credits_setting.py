"""MAILVET_FREE_CREDITS reaches the sign-up grant through the settings (the site as `mailvet
run web` builds it, nothing passed by hand): with 7 a sign-up through /signup gets exactly
one grant of 7, the dashboard shows 7, and the pricing page says 7."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from mailvet.adapters.db.account_models import AccountRow
from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.domain.credits import EntryKind
from tests.web.auth_helpers import Browser, log_in, sign_up
from tests.web.shell_helpers import HTTPS, look
from tests.web.site_helpers import site_under_test

pytestmark = pytest.mark.pipeline

EMAIL = "ann.lee@example.com"


async def test_a_sign_up_gets_the_free_credits_of_the_setting(tmp_path: Path) -> None:
    async with (
        site_under_test(tmp_path, {"MAILVET_FREE_CREDITS": "7"}) as s,
        AsyncTestClient(s.site.app, base_url=HTTPS) as client,
    ):
        b = Browser(client)
        pricing = await b.get("/pricing")
        assert '<p class="price">7 credits</p>' in pricing.text
        assert "100 credits" not in pricing.text
        assert (await sign_up(b, EMAIL)).status_code == 303
        async with look(s.url) as database, database.session_maker() as session:
            account_id = await session.scalar(
                select(AccountRow.id).where(AccountRow.email == EMAIL)
            )
            entries = (
                await session.execute(
                    select(LedgerEntryRow.kind, LedgerEntryRow.amount).where(
                        LedgerEntryRow.account_id == account_id
                    )
                )
            ).all()
        assert [tuple(entry) for entry in entries] == [(EntryKind.SIGNUP_GRANT.value, 7)]
        signed_in = b.fresh()
        assert (await log_in(signed_in, EMAIL)).status_code == 303
        dashboard = await signed_in.get("/app")
        assert '<strong id="balance">7</strong>' in dashboard.text
