"""The web role: `create_app(deps, web=...)` builds the Litestar app over the composition
root's ports and, with a `WebContext`, the SaaS shell around them.

Without `web` the app is the anonymous job API (/api/jobs) and /health, JSON only, as
before the SaaS (the pipeline tests use it so). With `web` (built by
`web.context.build_web_context`) there is no anonymous job API: the account's lists are
under /app (web/jobs/pages.py, only the owner sees a job); it also serves the pages:
Jinja templates (web/templates/, autoescaped), the vendored static files (web/static/),
server-side sessions (web/sessions.py), CSRF on every form
(only /api/* and the payment webhook are exempt), the app-wide per-IP rate limit
(web/throttle.py), CORS on /api/* alone and the public pages. Every answer carries the
security headers (web/security.py); errors are HTML for browsers, JSON otherwise
(web/errors.py). `areas` are the route handlers of the other SaaS areas (accounts, app,
admin ...), mounted beside the public pages with the same sessions, CSRF and limits.

The app does not own the deps or the context: the caller builds them, starts and stops the
bus, and closes them. Startup does nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import CacheControlHeader, State
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler, Middleware

from mailvet.bootstrap import Deps
from mailvet.web.auth.common import wait_text
from mailvet.web.context import WebContext
from mailvet.web.deps import provide_ports
from mailvet.web.errors import EXCEPTION_HANDLERS
from mailvet.web.health import health_routes
from mailvet.web.jobs import jobs_router
from mailvet.web.jobs.pages import JobsArea, app_router
from mailvet.web.jobs.upload import MAX_UPLOAD_BYTES
from mailvet.web.public import PublicController
from mailvet.web.security import API_PREFIX, ApiCors, security_headers
from mailvet.web.sessions import request_account, session_middleware, take_flashes
from mailvet.web.throttle import PerIpLimit

__all__ = ["HTMX", "HTMX_SSE", "MAX_UPLOAD_BYTES", "create_app"]

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
STATIC_PATH = "/static"
HTMX = "vendor/htmx-2.0.11.min.js"  # web/static/VENDORED.md
HTMX_SSE = "vendor/htmx-ext-sse-2.2.4.min.js"
SCALAR = "vendor/scalar-api-reference-1.76.0.js"  # the /schema page (API reference)
SCALAR_CSS = "vendor/scalar-api-reference-1.76.0.css"
CSRF_COOKIE = "mailvet_csrf"
# exempt from CSRF: the API (API keys in a header, no cookies: web/sessions.py) and the
# payment provider's webhook (signed by the provider)
CSRF_EXEMPT = [f"^{API_PREFIX}", "^/billing/stripe/webhook$"]


def create_app(
    deps: Deps,
    *,
    web: WebContext | None = None,
    areas: Sequence[ControllerRouterHandler] = (),
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    roles: Sequence[str] = ("web",),
) -> Litestar:
    """`roles`: what this process runs (`mailvet run all`: every role), for /health."""
    handlers: list[ControllerRouterHandler] = [*health_routes(deps, roles)]
    dependencies = provide_ports(deps, web)
    extra: dict[str, Any] = {}
    middleware: list[Middleware] = []
    if web is not None:
        lists = JobsArea()  # the /app lists area (web/jobs/pages.py) and its progress poller
        handlers += [PublicController, _static_files(), app_router(lists, max_upload_bytes), *areas]
        middleware = [
            PerIpLimit(web),
            ApiCors(web.settings.web.cors_origins),
            session_middleware(web),
        ]
        extra = {
            "template_config": template_config(),
            "csrf_config": CSRFConfig(
                secret=web.secret_key,
                cookie_name=CSRF_COOKIE,
                cookie_secure=web.settings.web.https,
                cookie_httponly=True,  # pages carry the token (csrf_input, hx-headers)
                exclude=CSRF_EXEMPT,
            ),
            "state": State({"web": web}),
            "on_shutdown": [lists.aclose],
        }
    else:
        # the anonymous JSON job API, only in the app without accounts (the pipeline tests);
        # the SaaS has the account's lists under /app instead (the keyed API comes later)
        handlers.append(jobs_router(max_upload_bytes))
    return Litestar(
        route_handlers=handlers,
        dependencies=dependencies,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=middleware,
        before_send=[security_headers(lambda: deps.settings)],
        # mailvet configures logging itself (structlog); Litestar's default would take over
        # the root logger. Unexpected errors are logged by the 500 handler.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="mailvet", version="1", path="/schema", render_plugins=[_api_reference()]
        ),
        **extra,
    )


def _static_files() -> ControllerRouterHandler:
    return create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC_DIR],
        name="static",
        cache_control=CacheControlHeader(max_age=3600),
        include_in_schema=False,
    )


def _api_reference() -> ScalarRenderPlugin:
    """Scalar at /schema from the vendored files (no CDN; no favicon fetched elsewhere)."""
    return ScalarRenderPlugin(js_url=static_url(SCALAR), css_url=static_url(SCALAR_CSS), favicon="")


def static_url(file_path: str) -> str:
    return f"{STATIC_PATH}/{file_path}"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Every template of every area (web/templates/<area>/...), autoescaped, with the
    shell's globals: `static_url(path)`, `HTMX`, `HTMX_SSE`, `signed_in(request)` (a
    `SignedIn` or None) and `flashes(request)` (the pending messages, taken); and the filter
    `wait_text` (a Retry-After in words: `{{ retry_after | wait_text }}`)."""

    def add_globals(engine: JinjaTemplateEngine) -> None:
        engine.engine.globals.update(
            static_url=static_url,
            HTMX=HTMX,
            HTMX_SSE=HTMX_SSE,
            signed_in=request_account,
            flashes=take_flashes,
        )
        engine.engine.filters["wait_text"] = wait_text

    return TemplateConfig(
        directory=TEMPLATES_DIR, engine=JinjaTemplateEngine, engine_callback=add_globals
    )
