"""CSRF on every state-changing form of the SaaS, live: the routes are read from the app that
`mailvet run web` serves (build_site), not from a hand list, so a form added later is
covered by itself. Each POST/PUT/PATCH/DELETE, posted by a signed-in user (an admin for
/admin/*) without the token, with a garbage token or with another browser's token, answers
403 and changes nothing; the same posts with the token do change things (the effects
checked are real). Only /api/* and the payment webhook are exempt from the middleware, and
the upload post, the one handler excluded from it, checks the token itself."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from mailvet.adapters.db.ledger_models import LedgerEntryRow
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.services import api_keys
from mailvet.web.app import CSRF_EXEMPT
from tests.fakes import T0
from tests.web.account_helpers import writing
from tests.web.auth_helpers import HTML, Browser, log_in
from tests.web.shell_helpers import HTTPS, look
from tests.web.site_helpers import SiteUnderTest, site_under_test

pytestmark = pytest.mark.pipeline

USER = "ann.lee@example.com"
ADMIN = "root@example.com"
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
PARAM = re.compile(r"\{(\w+):\w+\}")
FORGED_FIELDS = {
    "first_name": "Mallory",
    "last_name": "Forged",
    "email": "new@example.com",
    "password": "correct horse battery staple",
    "new_password": "another long pass phrase",
    "code": "123456",
    "amount": "500",
    "reason": "forged",
    "email_column": "0",
    "confirm": "DELETE",
}
LIST = ("list.csv", b"email\nann@example.org\nbob@example.org\n", "text/csv")


def state_changing_routes(app: Litestar) -> Iterator[tuple[str, str, bool]]:
    """(method, path template, excluded from the CSRF middleware) of every handler."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods & STATE_CHANGING):
                yield method, route.path, bool(handler.opt.get("exclude_from_csrf"))


def filled(template: str, params: dict[str, str]) -> str:
    names = PARAM.findall(template)
    assert set(names) <= set(params), f"no test value for a path parameter of {template}"
    return PARAM.sub(lambda found: params[found.group(1)], template)


async def upload(b: Browser, token: str | None) -> httpx.Response:
    data = {"_csrf_token": token} if token is not None else {}
    return await b.request("POST", "/app/jobs/new", data=data, files={"file": LIST}, headers=HTML)


async def ledger_entries(url: str) -> int:
    async with look(url) as database, database.session_maker() as session:
        return int(await session.scalar(select(func.count()).select_from(LedgerEntryRow)) or 0)


def test_only_the_api_and_the_payment_webhook_are_exempt() -> None:
    assert CSRF_EXEMPT == ["^/api/", "^/billing/stripe/webhook$"]


async def test_the_app_exempts_only_the_api_and_checks_the_upload_itself(tmp_path: Path) -> None:
    async with site_under_test(tmp_path) as s:
        app = s.site.app
        assert app.csrf_config is not None
        assert app.csrf_config.exclude == CSRF_EXEMPT
        routes = list(state_changing_routes(app))
        assert len(routes) > 20  # the enumeration found the forms
        excluded = [(method, path) for method, path, excluded in routes if excluded]
        assert excluded == [("POST", "/app/jobs/new")]
        exempt = [path for _, path, _ in routes if any(re.match(p, path) for p in CSRF_EXEMPT)]
        # the keyed API alone (no cookie signs a request in there: test_api_auth), with the
        # original's two compatibility routes (web/api/compat.py)
        assert sorted(exempt) == [
            "/api/get-credit-balance",
            "/api/v1/jobs",
            "/api/v1/jobs/{job_id:str}",
            "/api/v1/validate",
            "/api/v1/validate/batch",
            "/api/validate-email",
            "/billing/stripe/webhook",  # Stripe signs it instead (web/billing/webhook.py)
        ]


