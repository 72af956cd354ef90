"""Issue 8 §6 in Debian's Chromium, against the whole SaaS (tests/e2e/harness.py):

- sign up -> the code from the mail the SMTP catcher got -> confirm -> sign in -> turn on
  TOTP with a code computed from the secret the page shows -> sign out -> sign in with a
  TOTP code -> upload a CSV -> preview -> start -> the live progress reaches 100% and
  "Completed" -> download the whole result and the deliverable segment and compare their
  rows with the list; a second account gets 404 for the first one's job and its download;
- Google sign-in through the fake OpenID provider (a new account, connected on its page);
- password reset through the mailed link, then a sign-in with the new password;
- XSS: `<script>` and `"><img src=x onerror=...>` in the names and the file name (and its
  cells) are shown as text on every page they reach: no dialog opens, no such element
  exists, and no request leaves for a host the page has no business with;
- the account page and the administrators' pages (grant credits, the jobs list).

Each page is saved to tests/e2e/screenshots/ (git-ignored); docs/screenshots/ keeps a few.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest
import pytest_asyncio
from playwright.async_api import FilePayload, Page, expect

from mailvet.domain.verdict import RESULT_COLUMNS
from tests.browser import NEEDS_CHROMIUM
from tests.e2e.harness import PASSWORD, Harness, running_site, text_of
from tests.fake_oidc import FakeUser, running_fake_oidc

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    NEEDS_CHROMIUM,
]

GRAVATAR = "www.gravatar.com"
XSS_IMG = '"><img src=x onerror=alert(1)>'
XSS_SCRIPT = "<script>alert(2)</script>"
HOSTILE_FILE = XSS_IMG + "<script>alert(3).csv"  # a file name has no "/"
LIST_ROWS = [
    ("email", "name"),
    ("ann@example.com", "Ann"),
    ("gone@example.com", "Gone"),
    ("bob@example.org", "Bob"),
    ("Ann@Example.com", "Ann again"),
    ("not an address", "Nobody"),
    ("cy@example.net", "Cy"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    with running_fake_oidc() as provider:
        async with running_site(tmp_path_factory.mktemp("e2e"), provider) as running:
            yield running


def list_csv(rows: list[tuple[str, str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


def png() -> bytes:
    from PIL import Image, ImageDraw

    out = io.BytesIO()
    picture = Image.new("RGB", (64, 64), (40, 90, 170))
    ImageDraw.Draw(picture).ellipse((14, 14, 50, 50), fill=(250, 200, 60))
    picture.save(out, "PNG")
    return out.getvalue()


def result_rows(path: Path) -> list[list[str]]:
    text = path.read_bytes().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


async def sign_up(h: Harness, page: Page, email: str, first: str, last: str) -> None:
    await page.goto("/signup")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("First name").fill(first)
    await page.get_by_label("Last name").fill(last)
    await h.shot(page, "signup")
    await page.get_by_role("button", name="Sign up", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/confirm$"))
    await h.shot(page, "confirm")
    await page.get_by_label("Confirmation code").fill(await h.code_for(email))
    await page.get_by_role("button", name="Confirm", exact=True).click()


async def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.locator("main").get_by_role("button", name="Sign in", exact=True).click()


async def upload(h: Harness, page: Page, name: str, content: bytes) -> str:
    """Upload on the new-list page, start it from the preview; the job page's path."""
    await page.goto("/app/jobs/new")
    await h.shot(page, "new-list")
    chosen: FilePayload = {"name": name, "mimeType": "text/csv", "buffer": content}
    await page.get_by_label("File").set_input_files(files=[chosen])
    await page.get_by_role("button", name="Upload and preview").click()
    await expect(page.locator("#cost")).to_be_visible()
    assert await page.locator("img[src=x]").count() == 0  # the cells are text
    await h.shot(page, "preview", full=True)
    await page.get_by_role("button", name="Start validation").click()
    await expect(page).to_have_url(re.compile(r"/app/jobs/[0-9a-f]{32}$"))
    return "/" + page.url.split("/", 3)[3]


async def download(page: Page, segment: str, folder: Path) -> Path:
    async with page.expect_download() as info:
        await page.locator(f'a[data-segment="{segment}"]').click()
    done = await info.value
    target = folder / f"{segment}-{done.suggested_filename}"
    await done.save_as(target)
    return target


