"""A page number from the address bar, on every paged page of the site (the billing page's
history, the dashboard, the administrators' users and jobs): any number up to MAX_PAGE is a
page (past the last: an empty one), a larger one is refused with 400, never a 500 (10**20
overflowed SQLite's integers: OverflowError)."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from tests.web.auth_helpers import HTML, Browser, log_in
from tests.web.shell_helpers import HTTPS
from tests.web.site_helpers import site_under_test

pytestmark = pytest.mark.pipeline

ADMIN = "ada.admin@example.com"
MAX_PAGE = 1_000_000  # web/billing/pages.py's and web/jobs/pages.py's MAX_PAGE
ADMIN_PAGES = 100_000  # web/admin/controllers.py's bound, the same rule
PAGED = (
    ("/app/billing", MAX_PAGE),
    ("/app", MAX_PAGE),
    ("/admin", ADMIN_PAGES),
    ("/admin/jobs", ADMIN_PAGES),
)


async def test_a_page_number_too_large_is_refused_and_any_other_answers(tmp_path: Path) -> None:
    async with site_under_test(tmp_path) as s:
        await s.account(ADMIN, admin=True)
        async with AsyncTestClient(s.site.app, base_url=HTTPS) as client:
            b = Browser(client)
            assert (await log_in(b, ADMIN)).status_code == 303
            for path, last in PAGED:
                for number in (1, 2, last):
                    shown = await b.request("GET", f"{path}?page={number}", headers=HTML)
                    assert shown.status_code == 200, (path, number, shown.text[:300])
                for number in (last + 1, 10**20, 10**400):
                    refused = await b.request("GET", f"{path}?page={number}", headers=HTML)
                    assert refused.status_code == 400, (path, number, refused.text[:300])
