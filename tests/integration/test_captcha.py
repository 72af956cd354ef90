"""reCAPTCHA v2 (mailvet.adapters.captcha) against a local fake siteverify endpoint: passes
only on the provider's yes; a no, a token of another site, an outage, a hanging provider or
a strange answer all refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, post
from litestar.response import Response

from mailvet.adapters.captcha import (
    CaptchaCheck,
    MemoryCaptcha,
    NoCaptcha,
    Recaptcha,
    build_captcha,
)
from mailvet.domain.identity import Captcha
from mailvet.settings import WebSettings
from tests.local_http import closed_port, serving, silent_port

pytestmark = pytest.mark.integration

SECRET = "fake-recaptcha-secret"
HOSTNAME = "mailvet.example"


@dataclass
class FakeSiteverify:
    """Google's siteverify, as documented: form `secret`, `response`, `remoteip`; JSON
    `success`, `challenge_ts`, `hostname`, `error-codes`; a token is good once."""

    tokens: dict[str, str] = field(default_factory=dict)  # token -> hostname it was solved on
    requests: list[dict[str, str]] = field(default_factory=list)
    status: int = 200  # answer this status instead (with an HTML body)
    body: Any = None  # answer this JSON instead

    def reset(self) -> None:
        self.tokens.clear()
        self.requests.clear()
        self.status, self.body = 200, None

    def answer(self, form: dict[str, str]) -> Response[Any]:
        self.requests.append(form)
        if self.status != 200:
            return Response("<html>Service Unavailable</html>", status_code=self.status)
        if self.body is not None:
            return Response(self.body)
        if form.get("secret") != SECRET:
            return Response({"success": False, "error-codes": ["invalid-input-secret"]})
        hostname = self.tokens.pop(form.get("response", ""), None)
        if hostname is None:
            return Response({"success": False, "error-codes": ["timeout-or-duplicate"]})
        return Response(
            {"success": True, "challenge_ts": "2026-12-01T15:00:00Z", "hostname": hostname}
        )

    def app(self, _base_url: str) -> Litestar:
        @post("/recaptcha/api/siteverify", status_code=200)
        async def siteverify(request: Request[Any, Any, Any]) -> Response[Any]:
            form = await request.form()
            return self.answer({name: str(value) for name, value in form.items()})

        return Litestar(route_handlers=[siteverify], logging_config=None, openapi_config=None)


@pytest.fixture(scope="module")
def siteverify_server() -> Iterator[tuple[FakeSiteverify, str]]:
    fake = FakeSiteverify()
    with serving(fake.app) as base:
        yield fake, f"{base}/recaptcha/api/siteverify"


@pytest.fixture
def siteverify(siteverify_server: tuple[FakeSiteverify, str]) -> FakeSiteverify:
    siteverify_server[0].reset()
    return siteverify_server[0]


@pytest.fixture
async def captcha(siteverify_server: tuple[FakeSiteverify, str]) -> AsyncIterator[Recaptcha]:
    client = Recaptcha(
        site_key="site-key",
        secret_key=SECRET,
        verify_url=siteverify_server[1],
        expected_hostname=HOSTNAME,
        timeout=2.0,
    )
    port: Captcha = client  # the adapter is the port (checked by mypy)
    try:
        yield client
    finally:
        await port.aclose()


async def test_a_solved_token_passes_once_and_the_secret_and_ip_are_sent(
    captcha: Recaptcha, siteverify: FakeSiteverify
) -> None:
    siteverify.tokens["solved-token"] = HOSTNAME
    assert await captcha.verify("solved-token", "203.0.113.7")
    assert siteverify.requests == [
        {"secret": SECRET, "response": "solved-token", "remoteip": "203.0.113.7"}
    ]
    assert not await captcha.verify("solved-token", "203.0.113.7")  # a replay
    assert await captcha.check("solved-token", None) == CaptchaCheck(
        "rejected", "timeout-or-duplicate"
    )
    assert "remoteip" not in siteverify.requests[-1]


async def test_an_unknown_token_is_refused(captcha: Recaptcha, siteverify: FakeSiteverify) -> None:
    assert await captcha.check("made-up", "203.0.113.7") == CaptchaCheck(
        "rejected", "timeout-or-duplicate"
    )


async def test_a_token_solved_on_another_site_is_refused(
    captcha: Recaptcha, siteverify: FakeSiteverify
) -> None:
    siteverify.tokens["elsewhere"] = "evil.example"
    assert await captcha.check("elsewhere", None) == CaptchaCheck("wrong_hostname", "evil.example")
    siteverify.tokens["ours"] = HOSTNAME.upper()  # host names are not case-sensitive
    assert await captcha.verify("ours", None)


async def test_a_yes_without_a_hostname_is_refused(
    captcha: Recaptcha, siteverify: FakeSiteverify
) -> None:
    siteverify.body = {"success": True, "challenge_ts": "2026-12-01T15:00:00Z"}
    assert await captcha.check("solved-token", None) == CaptchaCheck(
        "wrong_hostname", "no hostname"
    )
    siteverify.body = {"success": True, "hostname": None}
    assert not await captcha.verify("solved-token", None)


async def test_a_missing_token_is_refused_without_asking(
    captcha: Recaptcha, siteverify: FakeSiteverify
) -> None:
    for token in ("", "   ", "x" * 10_000):
        assert await captcha.check(token, "203.0.113.7") == CaptchaCheck("missing_token")
    assert siteverify.requests == []


async def test_a_wrong_secret_is_refused(
    siteverify_server: tuple[FakeSiteverify, str], siteverify: FakeSiteverify
) -> None:
    siteverify.tokens["solved-token"] = HOSTNAME
    client = Recaptcha(site_key="k", secret_key="not-ours", verify_url=siteverify_server[1])
    try:
        assert await client.check("solved-token", None) == CaptchaCheck(
            "rejected", "invalid-input-secret"
        )
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (503, None, CaptchaCheck("provider_error", "answered 503")),
        (200, ["success"], CaptchaCheck("provider_error", "no success field")),
        (200, {"success": "true"}, CaptchaCheck("provider_error", "no success field")),
        (200, {}, CaptchaCheck("provider_error", "no success field")),
        (200, {"success": False}, CaptchaCheck("rejected", "")),
    ],
)
async def test_an_answer_that_is_not_a_yes_refuses(
    captcha: Recaptcha,
    siteverify: FakeSiteverify,
    status: int,
    body: Any,
    expected: CaptchaCheck,
) -> None:
    siteverify.tokens["solved-token"] = HOSTNAME
    siteverify.status, siteverify.body = status, body
    assert await captcha.check("solved-token", None) == expected


async def test_an_unreachable_provider_refuses() -> None:
    client = Recaptcha(
        site_key="k", secret_key=SECRET, verify_url=f"{closed_port()}/recaptcha/api/siteverify"
    )
    try:
        assert await client.check("solved-token", None) == CaptchaCheck(
            "unreachable", "ConnectError"
        )
    finally:
        await client.aclose()


async def test_a_provider_that_never_answers_refuses_after_the_timeout() -> None:
    with silent_port() as base:
        client = Recaptcha(
            site_key="k", secret_key=SECRET, verify_url=f"{base}/siteverify", timeout=0.2
        )
        try:
            assert await client.check("solved-token", None) == CaptchaCheck(
                "unreachable", "ReadTimeout"
            )
        finally:
            await client.aclose()


async def test_no_captcha_and_the_memory_twin() -> None:
    none: Captcha = NoCaptcha()
    assert none.site_key == ""
    assert await none.verify("", None)
    memory = MemoryCaptcha()
    port: Captcha = memory
    assert port.site_key == "memory-site-key"
    assert await memory.verify("human", "198.51.100.1")
    assert not await memory.verify("bot", None)
    assert memory.calls == [("human", "198.51.100.1"), ("bot", None)]


def test_build_captcha_follows_the_settings() -> None:
    assert isinstance(build_captcha(WebSettings()), NoCaptcha)
    web = msgspec.structs.replace(
        WebSettings(),
        recaptcha_site_key="site",
        recaptcha_secret_key="secret",
        public_url="https://App.Mailvet.example/",
    )
    captcha = build_captcha(web)
    assert isinstance(captcha, Recaptcha)
    assert captcha.site_key == "site"
    assert captcha.expected_hostname == "app.mailvet.example"
    assert captcha.verify_url == "https://www.google.com/recaptcha/api/siteverify"
    with pytest.raises(ValueError, match="both"):
        build_captcha(msgspec.structs.replace(WebSettings(), recaptcha_site_key="site"))
    with pytest.raises(ValueError, match="https"):
        build_captcha(
            msgspec.structs.replace(web, recaptcha_verify_url="http://captcha.example/verify")
        )
