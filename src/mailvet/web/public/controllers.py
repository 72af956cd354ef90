"""The public pages, signed in or not: thin handlers over settings and the engine.

The home page's demo checks one address at the syntax and DNS level at most (never the
SMTP probe: an anonymous form must not make this server talk to mail servers on anyone's
behalf), 5 a day per client IP, counted in the shared counters (services/throttle.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_429_TOO_MANY_REQUESTS

from mailvet.domain.verdict import RESULT_COLUMNS, Check, Reason, Verdict
from mailvet.services import billing_sync
from mailvet.services.throttle import Limit
from mailvet.web.auth.common import wait_text
from mailvet.web.billing.pages import DEFAULT_PACK, checkout_policy, money, pack_terms
from mailvet.web.context import EngineDep, Web
from mailvet.web.forms import MAX_ADDRESS, is_htmx
from mailvet.web.public.texts import REASON_TEXT, STEPS, docs_job_statuses, docs_statuses
from mailvet.web.sessions import request_account
from mailvet.web.throttle import client_ip, count

log = structlog.get_logger(__name__)

DEMO_PER_IP = Limit("demo-ip", 5, 24 * 3600)  # checks per client IP a day


@dataclass
class DemoForm:
    email: str = ""


def _paragraphs(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\r\n", "\n").split("\n\n") if part.strip()]


class PublicController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", name="home")
    async def home(self, web: Web, email: FromQuery[str] = "") -> Template:
        return Template("public/home.html", context=_home_context(web, email[:MAX_ADDRESS]))

    @post("/demo", name="demo", status_code=HTTP_200_OK)
    async def demo(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        engine: EngineDep,
        data: Annotated[DemoForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        address = data.email.strip()
        context = _home_context(web, address[:MAX_ADDRESS])
        status = HTTP_200_OK
        headers: dict[str, str] = {}
        if not address:
            context["demo_error"] = "Enter an email address."
        elif len(address) > MAX_ADDRESS:
            context["demo_error"] = f"An address has at most {MAX_ADDRESS} characters."
        else:
            answer = await count(web, DEMO_PER_IP, client_ip(request))
            if answer.allowed:
                verdict = await engine.check(address, _demo_level(web))
                context["verdict"] = verdict
                context["reason_text"] = REASON_TEXT.get(Reason(verdict.reason), "")
                log.info("web_demo_checked", status=verdict.status, reason=verdict.reason)
            else:
                status = HTTP_429_TOO_MANY_REQUESTS
                headers["Retry-After"] = str(answer.retry_after)
                context["demo_error"] = (
                    f"That was the {DEMO_PER_IP.limit} free checks of today."
                    f" Sign up to check more, or try again in {wait_text(answer.retry_after)}."
                )
        name = "public/_demo_result.html" if is_htmx(request) else "public/home.html"
        return Template(name, context=context, status_code=status, headers=headers)

    @get("/pricing", name="pricing")
    async def pricing(self, request: Request[Any, Any, Any], web: Web) -> Template:
        """The free tier, the active tiers (billing_tiers) and the packs; buy and subscribe
        buttons only with billing on (a signed-out visitor's lead to the sign-in first)."""
        async with web.database.unit_of_work() as session:
            tiers = await billing_sync.tiers(session)
        return Template(
            "public/pricing.html",
            context={
                "credits_on": web.settings.web.charging,
                "free_credits": web.settings.web.free_credits,
                "billing_on": web.payments is not None,
                "signed_in_now": request_account(request) is not None,
                "tiers": tiers,
                "money": money,
                "default_pack": DEFAULT_PACK,
                **pack_terms(web),
            },
            headers=checkout_policy(web),  # its buttons go on to Stripe's Checkout
        )

    @get("/docs", name="docs")
    async def docs(self) -> Template:
        return Template(
            "public/docs.html",
            context={
                "steps": [{"name": name, "text": text} for name, text in STEPS],
                "statuses": docs_statuses(),
                "job_statuses": docs_job_statuses(),
                "columns": RESULT_COLUMNS,
            },
        )

    @get("/privacy", name="privacy")
    async def privacy(self, web: Web) -> Template:
        return _text_page("Privacy", web.settings.web.privacy_text)

    @get("/terms", name="terms")
    async def terms(self, web: Web) -> Template:
        return _text_page("Terms of service", web.settings.web.terms_text)


def _demo_level(web: Any) -> Check:
    """DNS at most, and no more than the installation checks at all."""
    return Check.SYNTAX if web.settings.engine.checks is Check.SYNTAX else Check.DNS


def _home_context(web: Any, email: str) -> dict[str, Any]:
    verdict: Verdict | None = None
    return {
        "free_credits": web.settings.web.free_credits,
        "demo_limit": DEMO_PER_IP.limit,
        "demo_email": email,
        "verdict": verdict,
        "demo_error": "",
        "reason_text": "",
    }


def _text_page(title: str, text: str) -> Template:
    return Template(
        "public/text_page.html",
        context={
            "title": title,
            "paragraphs": _paragraphs(text),
            "empty_text": f"This installation has not published its {title.lower()} yet.",
        },
    )
