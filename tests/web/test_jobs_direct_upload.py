"""Issue 8 §3: with S3 storage the new-list page posts the file straight to S3 (a pre-signed
POST), and S3's redirect brings the browser back to `/app/jobs/new/<draft>/uploaded`, which
checks what arrived and keeps it as a draft as an upload through the app would.

On moto's S3 server, which does not enforce POST policies: what S3 would refuse (a file
past the limit, an empty one) reaches the callback here, which must refuse it itself. The
app runs in Litestar's test client (its upload limit made small for the over-size case);
the form is read off the page and posted to moto as a browser posts it, fields in their
order and the file last.
"""

from __future__ import annotations

import contextlib
import html
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.storage.local import LocalStorage
from mailvet.adapters.storage.s3 import S3Storage
from mailvet.bootstrap import build_deps
from mailvet.domain.accounts import Account
from mailvet.domain.ports import ObjectStorage
from mailvet.services import jobs as job_service
from mailvet.settings import load_settings
from mailvet.web.app import create_app
from mailvet.web.context import build_web_context
from mailvet.web.jobs.links import uploaded_path
from mailvet.web.jobs.upload import MAX_UPLOAD_BYTES
from tests.fakes import FakeProber, FakeResolver
from tests.s3form import policy_of, post_form
from tests.s3server import MotoS3
from tests.web.jobs_helpers import HTML, Browser, ListsApp
from tests.web.shell_helpers import cheap_hasher, session_area
from tests.web.test_jobs_flow import LIST

pytestmark = pytest.mark.integration

ORIGIN = "http://testserver.local"  # the test client's, and MAILVET_PUBLIC_URL here
FORM = re.compile(r'<form method="post" action="([^"]+)" enctype="multipart/form-data"')
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"( data-filename)?>')
FILE_INPUT = re.compile(r'<input id="list-file" name="([^"]+)" type="file"')
META = "x-amz-meta-filename"


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    yield from MotoS3().serve()


@dataclass
class Site:
    lists: ListsApp  # its account(); its storage is the app's
    clients: contextlib.AsyncExitStack
    app: Litestar

    async def browser(self, account: Account) -> Browser:
        """A browser signed in as `account` (one per test: another account signs in in
        it, as in test_jobs_drafts)."""
        client = await self.clients.enter_async_context(AsyncTestClient(self.app, base_url=ORIGIN))
        client.headers.update(HTML)
        client.follow_redirects = False  # as lists_app's browsers: a test follows them itself
        browser = Browser(client)
        assert (await browser.post(f"/t/sign-in/{account.id}")).status_code == 200
        return browser


@contextlib.asynccontextmanager
async def site(
    data_dir: Path, storage: ObjectStorage, *, max_upload_bytes: int = MAX_UPLOAD_BYTES
) -> AsyncIterator[Site]:
    settings = load_settings({"MAILVET_DATA_DIR": str(data_dir), "MAILVET_PUBLIC_URL": ORIGIN})
    deps = await build_deps(
        settings,
        storage=storage,
        bus=MemoryBus(),
        resolver=FakeResolver(),
        prober=FakeProber(),
        syntax_pool=None,
    )
    try:
        web = await build_web_context(settings, hasher=cheap_hasher())
        try:
            app = create_app(
                deps, web=web, areas=[session_area()], max_upload_bytes=max_upload_bytes
            )
            async with contextlib.AsyncExitStack() as clients:
                yield Site(ListsApp(ORIGIN, web, deps, storage), clients, app)
        finally:
            await web.close()
    finally:
        await deps.close()


async def s3_storage(s3: MotoS3) -> S3Storage:
    storage = S3Storage(
        s3.endpoint, s3.access_key, s3.secret_key, f"mailvet-{uuid.uuid4().hex[:16]}"
    )
    await storage.ensure_bucket()
    return storage