async def forged_posts(
    s: SiteUnderTest, user: Browser, admin: Browser, params: dict[str, str], other_token: str
) -> list[str]:
    """Post every state-changing route three ways without a valid token; the ones that
    did not answer 403."""
    wrong: list[str] = []
    for method, template, excluded in state_changing_routes(s.site.app):
        path = filled(template, params)
        b = admin if path.startswith("/admin") else user
        if any(re.match(p, path) for p in CSRF_EXEMPT):  # the keyed API: the cookie is no key
            answer = await b.request(method, path, json={"email": "a@b.com"}, headers=HTML)
            # the cookie is no key, nor a signature: 401, and the webhook 400 (404 billing off)
            refused = {400, 404} if path == "/billing/stripe/webhook" else {401}
            if answer.status_code not in refused:
                wrong.append(f"{method} {path} with the session cookie: {answer.status_code}")
            continue
        for token in (None, "x" * 64, other_token):
            if excluded:
                assert (method, path) == ("POST", "/app/jobs/new")
                answer = await upload(b, token)
            else:
                fields = dict(FORGED_FIELDS)
                if token is not None:
                    fields["_csrf_token"] = token
                answer = await b.request(method, path, data=fields, headers=HTML)
            if answer.status_code != 403 or "This form has expired" not in answer.text:
                wrong.append(f"{method} {path} token={token!r}: {answer.status_code}")
    return wrong


async def test_every_state_changing_route_refuses_a_missing_or_wrong_token(
    tmp_path: Path,
) -> None:
    async with site_under_test(tmp_path) as s:
        ann = await s.account(USER)
        await s.account(ADMIN, admin=True, credits=0)
        job_id = uuid.uuid4().hex
        await s.deps.jobs.add(Job(id=job_id, file=FileInfo(filename="kept.csv"), owner=ann.id))
        # ended (a job is deletable only then), so a forged delete would really delete it
        await s.deps.jobs.set_status(job_id, JobStatus.ERROR_FILE, "unreadable")
        async with AsyncTestClient(s.site.app, base_url=HTTPS) as client:
            user = Browser(client)
            assert (await log_in(user, USER)).status_code == 303
            admin = user.fresh()
            assert (await log_in(admin, ADMIN)).status_code == 303
            stranger = user.fresh()
            await stranger.get("/")
            assert stranger.token and stranger.token != user.token

            await user.get("/app/jobs/new")
            made = await upload(user, user.token)  # a draft, to aim the forged start at
            assert made.status_code == 303, made.text
            draft_id = made.headers["location"].rstrip("/").rsplit("/", 1)[1]
            objects = dict(s.storage.objects)
            entries = await ledger_entries(s.url)

            async with writing(s.url) as session:  # an API key, to aim the forged revoke at
                key = await api_keys.create_key(session, ann.id, label="kept", now=T0)
            params = {
                "job_id": job_id,
                "draft_id": draft_id,
                "account_id": ann.id,
                "key_id": key.info.id,
            }
            wrong = await forged_posts(s, user, admin, params, stranger.token)
            assert wrong == []
            async with look(s.url) as database, database.session_maker() as session:
                [kept] = await api_keys.list_keys(session, ann.id)  # none made, none revoked
                assert kept.id == key.info.id and not kept.revoked

            # nothing changed: still signed in, the name, the job, no new job or file,
            # no ledger entry (check, start, admin credits), not disabled
            assert (await user.get("/app")).status_code == 200
            assert (await admin.get("/admin")).status_code == 200
            account_page = await user.get("/app/account")
            assert "Mallory" not in account_page.text
            assert (await s.deps.jobs.get(job_id)).file.filename == "kept.csv"
            assert [job.id for job in await s.deps.jobs.list_jobs(10)] == [job_id]
            assert s.storage.objects == objects
            assert await ledger_entries(s.url) == entries
            assert (await log_in(user.fresh(), USER)).status_code == 303  # not disabled

            # the checks are real: with the token the same forms do change things
            await user.get("/app/account")
            saved = await user.post(
                "/app/account/profile", {"first_name": "Mallory", "last_name": "Lee"}
            )
            assert saved.status_code == 303, saved.text
            assert "Mallory" in (await user.get("/app/account")).text
            await user.get("/app")
            deleted = await user.post(f"/app/jobs/{job_id}/delete")
            assert deleted.status_code == 303, deleted.text
            assert [job.id for job in await s.deps.jobs.list_jobs(10)] == []
