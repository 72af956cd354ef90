"""CSRF on every state-changing form (only /api/* exempt), the security headers on every
kind of answer, CORS on /api/* alone, and error pages: HTML for browsers, JSON otherwise."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mailvet.web.app import SCALAR, SCALAR_CSS, TEMPLATES_DIR
from mailvet.web.security import HSTS, RECAPTCHA_SCRIPTS
from tests.web.shell_helpers import client, csrf_token, shell

pytestmark = pytest.mark.pipeline

HTML = {"accept": "text/html,application/xhtml+xml"}
PAGES = ("/", "/pricing", "/docs", "/privacy", "/terms")


class Forms(HTMLParser):
    """The POST forms of a page, each with its field names, and which ids have a label."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []  # per POST form: field name -> type
        self.fields: list[tuple[str, str]] = []  # (id, type) of every visible field
        self.labelled: set[str] = set()
        self._in_post = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._in_post = a.get("method", "get").lower() == "post"
            if self._in_post:
                self.forms.append({})
        elif tag in ("input", "select", "textarea"):
            kind = a.get("type", tag)
            if self._in_post:
                self.forms[-1][a.get("name", "")] = kind
            if kind not in ("hidden", "submit"):
                self.fields.append((a.get("id", ""), kind))
        elif tag == "label" and a.get("for"):
            self.labelled.add(a["for"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_post = False


async def test_a_post_without_a_csrf_token_is_refused(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        await c.get("/")  # the CSRF cookie is set
        as_json = await c.post("/demo", data={"email": "ann@example.com"})
        assert as_json.status_code == 403
        assert as_json.json() == {"error": "CSRF token verification failed"}
        page = await c.post("/demo", data={"email": "ann@example.com"}, headers=HTML)
        assert page.status_code == 403
        assert page.headers["content-type"].startswith("text/html")
        assert "This form has expired" in page.text
        forged = await c.post("/demo", data={"email": "a@example.com", "_csrf_token": "x" * 80})
        assert forged.status_code == 403


async def test_a_post_with_the_token_in_the_form_or_the_header_goes_through(
    tmp_path: Path,
) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        token = await csrf_token(c)
        form = await c.post("/demo", data={"email": "ann@example.com", "_csrf_token": token})
        assert form.status_code == 200
        header = await c.post(
            "/demo", data={"email": "ann@example.com"}, headers={"x-csrftoken": token}
        )
        assert header.status_code == 200


async def test_a_token_of_another_browser_is_refused(tmp_path: Path) -> None:
    async with shell(tmp_path) as s:
        async with client(s.app) as first:
            theirs = await csrf_token(first)
        async with client(s.app) as second:
            await csrf_token(second)  # its own cookie
            answer = await second.post("/demo", data={"email": "a@b.co", "_csrf_token": theirs})
            assert answer.status_code == 403


async def test_the_api_is_exempt_from_csrf(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        await c.get("/")  # a browser with its CSRF cookie, sending no token
        answer = await c.post("/api/t/echo", json={"a": "b"})
        assert answer.status_code == 201, answer.text
        page = await c.post("/t/flash")  # the same request to a page is refused
        assert page.status_code == 403


async def test_every_form_of_the_public_pages_has_a_token_and_labels(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        seen_forms = 0
        for path in PAGES:
            parser = Forms()
            parser.feed((await c.get(path, headers=HTML)).text)
            for form in parser.forms:
                assert form.get("_csrf_token") == "hidden", (path, form)
            seen_forms += len(parser.forms)
            for field_id, kind in parser.fields:
                assert field_id and field_id in parser.labelled, (path, field_id, kind)
        assert seen_forms >= 1  # the demo form


async def test_security_headers_on_pages_errors_static_and_health(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        answers = {
            "page": await c.get("/", headers=HTML),
            "404": await c.get("/no/such/page", headers=HTML),
            "404 json": await c.get("/api/nothing"),
            "static": await c.get("/static/app.css"),
            "health": await c.get("/health"),
            "500": await c.get("/t/boom", headers=HTML),
        }
        assert answers["404"].status_code == 404
        assert answers["500"].status_code == 500
        for name, answer in answers.items():
            h = answer.headers
            csp = h.get("content-security-policy", "")
            assert "script-src 'self'" in csp, name
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, name
            assert "frame-ancestors 'none'" in csp, name
            assert h.get("x-frame-options") == "DENY", name
            assert h.get("x-content-type-options") == "nosniff", name
            assert h.get("referrer-policy") == "strict-origin-when-cross-origin", name
            assert "camera=()" in h.get("permissions-policy", ""), name
            assert h.get("strict-transport-security") == HSTS, name


async def test_no_hsts_on_plain_http(tmp_path: Path) -> None:
    env = {"MAILVET_PUBLIC_URL": "http://127.0.0.1:8000"}
    async with shell(tmp_path, env) as s, client(s.app, "http://testserver.local") as c:
        answer = await c.get("/")
        assert "strict-transport-security" not in answer.headers
        assert answer.headers["x-frame-options"] == "DENY"


async def test_templates_carry_no_inline_script_or_handler(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        for path in PAGES:
            text = (await c.get(path, headers=HTML)).text
            for script in re.findall(r"<script\b[^>]*>", text):
                assert 'src="/static/' in script, (path, script)
            assert not re.search(r"\son[a-z]+\s*=", text), path
            assert "<style" not in text and "style=" not in text, path


POST_FORM = re.compile(r"<form\b[^>]*\bmethod=\"post\"[^>]*>(.*?)</form>", re.S | re.I)


def test_every_template_posts_with_a_token_and_holds_no_inline_code() -> None:
    """Every template, not only the pages a crawl reaches: each POST form carries the CSRF
    token (csrf_input), and nothing the CSP forbids is written inline."""
    templates = sorted(TEMPLATES_DIR.rglob("*.html"))
    assert len(templates) >= 30
    forms = 0
    for path in templates:
        text = path.read_text(encoding="utf-8")
        name = str(path.relative_to(TEMPLATES_DIR))
        for body in POST_FORM.findall(text):
            forms += 1
            assert "csrf_input" in body, name
        for script in re.findall(r"<script\b[^>]*>", text):
            source = re.search(r"\ssrc=\"([^\"]+)\"", script)
            assert source is not None, (name, script)  # no inline script
            vendored = source[1].startswith("{{ static_url(")
            assert vendored or source[1].startswith(RECAPTCHA_SCRIPTS.split()[0]), (name, script)
        assert not re.search(r"\s(?:hx-)?on[a-z:-]*\s*=", text), name
        assert "<style" not in text and "style=" not in text, name
    assert forms >= 20


async def test_error_pages_are_html_for_browsers_and_json_otherwise(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        page = await c.get("/missing", headers=HTML)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "Page not found" in page.text
        assert (await c.get("/missing")).json() == {"error": "Not Found"}
        api = await c.get("/api/t/things/nope", headers=HTML)  # /api: JSON whatever it accepts
        assert api.status_code == 404
        assert api.json() == {"error": "no such thing: nope"}
        boom = await c.get("/t/boom", headers=HTML)
        assert boom.status_code == 500
        assert "broken on purpose" not in boom.text  # nothing of the exception leaks
        assert (await c.get("/t/boom")).json() == {"error": "internal error"}


async def test_cors_answers_only_on_the_api_and_only_to_listed_origins(tmp_path: Path) -> None:
    env = {"MAILVET_CORS_ORIGINS": "https://app.example.com"}
    async with shell(tmp_path, env) as s, client(s.app) as c:
        ok = {"origin": "https://app.example.com"}
        evil = {"origin": "https://evil.example.net"}
        api = await c.get("/api/t/things/nope", headers=ok)
        assert api.headers["access-control-allow-origin"] == "https://app.example.com"
        assert (
            "access-control-allow-origin"
            not in (await c.get("/api/t/things/x", headers=evil)).headers
        )
        assert "access-control-allow-origin" not in (await c.get("/", headers=ok)).headers
        preflight = await c.options(
            "/api/t/echo",
            headers={**ok, "access-control-request-method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "access-control-allow-credentials" not in preflight.headers
        page_preflight = await c.options(
            "/demo", headers={**ok, "access-control-request-method": "POST"}
        )
        assert "access-control-allow-origin" not in page_preflight.headers


async def test_without_cors_origins_the_api_sends_no_cors_header(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        answer = await c.get("/api/t/things/nope", headers={"origin": "https://app.example.com"})
        assert "access-control-allow-origin" not in answer.headers


async def test_the_api_reference_page_loads_only_vendored_files(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        reference = await c.get("/schema", headers=HTML)
        assert reference.status_code == 200
        policy = reference.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "https:" not in policy
        assert "frame-ancestors 'none'" in policy
        assert f'src="/static/{SCALAR}"' in reference.text
        assert f'href="/static/{SCALAR_CSS}"' in reference.text
        assert "https://" not in reference.text  # no CDN script, style or favicon
        assert (await c.get(f"/static/{SCALAR}")).status_code == 200
        home = await c.get("/", headers=HTML)
        assert "'unsafe-inline'" not in home.headers["content-security-policy"]


async def test_an_htmx_request_gets_an_error_fragment(tmp_path: Path) -> None:
    async with shell(tmp_path) as s, client(s.app) as c:
        await c.get("/")
        refused = await c.post("/demo", data={"email": "a@b.co"}, headers={"hx-request": "true"})
        assert refused.status_code == 403
        assert refused.text.lstrip().startswith('<div class="flash flash-error" role="alert">')
        assert "<html" not in refused.text


async def test_a_refusal_page_gives_the_wait_in_words(tmp_path: Path) -> None:
    # the clock starts 30 s into an hour: the second page of the hour waits 3570 s
    async with shell(tmp_path, {"MAILVET_WEB_RATE_LIMIT": "1/hour"}) as s, client(s.app) as c:
        assert (await c.get("/pricing")).status_code == 200
        page = await c.get("/pricing", headers=HTML)
        assert page.status_code == 429 and page.headers["retry-after"] == "3570"
        assert "Try again in 60 minutes." in page.text
        fragment = await c.get("/pricing", headers={"hx-request": "true"})
        assert fragment.status_code == 429
        assert "Try again in 60 minutes." in fragment.text and "<html" not in fragment.text
        assert "3570 seconds" not in page.text + fragment.text