@dataclass(frozen=True)
class Form:
    action: str
    fields: list[tuple[str, str]]
    filename_field: str
    file_field: str

    @property
    def key(self) -> str:
        return dict(self.fields)["key"]

    @property
    def callback(self) -> str:
        """The path and query S3 sends the browser to, as signed (before S3's additions)."""
        redirect = urlsplit(dict(self.fields)["success_action_redirect"])
        return f"{redirect.path}?{redirect.query}"

    @property
    def draft_id(self) -> str:
        return self.callback.split("/")[4]

    async def post(self, content: bytes, filename: str = "") -> httpx.Response:
        """As the browser posts it, jobs.js having put the file's name in its field."""
        return await post_form(
            self.action,
            self.fields,
            ("chosen-file", content),
            values={self.filename_field: filename},
            file_field=self.file_field,
        )


async def new_form(browser: Browser) -> Form:
    page = await browser.get("/app/jobs/new")
    assert page.status_code == 200, page.text
    action = FORM.search(page.text)
    assert action is not None, page.text
    upload = page.text[action.start() : page.text.index("</form>", action.end())]
    assert "_csrf_token" not in upload  # not ours to send to S3
    file_input = FILE_INPUT.search(upload)
    assert file_input is not None, upload
    hidden = list(HIDDEN.finditer(upload))
    assert hidden, upload
    assert all(found.end() < file_input.start() for found in hidden)  # the file goes last
    named = [found.group(1) for found in hidden if found.group(3)]
    assert len(named) == 1
    fields = [(found.group(1), html.unescape(found.group(2))) for found in hidden]
    return Form(html.unescape(action.group(1)), fields, named[0], file_input.group(1))


async def arrive(browser: Browser, answer: httpx.Response) -> httpx.Response:
    """Follow S3's 303 to the app, as the browser does; the app's answer."""
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == ORIGIN
    return await browser.get(f"{location.path}?{location.query}")


def with_query(path: str, **changes: str) -> str:
    base, _, query = path.partition("?")
    params = {name: values[0] for name, values in parse_qs(query).items()} | changes
    return f"{base}?{urlencode(params)}"


def drafts_in(storage: S3Storage) -> list[str]:
    listing = storage.client.list_objects(storage.bucket, prefix=job_service.DRAFTS, recursive=True)
    return sorted(str(found.object_name) for found in listing)


# --- the way through ------------------------------------------------------------------------


async def test_a_list_goes_to_s3_and_comes_back_as_a_draft(s3: MotoS3, tmp_path: Path) -> None:
    storage = await s3_storage(s3)
    async with site(tmp_path / "data", storage) as app:
        ann = await app.lists.account("ann@example.com")
        browser = await app.browser(ann)
        page = await browser.get("/app/jobs/new")
        policy = page.headers["content-security-policy"]
        assert f"form-action 'self' {s3.url};" in policy
        assert "script-src 'self';" in policy  # the rest of the policy is the pages' own
        assert page.headers["cache-control"] == "no-store"
        form = await new_form(browser)
        assert form.action == f"{s3.url}/{storage.bucket}"
        assert form.filename_field == META
        assert form.key == job_service.draft_key(app.lists.web.clock(), form.draft_id)
        assert form.callback.startswith(f"/app/jobs/new/{form.draft_id}/uploaded?expires=")

        with capture_logs() as logs:
            uploaded = await form.post(LIST, quote("Kontakte März.csv"))
            answer = await arrive(browser, uploaded)
        assert answer.status_code == 303, answer.text
        preview = answer.headers["location"]
        assert preview == f"/app/jobs/new/{form.draft_id}"
        shown = await browser.get(preview)
        assert shown.status_code == 200, shown.text
        assert "Kontakte März.csv" in shown.text
        assert "ann@example.com" in shown.text and "later@example.com" in shown.text
        assert drafts_in(storage) == [form.key]
        kept = [entry for entry in logs if entry["event"] == "list_uploaded"]
        assert kept == [
            {
                "event": "list_uploaded",
                "log_level": "info",
                "draft": form.draft_id,
                "bytes": len(LIST),
                "account_id": ann.id,
                "direct": True,
            }
        ]
        assert not any("März" in str(entry) for entry in logs)

        # S3's redirect again (back button, reload): the same draft, nothing kept twice
        with capture_logs() as logs:
            again = await arrive(browser, uploaded)
        assert again.headers["location"] == preview
        assert not [entry for entry in logs if entry["event"] == "list_uploaded"]
        started = await browser.start(preview)
        assert started.headers["location"] == f"/app/jobs/{form.draft_id}"
        assert drafts_in(storage) == []  # moved to the job's upload key
        once_more = await arrive(browser, uploaded)
        assert once_more.status_code == 303
        assert once_more.headers["location"] == f"/app/jobs/{form.draft_id}"


