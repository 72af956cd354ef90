"""Which picture the account page shows: Gravatar (SHA-256 of the address) without anything
else; the Google picture over Gravatar once Google is connected; an uploaded avatar over
both; removing the upload brings the Google picture back. Read from the page's
<img id="account-picture"> src each time."""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

import pytest
from sqlalchemy import update

from mailvet.adapters.db.account_models import AccountRow
from tests.web.account_helpers import account_app, picture_bytes, upload, writing
from tests.web.auth_helpers import Browser, browser, confirmed_account, log_in

pytestmark = pytest.mark.pipeline

EMAIL = "ann.lee@example.com"
GOOGLE_PICTURE = "https://lh3.googleusercontent.com/a/ann-photo"
IMG = re.compile(r'<img id="account-picture"[^>]* src="([^"]*)"')


async def shown_picture(b: Browser) -> str:
    page = await b.get("/app/account")
    assert page.status_code == 200
    found = IMG.findall(page.text)
    assert len(found) == 1, page.text
    return html.unescape(found[0])


async def test_upload_wins_over_google_which_wins_over_gravatar(tmp_path: Path) -> None:
    async with account_app(tmp_path) as (s, storage), browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        row = await s.account_row(EMAIL)
        assert row is not None

        digest = hashlib.sha256(b"ann.lee@example.com").hexdigest()
        gravatar = await shown_picture(b)
        assert gravatar.startswith(f"https://www.gravatar.com/avatar/{digest}?"), gravatar

        async with writing(s.url) as session:
            await session.execute(
                update(AccountRow)
                .where(AccountRow.id == row.id)
                .values(google_sub="g-ann", google_picture=GOOGLE_PICTURE)
            )
        assert await shown_picture(b) == GOOGLE_PICTURE

        uploaded = await upload(b, "/app/account/picture", "me.png", picture_bytes("PNG"))
        assert uploaded.status_code in (200, 303), uploaded.text
        own = await shown_picture(b)
        assert own.startswith("/app/account/picture"), own
        served = await b.get(own)
        assert served.status_code == 200 and served.headers["content-type"] == "image/webp"
        assert served.content in storage.objects.values()

        await b.get("/app/account")
        removed = await b.post("/app/account/picture/remove")
        assert removed.status_code == 303, removed.text
        assert await shown_picture(b) == GOOGLE_PICTURE
