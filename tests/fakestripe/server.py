"""A fake Stripe API for what localstripe lacks, in front of a localstripe process for the rest.

An ASGI app (`FakeStripe.app`, served by tests/local_http.py) speaking Stripe's wire format:
form-encoded requests with bracketed keys (`metadata[credits]=10000`,
`line_items[0][price]=price_...`), JSON objects with their `object`, ids like Stripe's
(`price_test_...`, `cs_test_...`, `bps_test_...`), errors as `{"error": {"type", "message",
"param", "code"}}` with Stripe's status codes (400 parameter_missing, 401, 404
resource_missing). It answers:

- Prices: POST /v1/prices, GET /v1/prices (product=, active=), GET /v1/prices/{id}.
- Checkout Sessions: POST /v1/checkout/sessions (mode=payment with price_data, or
  mode=subscription with a recurring price of ours), GET /v1/checkout/sessions/{id}; and the
  page a customer pays on, GET /pay/{id}, whose button (POST /pay/{id}) completes the session
  on localstripe (a pack: a PaymentIntent paid with the test card; a tier: the price as a
  localstripe plan of the same id, and a subscription to it), then sends the signed
  `checkout.session.completed` webhook to the configured URL and redirects to success_url
  ({CHECKOUT_SESSION_ID} filled in).
- Checkout's post-payment invoice of a pack (`invoice_creation[enabled]=true`), which
  localstripe cannot make (its invoices need a subscription): kept here, listed with
  localstripe's by GET /v1/invoices?customer=, read by GET /v1/invoices/{id}, its receipt at
  GET /receipt/{id}.
- Billing Portal sessions: POST /v1/billing_portal/sessions (the customer must exist on
  localstripe), and GET /portal/{id}, a page that links back to return_url.
- POST /_fake/webhook (url=, secret=): where checkout.session.completed goes.

Every other request is passed to localstripe as it came (method, path, query, body, key).
"""

from __future__ import annotations

import html
import json
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import httpx

from tests.fakestripe.signing import signature

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Json = dict[str, Any]
TEST_CARD = "4242424242424242"


class StripeFail(Exception):
    """An error answered the way Stripe answers it."""

    def __init__(self, status: int, message: str, *, param: str = "", code: str = "") -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code

    def body(self) -> Json:
        kind = "authentication_error" if self.status == 401 else "invalid_request_error"
        error: Json = {"type": kind, "message": str(self)}
        if self.param:
            error["param"] = self.param
        if self.code:
            error["code"] = self.code
        return {"error": error}


def missing(kind: str, ident: str, param: str = "id") -> StripeFail:
    return StripeFail(404, f"No such {kind}: '{ident}'", param=param, code="resource_missing")


def required(param: str) -> StripeFail:
    return StripeFail(
        400, f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


def unflatten(pairs: list[tuple[str, str]]) -> Json:
    """Stripe's form encoding as nested data: `a[b][0][c]=v` is {"a": {"b": [{"c": "v"}]}}."""
    root: Json = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node: Any = root
        for part, following in zip(parts, [*parts[1:], None], strict=True):
            if following is None:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    found: Json = _lists(root)
    return found


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _lists(v) for k, v in node.items()}


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