async def test_each_page_signs_a_new_draft(s3: MotoS3, tmp_path: Path) -> None:
    storage = await s3_storage(s3)
    async with site(tmp_path / "data", storage) as app:
        browser = await app.browser(await app.lists.account("ann@example.com"))
        first, second = await new_form(browser), await new_form(browser)
        assert first.draft_id != second.draft_id and first.key != second.key
        # the oldest drafts go past MAX_DRAFTS, their files too, as through the app
        forms = [await new_form(browser) for _ in range(6)]
        for form in forms:
            await arrive(browser, await form.post(LIST, "list.csv"))
        assert drafts_in(storage) == sorted(form.key for form in forms[1:])
        assert (await browser.get(f"/app/jobs/new/{forms[0].draft_id}")).status_code == 404


# --- hostile callbacks ----------------------------------------------------------------------


async def refused(browser: Browser, path: str, status: int, says: str) -> None:
    answer = await browser.get(path)
    assert answer.status_code == status, answer.text
    assert says in answer.text
    assert FORM.search(answer.text) is not None  # the new-list page, with a fresh form


async def test_a_callback_works_for_its_account_key_and_time_only(
    s3: MotoS3, tmp_path: Path
) -> None:
    storage = await s3_storage(s3)
    async with site(tmp_path / "data", storage) as app:
        ann = await app.lists.account("ann@example.com")
        bob = await app.lists.account("bob@example.com")
        browser = await app.browser(ann)
        form = await new_form(browser)
        uploaded = await form.post(LIST, "ann.csv")
        assert uploaded.status_code == 303
        callback = urlsplit(uploaded.headers["location"])
        path = f"{callback.path}?{callback.query}"
        sig = parse_qs(callback.query)["sig"][0]
        expires = parse_qs(callback.query)["expires"][0]
        other = await new_form(browser)
        not_ours = "the link is not this account"

        # bob, signed in in this browser (without signing out), follows ann's link
        assert (await browser.post(f"/t/sign-in/{bob.id}")).status_code == 200
        await refused(browser, path, 403, not_ours)
        assert (await browser.get(f"/app/jobs/new/{form.draft_id}")).status_code == 404
        assert (await browser.post(f"/t/sign-in/{ann.id}")).status_code == 200
        flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        await refused(browser, with_query(path, sig=flipped), 403, not_ours)
        await refused(browser, with_query(path, sig="é" * 64), 403, not_ours)
        await refused(browser, with_query(path, sig=""), 403, not_ours)
        await refused(browser, with_query(path, expires=str(int(expires) + 3600)), 403, not_ours)
        await refused(browser, with_query(path, key=other.key), 403, not_ours)
        await refused(browser, with_query(path, key="validation/uploaded/x"), 403, not_ours)
        wrong_draft = path.replace(form.draft_id, other.draft_id, 1)
        await refused(browser, wrong_draft, 403, not_ours)
        assert (await browser.get(with_query(path, expires="soon"))).status_code == 400
        assert drafts_in(storage) == [form.key]  # none of that touched ann's file

        answer = await browser.get(path)  # ann's own, untouched
        assert answer.headers["location"] == f"/app/jobs/new/{form.draft_id}"
        assert (await browser.get(answer.headers["location"])).status_code == 200


async def test_an_expired_callback_drops_its_file(s3: MotoS3, tmp_path: Path) -> None:
    storage = await s3_storage(s3)
    async with site(tmp_path / "data", storage) as app:
        ann = await app.lists.account("ann@example.com")
        browser = await app.browser(ann)
        form = await new_form(browser)
        assert (await form.post(LIST, "late.csv")).status_code == 303
        late = uploaded_path(
            app.lists.web.secret_key,
            account_id=ann.id,
            draft_id=form.draft_id,
            key=form.key,
            now=app.lists.web.clock() - timedelta(hours=3),
            seconds=3600,
        )
        await refused(browser, with_query(late, key=form.key), 400, "took too long")
        assert drafts_in(storage) == []
        assert (await browser.get(f"/app/jobs/new/{form.draft_id}")).status_code == 404