async def test_sign_up_totp_upload_progress_downloads_and_ownership(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    email = "dana.wu@example.com"
    w = await h.page()
    page = w.page
    await sign_up(h, page, email, "Dana", "Wu")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await sign_in(page, email)
    await expect(page).to_have_url(re.compile(r"/app$"))
    await h.shot(page, "dashboard-empty")

    # TOTP on, with a code computed from the secret shown beside the QR code
    await page.goto("/app/account/two-factor")
    await page.get_by_role("button", name="Turn on two-factor authentication").click()
    secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
    await expect(page.locator(".qr svg")).to_be_visible()
    await h.shot(page, "two-factor-setup", full=True)
    totp = pyotp.TOTP(secret)
    await page.get_by_label("Authentication code").fill(totp.at(h.clock()))
    await page.get_by_role("button", name="Turn on", exact=True).click()
    await expect(page.locator(".recovery-codes li")).to_have_count(10)
    await h.shot(page, "recovery-codes")
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page.get_by_role("link", name="Sign in", exact=True)).to_be_visible()

    # the password, then a code of a newer step (the first one cannot be used again)
    h.clock.advance(seconds=31)
    await sign_in(page, email)
    await expect(page).to_have_url(re.compile(r"/login/two-factor$"))
    await h.shot(page, "login-two-factor")
    await page.get_by_label("Authentication code").fill(totp.at(h.clock()))
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/app$"))

    # a list, its live progress to 100%, the downloads
    job_path = await upload(h, page, "customers.csv", list_csv(LIST_ROWS))
    await expect(page.locator("#job-status")).to_have_text("Completed", timeout=20_000)
    await expect(page.locator("#rows-done")).to_have_text(str(len(LIST_ROWS) - 1))
    await expect(page.locator("#rows-total")).to_have_text(str(len(LIST_ROWS) - 1))
    await expect(page.locator(".job-progress")).to_contain_text("(100%)")
    await h.shot(page, "job-completed", full=True)
    whole = result_rows(await download(page, "all", tmp_path))
    status = len(LIST_ROWS[0])  # the result columns follow the list's own
    assert whole[0][:status] == list(LIST_ROWS[0])
    assert whole[0][status:] == list(RESULT_COLUMNS)
    assert [tuple(row[:status]) for row in whole[1:]] == LIST_ROWS[1:]
    verdicts = {row[0]: row[status] for row in whole[1:]}
    assert verdicts["ann@example.com"] == "deliverable"
    assert verdicts["gone@example.com"] == "undeliverable"
    assert verdicts["not an address"] == "undeliverable"
    deliverable = result_rows(await download(page, "deliverable", tmp_path))
    assert deliverable[0] == whole[0]
    assert deliverable[1:] == [row for row in whole[1:] if row[status] == "deliverable"]
    assert len(deliverable) > 1
    await page.goto("/app")
    await expect(page.locator("#balance")).to_be_visible()
    await h.shot(page, "dashboard")

    # another account: the job is not found, nor its download
    await h.account("eve@example.com")
    other = (await h.page()).page
    await sign_in(other, "eve@example.com")
    await expect(other).to_have_url(re.compile(r"/app$"))
    answer = await other.goto(job_path)
    assert answer is not None and answer.status == 404
    answer = await other.goto(job_path + "/download/all")
    assert answer is not None and answer.status == 404
    await h.shot(other, "job-of-another-account")
    assert w.dialogs == [] and w.unexpected() == [] and w.errors == []


async def test_google_sign_in_creates_a_connected_account(harness: Harness) -> None:
    h = harness
    h.oidc.user = FakeUser(sub="g-555", email="gina@example.com", given_name="Gina")
    w = await h.page()
    page = w.page
    for path, name in [("/", "home"), ("/pricing", "pricing"), ("/docs", "docs")]:
        await page.goto(path)
        await h.shot(page, name)
    await page.goto("/login")
    await h.shot(page, "login")
    await page.get_by_role("link", name="Sign in with Google").click()
    await expect(page).to_have_url(re.compile(r"/app$"))
    await page.goto("/app/account")
    await expect(page.locator("#google-status")).to_contain_text("connected")
    await expect(page.locator("#account-email")).to_have_text("gina@example.com")
    await expect(page.locator("#account-picture")).to_have_attribute(
        "src", re.compile(r"^https://lh3\.googleusercontent\.com/")
    )
    assert w.dialogs == []
    oidc_host = h.oidc.issuer.split("//", 1)[1]
    assert w.unexpected(oidc_host, "lh3.googleusercontent.com") == []
    assert oidc_host in w.outside  # the provider was asked, on this machine