class FakeStripe:
    """The fake's state (prices, sessions, portal sessions) and its ASGI app."""

    def __init__(self, localstripe_url: str) -> None:
        self.localstripe_url = localstripe_url
        self.base_url = ""  # set once served (the pages' links)
        self.prices: dict[str, Json] = {}
        self.sessions: dict[str, Json] = {}
        self.portals: dict[str, Json] = {}
        self.invoices: dict[str, Json] = {}  # Checkout's post-payment invoices of packs
        self.webhook_url = ""
        self.webhook_secret = ""
        self.webhooks_sent: list[Json] = []

    def reset(self) -> None:
        self.prices.clear()
        self.sessions.clear()
        self.portals.clear()
        self.invoices.clear()
        self.webhook_url = self.webhook_secret = ""
        self.webhooks_sent.clear()

    # --- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]  # lifespan.startup, then .shutdown
                await send({"type": f"{kind}.complete"})
                if kind == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode()
        try:
            status, kind, payload, extra = await self._route(method, path, query, body, headers)
        except StripeFail as fail:
            status, kind, payload, extra = fail.status, "application/json", _json(fail.body()), {}
        answer = [
            (b"content-type", kind.encode()),
            *((k.encode(), v.encode()) for k, v in extra.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": answer})
        await send({"type": "http.response.body", "body": payload})

    async def _route(
        self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str, bytes, dict[str, str]]:
        parts = path.strip("/").split("/")
        if parts[0] in ("pay", "portal", "receipt") and len(parts) == 2:
            return await self._page(method, parts[0], parts[1], body)
        if method == "GET" and parts[:2] == ["v1", "invoices"] and len(parts) <= 3:
            return await self._invoices(parts, query, headers)
        if path == "/_fake/webhook" and method == "POST":
            form = unflatten(parse_qsl(body.decode()))
            self.webhook_url, self.webhook_secret = form["url"], form["secret"]
            return 200, "application/json", b"{}", {}
        ours = self._handler(method, parts)
        if ours is None:
            return await self._proxy(method, path, query, body, headers)
        key = headers.get("authorization", "").removeprefix("Bearer ")
        if not key.startswith("sk_test_"):
            raise StripeFail(401, "Invalid API Key provided.")
        data = unflatten(parse_qsl(body.decode() if method == "POST" else query))
        return 200, "application/json", _json(await ours(parts, data, key)), {}

    def _handler(
        self, method: str, parts: list[str]
    ) -> Callable[[list[str], Json, str], Awaitable[Json]] | None:
        shape = "/".join(parts[:-1] + ["*"]) if len(parts) in (3, 4) else "/".join(parts)
        table: dict[tuple[str, str], Callable[[list[str], Json, str], Awaitable[Json]]] = {
            ("POST", "v1/prices"): self._create_price,
            ("GET", "v1/prices"): self._list_prices,
            ("GET", "v1/prices/*"): self._get_price,
            ("POST", "v1/checkout/sessions"): self._create_session,
            ("GET", "v1/checkout/sessions/*"): self._get_session,
            ("POST", "v1/billing_portal/sessions"): self._create_portal,
        }
        return table.get((method, "/".join(parts))) or table.get((method, shape))

    # --- prices -----------------------------------------------------------------------------

    async def _create_price(self, parts: list[str], data: Json, key: str) -> Json:
        for param in ("currency", "product"):
            if param not in data:
                raise required(param)
        recurring = data.get("recurring")
        price = {
            "id": _id("price"),
            "object": "price",
            "active": data.get("active", "true") == "true",
            "currency": data["currency"],
            "product": data["product"],
            "unit_amount": int(data.get("unit_amount", 0)),
            "nickname": data.get("nickname"),
            "type": "recurring" if recurring else "one_time",
            "recurring": (
                {"interval": recurring["interval"], "interval_count": 1} if recurring else None
            ),
            "metadata": data.get("metadata", {}),
            "livemode": False,
            "created": int(time.time()),
        }
        self.prices[price["id"]] = price
        return price

    async def _list_prices(self, parts: list[str], data: Json, key: str) -> Json:
        found = [
            p
            for p in self.prices.values()
            if data.get("product") in (None, p["product"])
            and data.get("active") in (None, str(p["active"]).lower())
        ]
        limit = int(data.get("limit", 10))
        after = data.get("starting_after")
        if after is not None:
            ids = [p["id"] for p in found]
            found = found[ids.index(after) + 1 :] if after in ids else []
        page = found[:limit]
        return {"object": "list", "url": "/v1/prices", "has_more": len(found) > limit, "data": page}

    async def _get_price(self, parts: list[str], data: Json, key: str) -> Json:
        if parts[2] not in self.prices:
            raise missing("price", parts[2])
        return self.prices[parts[2]]

    # --- checkout -----------------------------------------------------------------------

    async def _create_session(self, parts: list[str], data: Json, key: str) -> Json:
        for param in ("mode", "success_url", "line_items"):
            if param not in data:
                raise required(param)
        mode, items = data["mode"], data["line_items"]
        if mode not in ("payment", "subscription"):
            raise StripeFail(400, f"Invalid mode: {mode}", param="mode")
        if not isinstance(items, list) or len(items) != 1:
            raise StripeFail(400, "line_items: one item", param="line_items")
        item = items[0]
        if mode == "subscription":
            price = self.prices.get(item.get("price", ""))
            if price is None:
                raise missing("price", item.get("price", ""), "line_items[0][price]")
            if price["recurring"] is None:
                raise StripeFail(
                    400, "mode=subscription takes a recurring price", param="line_items"
                )
            amount, currency = price["unit_amount"], price["currency"]
        else:
            price_data = item.get("price_data")
            if price_data is None:
                raise required("line_items[0][price_data]")
            amount, currency = int(price_data["unit_amount"]), price_data["currency"]
        amount *= int(item.get("quantity", 1))
        customer = data.get("customer")
        if customer is not None:
            await self._customer_exists(customer, key, "customer")
        ident = _id("cs")
        session = {
            "id": ident,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid",
            "url": f"{self.base_url}/pay/{ident}",
            "success_url": data["success_url"],
            "cancel_url": data.get("cancel_url"),
            "customer": customer,
            "client_reference_id": data.get("client_reference_id"),
            "metadata": data.get("metadata", {}),
            "amount_total": amount,
            "currency": currency,
            "payment_intent": None,
            "subscription": None,
            "invoice": None,
            "invoice_creation": data.get("invoice_creation"),
            "livemode": False,
            "created": int(time.time()),
            "line_items_given": items,  # not Stripe's: what /pay needs to complete it
        }
        self.sessions[ident] = session
        return _public(session)

    async def _get_session(self, parts: list[str], data: Json, key: str) -> Json:
        if parts[3] not in self.sessions:
            raise missing("checkout.session", parts[3])
        return _public(self.sessions[parts[3]])

    async def _create_portal(self, parts: list[str], data: Json, key: str) -> Json:
        if "customer" not in data:
            raise required("customer")
        await self._customer_exists(data["customer"], key, "customer")
        ident = _id("bps")
        portal = {
            "id": ident,
            "object": "billing_portal.session",
            "customer": data["customer"],
            "return_url": data.get("return_url"),
            "url": f"{self.base_url}/portal/{ident}",
            "livemode": False,
            "created": int(time.time()),
        }
        self.portals[ident] = portal
        return portal

    async def _customer_exists(self, customer: str, key: str, param: str) -> None:
        async with self._client(key) as client:
            got = await client.get(f"/v1/customers/{customer}")
        if got.status_code != 200:
            raise missing("customer", customer, param)

    # --- the pages --------------------------------------------------------------------------

    async def _page(
        self, method: str, kind: str, ident: str, body: bytes
    ) -> tuple[int, str, bytes, dict[str, str]]:
        if kind == "portal":
            portal = self.portals.get(ident)
            if portal is None:
                return 404, "text/plain", b"no such portal session", {}
            back = html.escape(portal["return_url"] or "/")
            text = f"<!doctype html><title>Billing portal</title><a href='{back}'>Return</a>"
            return 200, "text/html; charset=utf-8", text.encode(), {}
        if kind == "receipt":
            invoice = self.invoices.get(ident)
            if invoice is None:
                return 404, "text/plain", b"no such invoice", {}
            paid = f"{invoice['amount_paid'] / 100:.2f} {invoice['currency'].upper()}"
            text = f"<!doctype html><title>Receipt</title><p>Paid {html.escape(paid)}</p>"
            return 200, "text/html; charset=utf-8", text.encode(), {}
        session = self.sessions.get(ident)
        if session is None:
            return 404, "text/plain", b"no such checkout session", {}
        if method == "GET":
            amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
            text = (
                "<!doctype html><title>Fake Checkout</title>"
                f"<p>Pay <span id='amount'>{html.escape(amount)}</span></p>"
                f"<form method='post' action='/pay/{ident}'><button id='pay'>Pay</button></form>"
            )
            return 200, "text/html; charset=utf-8", text.encode(), {}
        if session["status"] == "open":
            await self.complete(ident)
        success = session["success_url"].replace("{CHECKOUT_SESSION_ID}", ident)
        return 303, "text/plain", b"", {"location": success}

    async def complete(self, ident: str, key: str = "sk_test_fake") -> Json:
        """Pay session `ident` on localstripe and send its checkout.session.completed."""
        session = self.sessions[ident]
        async with self._client(key) as client:
            customer = session["customer"]
            if customer is None:
                customer = _ok(await client.post("/v1/customers", data={}))["id"]
            card = _ok(
                await client.post(
                    "/v1/payment_methods",
                    data={
                        "type": "card",
                        "card[number]": TEST_CARD,
                        "card[exp_month]": "12",
                        "card[exp_year]": "2040",
                        "card[cvc]": "123",
                    },
                )
            )
            _ok(
                await client.post(
                    f"/v1/payment_methods/{card['id']}/attach", data={"customer": customer}
                )
            )
            if session["mode"] == "payment":
                intent = _ok(
                    await client.post(
                        "/v1/payment_intents",
                        data={
                            "amount": str(session["amount_total"]),
                            "currency": session["currency"],
                            "customer": customer,
                            "payment_method": card["id"],
                            "confirm": "true",
                        },
                    )
                )
                session["payment_intent"] = intent["id"]
                if (session.get("invoice_creation") or {}).get("enabled") == "true":
                    session["invoice"] = self._pack_invoice(session, customer, intent["id"])
            else:
                price = self.prices[session["line_items_given"][0]["price"]]
                await self._plan(client, price)
                _ok(
                    await client.post(
                        f"/v1/customers/{customer}",
                        data={"invoice_settings[default_payment_method]": card["id"]},
                    )
                )
                sub = _ok(
                    await client.post(
                        "/v1/subscriptions",
                        data={"customer": customer, "items[0][plan]": price["id"]},
                    )
                )
                session["subscription"] = sub["id"]
        session.update(customer=customer, status="complete", payment_status="paid", url=None)
        await self.send_event("checkout.session.completed", _public(session))
        return session

    def _pack_invoice(self, session: Json, customer: str, intent: str) -> str:
        """Checkout's post-payment invoice of a pack (`invoice_creation[enabled]=true`),
        paid by the session's payment (localstripe has no invoice without a subscription)."""
        ident = _id("in")
        data = (session.get("invoice_creation") or {}).get("invoice_data") or {}
        self.invoices[ident] = {
            "id": ident,
            "object": "invoice",
            "customer": customer,
            "status": "paid",
            "amount_due": session["amount_total"],
            "amount_paid": session["amount_total"],
            "currency": session["currency"],
            "created": int(time.time()),
            "number": f"FAKE-{len(self.invoices) + 1:04d}",
            "billing_reason": "manual",
            "description": data.get("description"),
            "metadata": data.get("metadata", {}),
            "payment_intent": intent,
            "hosted_invoice_url": f"{self.base_url}/receipt/{ident}",
            "invoice_pdf": None,
            "lines": {"object": "list", "data": [], "has_more": False},
            "livemode": False,
        }
        return ident

    async def _invoices(
        self, parts: list[str], query: str, headers: dict[str, str]
    ) -> tuple[int, str, bytes, dict[str, str]]:
        """GET /v1/invoices[/id]: localstripe's, with the packs' invoices of the fake."""
        if len(parts) == 3:
            if parts[2] in self.invoices:
                return 200, "application/json", _json(self.invoices[parts[2]]), {}
            return await self._proxy("GET", "/" + "/".join(parts), query, b"", headers)
        status, kind, body, extra = await self._proxy("GET", "/v1/invoices", query, b"", headers)
        if status != 200:
            return status, kind, body, extra
        listed: Json = json.loads(body)
        asked = dict(parse_qsl(query))
        mine = [i for i in self.invoices.values() if asked.get("customer") in (None, i["customer"])]
        found = sorted([*listed["data"], *mine], key=lambda i: i.get("created") or 0, reverse=True)
        limit = int(asked.get("limit", 10))
        listed.update(data=found[:limit], has_more=listed.get("has_more") or len(found) > limit)
        return 200, "application/json", _json(listed), {}

    async def _plan(self, client: httpx.AsyncClient, price: Json) -> None:
        """The price as a localstripe plan of the same id (localstripe has no prices)."""
        if (await client.get(f"/v1/plans/{price['id']}")).status_code == 200:
            return
        product = price["product"]
        if (await client.get(f"/v1/products/{product}")).status_code != 200:
            _ok(
                await client.post(
                    "/v1/products", data={"id": product, "name": product, "type": "service"}
                )
            )
        form = {
            "id": price["id"],
            "product": product,
            "amount": str(price["unit_amount"]),
            "currency": price["currency"],
            "interval": price["recurring"]["interval"],
        }
        _ok(await client.post("/v1/plans", data=form))

    async def send_event(self, kind: str, obj: Json) -> None:
        event = {
            "id": _id("evt"),
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2026-10-28.endive",
            "data": {"object": obj},
        }
        self.webhooks_sent.append(event)
        if not self.webhook_url:
            return
        body = json.dumps(event).encode()
        headers = {
            "content-type": "application/json",
            "stripe-signature": signature(body, self.webhook_secret),
        }
        async with httpx.AsyncClient(timeout=10) as client:
            await client.post(self.webhook_url, content=body, headers=headers)

    # --- localstripe -----------------------------------------------------------------------

    def _client(self, key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.localstripe_url, auth=_Bearer(key), timeout=10, trust_env=False
        )

    async def _proxy(
        self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str, bytes, dict[str, str]]:
        passed = {k: v for k, v in headers.items() if k in ("authorization", "content-type")}
        async with httpx.AsyncClient(
            base_url=self.localstripe_url, timeout=10, trust_env=False
        ) as c:
            got = await c.request(
                method, path + (f"?{query}" if query else ""), content=body, headers=passed
            )
        return got.status_code, got.headers.get("content-type", "application/json"), got.content, {}


class _Bearer(httpx.Auth):
    def __init__(self, key: str) -> None:
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["authorization"] = f"Bearer {self.key}"
        yield request


def _ok(response: httpx.Response) -> Json:
    if response.status_code != 200:
        raise RuntimeError(f"localstripe {response.request.url.path}: {response.text}")
    data: Json = response.json()
    return data


def _public(session: Json) -> Json:
    return {k: v for k, v in session.items() if k != "line_items_given"}


def _json(data: Json) -> bytes:
    return json.dumps(data).encode()
