"""The sign-in pages' own security properties: CSRF on every form, a label on every field,
no inline script, every user-supplied string escaped, the captcha only when configured
(and then required), and no open redirect after signing in."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from mailvet.adapters.captcha import MemoryCaptcha
from tests.web.auth_helpers import (
    PASSWORD,
    auth_app,
    browser,
    confirmed_account,
    log_in,
    sign_up,
    turn_on_totp,
)

pytestmark = pytest.mark.pipeline

EMAIL = "ann.lee@example.com"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
POSTS = (
    "/signup",
    "/confirm",
    "/confirm/resend",
    "/login",
    "/login/two-factor",
    "/logout",
    "/logout/everywhere",
    "/forgot-password",
    "/reset-password",
    "/app/account/two-factor/setup",
    "/app/account/two-factor/enable",
    "/app/account/two-factor/recovery-codes",
    "/app/account/two-factor/disable",
    "/app/account/password",
)


class Page(HTMLParser):
    """What a page is made of, for the checks: its POST forms (with or without the CSRF
    field), its visible fields and which of them have a label, its scripts and any
    on...= attribute."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.forms: list[set[str]] = []  # per POST form: the names of its fields
        self.fields: list[str] = []  # ids of the visible fields
        self.labelled: set[str] = set()
        self.inline_scripts = 0
        self.script_sources: list[str] = []
        self.handlers: list[str] = []
        self._in_post = False
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.handlers += [k for k in a if k.startswith("on")]
        if tag == "form":
            self._in_post = a.get("method", "get").lower() == "post"
            if self._in_post:
                self.forms.append(set())
        elif tag in ("input", "select", "textarea"):
            if self._in_post:
                self.forms[-1].add(a.get("name", ""))
            if a.get("type", "text") not in ("hidden", "submit"):
                self.fields.append(a.get("id", ""))
        elif tag == "label" and a.get("for"):
            self.labelled.add(a["for"])
        elif tag == "script":
            if a.get("src"):
                self.script_sources.append(a["src"])
            else:
                self._in_script = True

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_post = False
        elif tag == "script":
            self._in_script = False


def check_page(name: str, answer: httpx.Response) -> Page:
    assert answer.status_code in (200, 400), (name, answer.status_code)
    page = Page(answer.text)
    assert page.forms or name in ("reset expired", "codes"), name
    for fields in page.forms:
        assert "_csrf_token" in fields, name
    unlabelled = [field for field in page.fields if field not in page.labelled]
    assert unlabelled == [], (name, unlabelled)
    assert page.inline_scripts == 0 and page.handlers == [], name
    assert all(src.startswith("/static/") for src in page.script_sources), name
    for payload in (SCRIPT, IMG, "<img", "<script>alert"):
        assert payload not in answer.text, (name, payload)
    return page


async def test_every_page_labels_its_fields_carries_csrf_and_escapes_names(
    tmp_path: Path,
) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        anonymous = b.fresh()
        check_page("signup", await anonymous.get("/signup"))
        check_page("login", await anonymous.get("/login"))
        check_page("forgot", await anonymous.get("/forgot-password"))
        check_page("confirm without an address", await anonymous.get("/confirm"))
        check_page("reset expired", await anonymous.get("/reset-password?token=nope"))
        # hostile names and addresses typed into the forms come back escaped
        weak = await sign_up(anonymous, f"{SCRIPT}@example.com", first_name=SCRIPT, last_name=IMG)
        check_page("signup again", weak)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in weak.text
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in weak.text
        check_page("login again", await log_in(anonymous, IMG, "whatever it is"))

        await confirmed_account(s, b, EMAIL, first_name=SCRIPT, last_name=IMG)
        row = await s.account_row(EMAIL)
        assert row is not None and (row.first_name, row.last_name) == (SCRIPT, IMG)
        await log_in(b, EMAIL)
        for path in ("/app/account/two-factor", "/app/account/password"):
            answer = await b.get(path)
            check_page(path, answer)
            assert "&lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img" in answer.text
        setup = await b.post("/app/account/two-factor/setup")
        check_page("setup", setup)
        _secret, _codes = await turn_on_totp(s, b)
        s.clock.advance(minutes=11)  # the re-authentication fields show
        on = await b.get("/app/account/two-factor")
        check_page("two-factor on, re-authentication due", on)
        assert 'id="disable-password"' in on.text
        await b.post("/logout")
        await log_in(b, EMAIL)
        check_page("second factor", await b.get("/login/two-factor"))
        reset_page = b.fresh()
        await reset_page.post("/forgot-password", {"email": EMAIL})
        link = await s.reset_link_for(EMAIL)
        check_page("reset", await reset_page.get(link.removeprefix("https://testserver.local")))


