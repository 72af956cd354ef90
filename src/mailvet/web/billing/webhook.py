"""Stripe's webhook, POST /billing/stripe/webhook (issue 10 §2): thin, the work is
services/billing_events.py's.

- Billing off (no Payments port): 404, as if the route did not exist.
- The body (at most BODY_LIMIT bytes: 413 beyond) and its `Stripe-Signature` are verified with
  MAILVET_STRIPE_WEBHOOK_SECRET (adapters/payments/stripe_gateway.verify_event: Stripe's own
  construct_event, 5 minutes of tolerance both ways): a bad, missing, stale or future signature
  or a body that is not an event answers 400 and changes nothing.
- A genuine event of a type billing does not handle: 200, nothing stored.
- Processed (services/billing_events.process_event): 200 with what was done (applied,
  ignored, replay). Deferred (not known yet) and Stripe unreachable: 503 with Retry-After;
  any other failure: 500 (the app's handler). Never 200 unless the event's effects and its
  record were committed: Stripe retries everything else.

Exempt from CSRF (web/app.py's CSRF_EXEMPT): Stripe signs it instead. No session, no login.
The Stripe adapter (and the `stripe` package) is imported by the first event, not with this
module: a site with billing off never loads it.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, post
from litestar.status_codes import HTTP_200_OK

from mailvet.domain.payments import PaymentsError
from mailvet.logs import logger
from mailvet.services.billing_events import Deferred, process_event
from mailvet.web.context import Web
from mailvet.web.errors import error_response

WEBHOOK_PATH = "/billing/stripe/webhook"
BODY_LIMIT = 512 * 1024  # Stripe's events are a few KiB; its largest objects well under this
RETRY_AFTER = "60"


class Received(msgspec.Struct, frozen=True):
    received: bool
    outcome: str
    detail: str = ""


@post(
    WEBHOOK_PATH,
    name="stripe_webhook",
    include_in_schema=False,
    request_max_body_size=BODY_LIMIT,
    status_code=HTTP_200_OK,
)
async def stripe_webhook(request: Request[Any, Any, Any], web: Web) -> Response[Any]:
    log = logger(__name__)
    if web.payments is None:
        return error_response(404, "not found")
    # here, not at the module's import: a web process with billing off never loads `stripe`
    from mailvet.adapters.payments.stripe_gateway import WebhookRefused, verify_event

    body = await request.body()
    now = web.clock()
    try:
        event = verify_event(
            body,
            request.headers.get("stripe-signature"),
            web.settings.billing.webhook_secret,
            now=now.timestamp(),
        )
    except WebhookRefused as refused:
        log.warning("stripe_webhook_refused", why=str(refused))
        return error_response(400, f"webhook refused: {refused}")
    if event is None:
        return Response(Received(received=True, outcome="unhandled"))
    try:
        done = await process_event(web.database, web.payments, event, now=now)
    except Deferred as deferred:
        log.warning(
            "stripe_event_deferred", event_id=event.id, type=event.kind.value, why=str(deferred)
        )
        return error_response(503, f"not processed yet: {deferred}", {"retry-after": RETRY_AFTER})
    except PaymentsError as exc:
        log.warning("stripe_event_refetch_failed", event_id=event.id, status=exc.status)
        return error_response(503, "Stripe could not be asked", {"retry-after": RETRY_AFTER})
    return Response(Received(received=True, outcome=done.outcome.value, detail=done.detail))


def stripe_webhook_router() -> Router:
    return Router(path="/", route_handlers=[stripe_webhook], include_in_schema=False)
