"""reCAPTCHA v2 on the sign-up and sign-in forms: the `Captcha` port of domain/identity.py.

`Recaptcha` posts the widget's token (form field `g-recaptcha-response`) to the siteverify
endpoint (`settings.web.recaptcha_verify_url`) with the secret key and the client's address,
and passes only on `"success": true` and, when an expected hostname is set (that of our
public URL), an answer naming that hostname: a token solved on another site, or a yes that
names no site, is refused. Every other outcome refuses, with
its reason in `CaptchaCheck` and the log: a missing token, a network error or timeout, a
non-200 answer, a body that is not the expected JSON. A captcha that cannot be checked
never lets a request through.

`NoCaptcha` is the port when no keys are set (the embedded default): no widget, always
passes. `MemoryCaptcha` is the twin for the web tests: it passes the tokens it was told to
and records every call.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import httpx
import structlog

from mailvet.adapters.tls import client_tls, secure_url
from mailvet.domain.identity import Captcha

if TYPE_CHECKING:
    from mailvet.settings import WebSettings

log = structlog.get_logger(__name__)

TOKEN_FIELD = "g-recaptcha-response"  # noqa: S105 (the form field the widget fills in)
MAX_TOKEN = 8192  # Google's tokens are a few hundred to ~2,000 characters

Outcome = Literal[
    "passed",
    "missing_token",  # the form came without a token (or an absurdly long one)
    "rejected",  # the provider said no (error-codes in `detail`)
    "wrong_hostname",  # solved on another site
    "unreachable",  # network error or timeout: refused, never passed
    "provider_error",  # a non-200 answer or a body that is not the expected JSON
]


@dataclass(frozen=True)
class CaptchaCheck:
    outcome: Outcome
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


class Recaptcha:
    """reCAPTCHA v2 over httpx (one client, made at first use, closed by `aclose`)."""

    def __init__(
        self,
        *,
        site_key: str,
        secret_key: str,
        verify_url: str,
        expected_hostname: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        if not site_key or not secret_key:
            raise ValueError("reCAPTCHA needs both its site key and its secret key")
        if not secure_url(verify_url):
            raise ValueError("the reCAPTCHA verify URL must be https (or http to this machine)")
        self._site_key = site_key
        self._secret_key = secret_key
        self.verify_url = verify_url
        self.expected_hostname = expected_hostname
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def site_key(self) -> str:
        return self._site_key

    async def verify(self, token: str, remote_ip: str | None) -> bool:
        return (await self.check(token, remote_ip)).passed

    async def check(self, token: str, remote_ip: str | None) -> CaptchaCheck:
        result = await self._check(token, remote_ip)
        if result.passed:
            log.debug("captcha.passed")
        else:
            level = "warning" if result.outcome in ("unreachable", "provider_error") else "info"
            getattr(log, level)("captcha.refused", outcome=result.outcome, detail=result.detail)
        return result

    async def _check(self, token: str, remote_ip: str | None) -> CaptchaCheck:
        token = token.strip()
        if not token or len(token) > MAX_TOKEN:
            return CaptchaCheck("missing_token")
        form = {"secret": self._secret_key, "response": token}
        if remote_ip:
            form["remoteip"] = remote_ip
        try:
            response = await self._http().post(self.verify_url, data=form)
        except httpx.HTTPError as error:
            return CaptchaCheck("unreachable", type(error).__name__)
        if response.status_code != httpx.codes.OK:
            return CaptchaCheck("provider_error", f"answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            return CaptchaCheck("provider_error", "not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("success"), bool):
            return CaptchaCheck("provider_error", "no success field")
        if body["success"] is not True:
            codes = body.get("error-codes")
            names = [c for c in codes if isinstance(c, str)] if isinstance(codes, list) else []
            return CaptchaCheck("rejected", ",".join(names)[:200])
        hostname = body.get("hostname")
        expected = self.expected_hostname
        if expected and not isinstance(hostname, str):  # a yes for no site is no yes for ours
            return CaptchaCheck("wrong_hostname", "no hostname")
        if expected and isinstance(hostname, str) and hostname.lower() != expected.lower():
            return CaptchaCheck("wrong_hostname", hostname[:100])
        return CaptchaCheck("passed")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, verify=client_tls(), follow_redirects=False
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


class NoCaptcha:
    """No captcha configured: no widget on the pages, every request passes."""

    site_key = ""

    async def verify(self, token: str, remote_ip: str | None) -> bool:
        return True

    async def aclose(self) -> None:
        pass


@dataclass
class MemoryCaptcha:
    """The in-memory twin: passes the tokens in `accepted`, records each call."""

    accepted: Collection[str] = frozenset({"human"})
    site_key: str = "memory-site-key"
    calls: list[tuple[str, str | None]] = field(default_factory=list)

    async def verify(self, token: str, remote_ip: str | None) -> bool:
        self.calls.append((token, remote_ip))
        return token in self.accepted

    async def aclose(self) -> None:
        pass


def build_captcha(web: WebSettings) -> Captcha:
    """reCAPTCHA when its keys are set (both: one without the other is an error), else
    NoCaptcha. The expected hostname is that of the public URL."""
    if not web.recaptcha_site_key and not web.recaptcha_secret_key:
        return NoCaptcha()
    return Recaptcha(
        site_key=web.recaptcha_site_key,
        secret_key=web.recaptcha_secret_key,
        verify_url=web.recaptcha_verify_url,
        expected_hostname=web.host or None,
    )