async def test_every_form_refuses_a_post_without_the_csrf_token(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        await log_in(b, EMAIL)
        for path in POSTS:
            answer = await b.post(
                path, {"email": "new@example.com", "password": PASSWORD}, csrf=False
            )
            assert answer.status_code == 403, path
            assert "This form has expired" in answer.text
        assert await s.account_row("new@example.com") is None
        assert await b.whoami() == "signed in"  # /logout without a token did nothing


async def test_the_captcha_when_configured(tmp_path: Path) -> None:
    env = {"MAILVET_RECAPTCHA_SITE_KEY": "site-key-1", "MAILVET_RECAPTCHA_SECRET_KEY": "secret"}
    captcha = MemoryCaptcha(site_key="site-key-1")
    async with auth_app(tmp_path, env, captcha=captcha) as s, browser(s.app) as b:
        for path in ("/signup", "/login"):
            page = await b.get(path)
            sources = Page(page.text).script_sources
            assert "https://www.google.com/recaptcha/api.js" in sources, path
            assert 'class="g-recaptcha" data-sitekey="site-key-1"' in page.text
            assert "https://www.google.com/recaptcha/" in page.headers["content-security-policy"]
        no_token = await sign_up(b, EMAIL)
        assert no_token.status_code == 400 and "not a robot" in no_token.text
        assert await s.account_row(EMAIL) is None
        passed = await sign_up(b, EMAIL, **{"g-recaptcha-response": "human"})
        assert passed.status_code == 303
        assert (await log_in(b, EMAIL)).status_code == 400
        robot = await log_in(b, EMAIL, **{"g-recaptcha-response": "robot"})
        assert robot.status_code == 400 and "not a robot" in robot.text
        human = await log_in(b, EMAIL, **{"g-recaptcha-response": "human"})
        assert human.status_code == 303
        assert captcha.calls[-1] == ("human", "testclient")


async def test_no_captcha_script_when_not_configured(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        for path in ("/signup", "/login"):
            page = await b.get(path)
            assert "recaptcha" not in page.text
            assert "google.com" not in page.headers["content-security-policy"]


async def test_no_open_redirect_after_sign_in(tmp_path: Path) -> None:
    async with auth_app(tmp_path) as s, browser(s.app) as b:
        await confirmed_account(s, b, EMAIL)
        for target in (
            "//evil.example/x",
            "https://evil.example/",
            "/\\evil.example",
            "javascript:x",
        ):
            visitor = b.fresh()
            await visitor.get(f"/login?next={target}")
            answer = await visitor.post(
                "/login", {"email": EMAIL, "password": PASSWORD, "next": target}
            )
            assert answer.headers["location"] == "/app", target
        visitor = b.fresh()
        form = await visitor.get("/login?next=/app/account/password")
        assert 'name="next" value="/app/account/password"' in form.text
        answer = await visitor.post(
            "/login", {"email": EMAIL, "password": PASSWORD, "next": "/app/account/password"}
        )
        assert answer.headers["location"] == "/app/account/password"