async def test_a_missing_an_empty_or_an_oversized_file_is_refused(
    s3: MotoS3, tmp_path: Path
) -> None:
    storage = await s3_storage(s3)
    async with site(tmp_path / "data", storage, max_upload_bytes=len(LIST)) as app:
        browser = await app.browser(await app.lists.account("ann@example.com"))
        never = await new_form(browser)
        await refused(browser, with_query(never.callback, key=never.key), 400, "did not arrive")

        empty = await new_form(browser)
        answer = await empty.post(b"", "empty.csv")  # S3 would refuse it; moto keeps it
        assert answer.status_code == 303
        await refused(browser, with_query(empty.callback, key=empty.key), 400, "is empty")

        big = await new_form(browser)
        assert ["content-length-range", 1, len(LIST)] in policy_conditions(big)
        answer = await big.post(LIST + b"x", "big.csv")  # one byte too many
        assert answer.status_code == 303
        await refused(
            browser, with_query(big.callback, key=big.key), 413, f"limit of {len(LIST)} bytes"
        )
        assert drafts_in(storage) == []

        fits = await new_form(browser)
        answer = await arrive(browser, await fits.post(LIST, "fits.csv"))
        assert answer.headers["location"] == f"/app/jobs/new/{fits.draft_id}"


def policy_conditions(form: Form) -> list[object]:
    conditions = policy_of(form.fields)["conditions"]
    assert isinstance(conditions, list)
    return conditions


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (quote("<script>alert(1)</script>.csv"), "script&gt;.csv"),
        (quote("../../etc/passwd.csv"), "passwd.csv"),
        (quote("..\\..\\boot.ini.csv"), "boot.ini.csv"),
        (quote("\r\nSet-Cookie: x=y\r\n.csv"), "Set-Cookie: x=y.csv"),
        ("naïve.csv", "naïve.csv"),  # raw UTF-8, not through jobs.js
        ("%E0%A4%A", "\ufffd%A"),  # broken escapes: replaced, not an error
        ("", "upload"),  # no script: the name field stays empty
        (quote("   "), "upload"),
    ],
)
async def test_the_file_name_is_cleaned_as_through_the_app(
    s3: MotoS3, tmp_path: Path, sent: str, kept: str
) -> None:
    storage = await s3_storage(s3)
    async with site(tmp_path / "data", storage) as app:
        browser = await app.browser(await app.lists.account("ann@example.com"))
        form = await new_form(browser)
        answer = await arrive(browser, await form.post(LIST, sent))
        preview = await browser.get(answer.headers["location"])
        assert preview.status_code == 200, preview.text
        assert kept in preview.text
        assert "<script>alert" not in preview.text


# --- through the app when the storage is not S3 ---------------------------------------------


async def test_other_storage_keeps_the_upload_through_the_app(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    async with site(tmp_path / "data", storage) as app:
        ann = await app.lists.account("ann@example.com")
        browser = await app.browser(ann)
        page = await browser.get("/app/jobs/new")
        assert 'action="/app/jobs/new"' in page.text
        assert 'name="_csrf_token"' in page.text
        assert "data-filename" not in page.text
        assert "form-action 'self';" in page.headers["content-security-policy"]
        path = uploaded_path(
            app.lists.web.secret_key,
            account_id=ann.id,
            draft_id="a" * 32,
            key=f"{job_service.DRAFTS}20261201/{'a' * 32}",
            now=app.lists.web.clock(),
            seconds=60,
        )
        assert (await browser.get(path)).status_code == 404
        uploaded = await browser.upload("list.csv", LIST)
        assert uploaded.status_code == 303, uploaded.text


async def test_other_pages_keep_form_action_self_with_s3(s3: MotoS3, tmp_path: Path) -> None:
    storage = await s3_storage(s3)
    async with site(tmp_path / "data", storage) as app:
        browser = await app.browser(await app.lists.account("ann@example.com"))
        for path in ("/app", "/login", "/app/account"):
            answer = await browser.get(path)
            assert "form-action 'self';" in answer.headers["content-security-policy"], path
            assert s3.url not in answer.headers["content-security-policy"]