async def test_password_reset_through_the_mailed_link(harness: Harness) -> None:
    h = harness
    email = "fay@example.com"
    await h.account(email)
    w = await h.page()
    page = w.page
    await page.goto("/forgot-password")
    await page.get_by_label("Email").fill(email)
    await page.get_by_role("button", name="Send the link").click()
    await h.shot(page, "forgot-password")
    message = await h.mail(email, "Reset")
    reset = re.escape(h.base) + r"/reset-password\?token=[A-Za-z0-9_\-]+"
    link = re.search(reset, text_of(message))
    assert link is not None, text_of(message)
    await page.goto(link.group(0))
    new_password = "a brand new pass phrase"
    await page.get_by_label("New password").fill(new_password)
    await h.shot(page, "reset-password")
    await page.get_by_role("button", name="Set the password").click()
    await sign_in(page, email, PASSWORD)
    await expect(page.locator("main")).to_contain_text("not right")
    await sign_in(page, email, new_password)
    await expect(page).to_have_url(re.compile(r"/app$"))
    assert w.dialogs == [] and w.unexpected() == []


async def test_hostile_names_and_file_names_stay_text(harness: Harness) -> None:
    h = harness
    email = "mallory@example.com"
    w = await h.page()
    page = w.page
    await page.goto("/signup")  # an error text that repeats what was typed
    await page.get_by_label("Email").fill(XSS_IMG + "@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign up", exact=True).click()
    await expect(page.get_by_label("Email")).to_have_value(XSS_IMG + "@example.com")
    await expect(page.locator(".field-error").first).to_be_visible()
    assert await page.locator("img[src=x]").count() == 0
    await sign_up(h, page, email, XSS_IMG, XSS_SCRIPT)
    await sign_in(page, email)
    await expect(page).to_have_url(re.compile(r"/app$"))
    hostile = [("email", XSS_IMG), ("ann@example.com", XSS_SCRIPT)]
    job_path = await upload(h, page, HOSTILE_FILE, list_csv(hostile))
    await expect(page.locator("#job-status")).to_have_text("Completed", timeout=20_000)
    await expect(page.locator("h1")).to_have_text(HOSTILE_FILE)
    for path in ("/app", job_path, "/app/account", "/app/account/two-factor"):
        await page.goto(path)
        await expect(page.locator("main")).to_be_visible()
        assert await page.locator("img[src=x]").count() == 0, path
        assert await page.locator("main script").count() == 0, path
    await page.goto("/app/account")
    await expect(page.locator("#account-name")).to_have_text(f"{XSS_IMG} {XSS_SCRIPT}")
    await h.shot(page, "account-hostile-names")
    assert w.dialogs == []
    assert w.unexpected(GRAVATAR) == []  # the account page's fallback picture only
    assert w.errors == []


async def test_account_page_and_admin(harness: Harness) -> None:
    h = harness
    await h.account("root@example.com", admin=True)
    user = await h.account("hal@example.com")
    w = await h.page()
    page = w.page
    await sign_in(page, "root@example.com")
    await page.goto("/app/account")
    await page.get_by_label("First name").fill("Ada")
    await page.get_by_role("button", name="Save the details").click()
    await expect(page.locator("#account-name")).to_have_text("Ada Smith")
    picture: FilePayload = {"name": "me.png", "mimeType": "image/png", "buffer": png()}
    await page.get_by_label("Picture", exact=True).set_input_files(files=[picture])
    await page.get_by_role("button", name="Upload the picture").click()
    avatar = page.locator("#account-picture")
    await expect(avatar).to_have_attribute("src", re.compile(r"^/app/account/picture\?v="))
    await page.wait_for_function(
        "() => document.querySelector('#account-picture').naturalWidth === 64"
    )
    await h.shot(page, "account", full=True)
    await page.goto("/admin")
    await page.get_by_label("Search").fill("hal@")
    await page.get_by_role("button", name="Search").click()
    await h.shot(page, "admin-users")
    await page.get_by_role("link", name="hal@example.com").click()
    await expect(page.locator("#user-balance")).to_contain_text("100 credits")
    await page.get_by_label("Credits").fill("25")
    await page.get_by_label("Reason").fill("a goodwill gesture")
    await page.get_by_role("button", name="Adjust the balance").click()
    await expect(page.locator("#user-balance")).to_contain_text("125 credits")
    await expect(page.locator("table.entries")).to_contain_text("a goodwill gesture")
    await h.shot(page, "admin-user", full=True)
    assert page.url.endswith(f"/admin/users/{user.id}")
    await page.goto("/admin/jobs")
    await expect(page.locator("table.jobs")).to_be_visible()
    await h.shot(page, "admin-jobs")
    assert w.dialogs == [] and w.unexpected(GRAVATAR) == [] and w.errors == []
