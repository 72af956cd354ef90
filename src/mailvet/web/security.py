"""Response headers every answer carries, and CORS on /api/* alone.

`security_headers(context)` is a `before_send` hook: unlike `response_headers` or a
middleware it also reaches 404s for unknown paths, error pages and static files
(LIBRARIES-SAAS.md 1.10). A header a handler set itself is left as it is.

- Content-Security-Policy: scripts only from this origin (`script-src 'self'`: no inline
  script or `on...=` handler can run, so an escaping bug elsewhere does not become script),
  no plugins, no framing (`frame-ancestors 'none'`, and X-Frame-Options DENY for old
  browsers), forms post only here (the new-list page also to S3 when lists go straight
  there: its own policy, `content_security_policy(form_action=...)`, which this hook
  leaves alone); reCAPTCHA's script and frame origins when it is set up.
- X-Content-Type-Options nosniff, Referrer-Policy strict-origin-when-cross-origin,
  Permissions-Policy denying sensors and payment APIs, Cross-Origin-Opener-Policy.
- Strict-Transport-Security when MAILVET_PUBLIC_URL is https (a plain-http install must
  not pin browsers to https).

CORS: browsers may call /api/* from the origins in MAILVET_CORS_ORIGINS (API keys in a
header, never cookies: no credentials); every other path sends no CORS header, so other
origins cannot read pages. Litestar's `cors_config` is app-wide, hence `ApiCors`.

The API reference page (/schema, Litestar's Scalar renderer with the vendored Scalar bundle)
alone gets a policy that allows inline styles (SCHEMA_CSP: Scalar injects its stylesheet as
a <style> element and Litestar's page has one); scripts still come from this origin only,
and it shows no user data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

if TYPE_CHECKING:
    from litestar.types import ASGIApp, BeforeMessageSendHookHandler, Message, Receive, Scope, Send

    from mailvet.settings import Settings

HSTS = "max-age=31536000; includeSubDomains"
RECAPTCHA_SCRIPTS = "https://www.google.com/recaptcha/ https://www.gstatic.com/recaptcha/"
RECAPTCHA_FRAMES = "https://www.google.com/recaptcha/ https://recaptcha.google.com/recaptcha/"
AVATAR_IMAGES = (
    "https://*.googleusercontent.com https://www.gravatar.com https://secure.gravatar.com"
)
API_PREFIX = "/api/"


def content_security_policy(*, recaptcha: bool = False, form_action: Sequence[str] = ()) -> str:
    """The pages' policy; `form_action`: origins beside this one that forms may post to
    (the new-list page's S3 origin when lists go straight to S3, set by that page alone)."""
    scripts = "'self'" + (f" {RECAPTCHA_SCRIPTS}" if recaptcha else "")
    frames = RECAPTCHA_FRAMES if recaptcha else "'none'"
    forms = " ".join(["'self'", *(_origin_source(origin) for origin in form_action)])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            "style-src 'self'",
            f"img-src 'self' data: {AVATAR_IMAGES}",
            "font-src 'self'",
            "connect-src 'self'",
            f"frame-src {frames}",
            "object-src 'none'",
            "base-uri 'none'",
            f"form-action {forms}",
            "frame-ancestors 'none'",
        ]
    )


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of an absolute http(s) URL (ValueError for anything else)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _origin_source(origin: str) -> str:
    """An origin as a CSP source; one that could widen the policy (a space, a quote, a
    `;`, a wildcard) is refused rather than written."""
    if origin != origin_of(origin) or any(ch in origin for ch in " ;,'\"*"):
        raise ValueError(f"not an origin for a policy: {origin!r}")
    return origin


# The API reference at /schema (Litestar's Scalar page, web/static/vendor/scalar-*) is the one
# page with inline styles: the bundle injects its stylesheet as a <style> element. Its
# fonts' @font-face rules point at fonts.scalar.com, which this policy refuses: the page
# falls back to the system fonts. It shows no user data.
SCHEMA_PATH = "/schema"
SCHEMA_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self' data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def header_set(*, https: bool, recaptcha: bool = False) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": content_security_policy(recaptcha=recaptcha),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": (
            "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
        ),
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return headers


def security_headers(settings_of: Callable[[], Settings]) -> BeforeMessageSendHookHandler:
    """The hook; `settings_of()` is read at the first answer (create_app runs before the
    composition root may have built everything)."""
    # the headers as raw (lower-case name, value) bytes, chosen at the first answer
    chosen: dict[bool, list[tuple[bytes, bytes]]] = {}

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        if not chosen:
            web = settings_of().web
            pages = header_set(
                https=web.https,
                recaptcha=bool(web.recaptcha_site_key),
            )
            for reference, headers in (
                (False, pages),
                (True, {**pages, "Content-Security-Policy": SCHEMA_CSP}),
            ):
                chosen[reference] = [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in headers.items()
                ]
        path = str(scope.get("path", ""))
        reference = path == SCHEMA_PATH or path.startswith(SCHEMA_PATH + "/")
        raw = message.get("headers")
        if not isinstance(raw, list):  # the ASGI message may hold any iterable: made a list
            raw = list(raw or ())
            message["headers"] = raw
        present = {bytes(name).lower() for name, _ in raw}  # those the handler set win
        raw.extend(item for item in chosen[reference] if item[0] not in present)

    return before_send


class ApiCors(ASGIMiddleware):
    """CORS for /api/* from `origins` (exact matches; `*` allows any origin)."""

    scopes = (ScopeType.HTTP,)
    ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
    ALLOW_HEADERS = "authorization, content-type, x-api-key"

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.origins = frozenset(origins)

    def _allowed(self, origin: str) -> bool:
        return "*" in self.origins or origin in self.origins

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        origin = Headers.from_scope(scope).get("origin")
        if not scope["path"].startswith(API_PREFIX) or not origin or not self.origins:
            await next_app(scope, receive, send)
            return
        allowed = self._allowed(origin)
        if scope.get("method") == "OPTIONS" and allowed:
            await _preflight(send, origin)
            return

        async def send_with_origin(message: Message) -> None:
            if message["type"] == "http.response.start" and allowed:
                headers = MutableScopeHeaders.from_message(message)
                headers["Access-Control-Allow-Origin"] = origin
                headers["Vary"] = "Origin"
            await send(message)

        await next_app(scope, receive, send_with_origin)


async def _preflight(send: Send, origin: str) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", ApiCors.ALLOW_METHODS.encode()),
        (b"access-control-allow-headers", ApiCors.ALLOW_HEADERS.encode()),
        (b"access-control-max-age", b"600"),
        (b"vary", b"Origin"),
        (b"content-length", b"0"),
    ]
    start: Any = {"type": "http.response.start", "status": 204, "headers": headers}
    await send(start)
    body: Any = {"type": "http.response.body", "body": b"", "more_body": False}
    await send(body)
