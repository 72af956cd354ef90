"""Authentication of the public API (/api/v1): the request's API key, checked on every
request, and the refusals as RFC 9457 problem details.

A request sends its key as `Authorization: Bearer KEY` or `x-api-key: KEY` (both at once
only if they are the same key). `authenticate_api_key` is the guard of the whole /api/v1
router (web/api/__init__.py): it calls `services.api_keys.authenticate` (one primary-key read;
a revocation or an expiry counts from the next request) and keeps the `ApiPrincipal` on the
connection's state; handlers ask for it by name (`principal: Principal`). A route that needs
a scope adds `guards=[requires_scope(Scope.VALIDATE)]` (route guards run after the
router's). /api is outside the browser sessions and CSRF (web/app.py, web/sessions.py): a
cookie never signs an API call in, so no CSRF token is needed and none is set.

An accepted key is then held to MAILVET_API_RATE_LIMIT (default `100/second`), counted per
key across every web process by quota leases (services/api_limits.py: no database write
per request; `key_limiter` keeps the app's limiter). The same guard serves the
compatibility routes at /api (web/api/compat.py), so a key's calls there and under /api/v1
count together. The keyed API is outside the per-IP limit of the pages (web/throttle.py).

Refusals (`application/problem+json`, fields type, title, status, detail):
- 401 no key (`WWW-Authenticate: Bearer`);
- 403 a key that is not one of ours, revoked, expired, of a disabled account, or without
  the scope the route needs;
- 429 a key over its rate limit, with `Retry-After` (whole seconds to the window's end,
  at least 1);
- 429 too-many-refused-keys: the client's IP sent REFUSALS_PER_IP refused keys within a
  minute (services/api_refusals.py); its requests are then refused before any key lookup
  until that minute ends.
The detail says which, never anything about a key whose secret was not given.

Another module's routes under /api/v1 (web/api/v1.py) use the same three names:
`Principal`, `requires_scope` and `ApiProblem` (raise it for any other problem answer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIResponse,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.params import SkipValidation
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_402_PAYMENT_REQUIRED,
    HTTP_403_FORBIDDEN,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
)

from mailvet.domain.api_keys import ApiPrincipal, Refusal, Scope
from mailvet.services import api_keys
from mailvet.services.api_limits import KeyLimiter
from mailvet.services.api_refusals import RefusalGate
from mailvet.services.api_validation import MayNotValidate, NotEnoughCredits, Refused
from mailvet.web.throttle import client_ip

if TYPE_CHECKING:
    from litestar.handlers.base import BaseRouteHandler

    from mailvet.web.context import WebContext

__all__ = [
    "PROBLEM_JSON",
    "ApiOperation",
    "ApiPrincipal",
    "ApiProblem",
    "Principal",
    "SERVICE_REFUSALS",
    "ProblemDetails",
    "RefusalTable",
    "api_operation",
    "authenticate_api_key",
    "problem_response",
    "problem_example",
    "provide_principal",
    "refused_problem",
    "refusal_responses",
    "requires_scope",
    "status_problem",
    "under_api_v1",
    "unprocessable",
]

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPES = "/docs/api#problem-"  # a problem's type: this URI with its slug
_STATE_KEY = "mailvet_api_principal"
_LIMITER_KEY = "mailvet_api_limiter"
_GATE_KEY = "mailvet_api_refusal_gate"
API_V1_PATH = "/api/v1"  # web/api/__init__.py's API_V1
HEADER_LIMIT = 512  # a header longer than any key is refused unread

_REFUSALS: dict[Refusal, tuple[int, str, str, str]] = {
    # refusal: (status, slug, title, detail)
    Refusal.MISSING: (
        HTTP_401_UNAUTHORIZED,
        "missing-api-key",
        "API key required",
        "Send your API key as 'Authorization: Bearer KEY' or 'x-api-key: KEY'.",
    ),
    Refusal.INVALID: (
        HTTP_403_FORBIDDEN,
        "invalid-api-key",
        "Invalid API key",
        "This API key is not valid.",
    ),
    Refusal.REVOKED: (
        HTTP_403_FORBIDDEN,
        "revoked-api-key",
        "Revoked API key",
        "This API key has been revoked.",
    ),
    Refusal.EXPIRED: (
        HTTP_403_FORBIDDEN,
        "expired-api-key",
        "Expired API key",
        "This API key has expired.",
    ),
    Refusal.DISABLED_ACCOUNT: (
        HTTP_403_FORBIDDEN,
        "disabled-account",
        "Account disabled",
        "The account of this API key is disabled.",
    ),
}


class ProblemDetails(msgspec.Struct):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str


class ApiProblem(HTTPException):
    """An answer of the API that is a problem (`problem_response` renders it)."""

    def __init__(
        self,
        status_code: int,
        slug: str,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=detail, status_code=status_code, headers=headers)
        self.slug = slug
        self.title = title

    @classmethod
    def rate_limited(cls, retry_after: int) -> ApiProblem:
        """429: the key is over MAILVET_API_RATE_LIMIT until the window ends."""
        return cls(
            HTTP_429_TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            f"This API key is over its rate limit: try again in {retry_after} s.",
            {"Retry-After": str(retry_after)},
        )

    @classmethod
    def too_many_refusals(cls, retry_after: int) -> ApiProblem:
        """429: this client sent too many refused keys lately (services/api_refusals.py)."""
        return cls(
            HTTP_429_TOO_MANY_REQUESTS,
            "too-many-refused-keys",
            "Too many requests",
            f"Too many requests with a refused API key: try again in {retry_after} s.",
            {"Retry-After": str(retry_after)},
        )

    @classmethod
    def refused(cls, refusal: Refusal) -> ApiProblem:
        status, slug, title, detail = _REFUSALS[refusal]
        headers = {"WWW-Authenticate": 'Bearer realm="mailvet"'} if status == 401 else None
        return cls(status, slug, title, detail, headers)


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemDetails]:
    """The router's exception handler: ApiProblem as itself; a request Litestar could not
    validate (its 400: a query parameter out of range or not a number, a body that does not
    decode) as a 422 `invalid-request` problem, as every /api/v1 route answers an invalid
    request (`unprocessable`); Litestar's other HTTP errors (404, 405, 413 ...) as problems
    of their status (the message kept as detail)."""
    exc = unprocessable(exc, "invalid-request", "Invalid request")
    if isinstance(exc, ApiProblem):
        body = ProblemDetails(
            type=PROBLEM_TYPES + exc.slug,
            title=exc.title,
            status=exc.status_code,
            detail=exc.detail,
        )
        headers = exc.headers
    elif isinstance(exc, HTTPException):
        detail = exc.detail
        if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
            detail = "; ".join(
                [detail]
                + [str(item.get("message")) for item in exc.extra if isinstance(item, dict)]
            )
        return status_problem(exc.status_code, detail, exc.headers)
    else:  # the app's 500 handler logs and answers (status_problem, via web/errors.py)
        raise exc
    return Response(body, status_code=body.status, media_type=PROBLEM_JSON, headers=headers)


# what a problem of Litestar's own says when its detail only repeats the status's phrase
_PLAIN_DETAILS = {
    404: "There is nothing at this path of the API.",
    405: "This path does not take this method; the Allow header lists those it takes.",
    413: "The request body is too large.",
    500: "The server failed to answer. It has been logged; please try again.",
}


def under_api_v1(path: str) -> bool:
    """Whether `path` is the keyed API's (/api/v1, web/api/__init__.py's API_V1), whose
    every error is a problem, also those Litestar raises before any of its routes (an
    unknown path, a wrong method) and the app's 500 (web/errors.py asks this)."""
    return path == API_V1_PATH or path.startswith(API_V1_PATH + "/")


def status_problem(
    status: int, detail: str, headers: Mapping[str, str] | None = None
) -> Response[ProblemDetails]:
    """A problem of a bare HTTP status (type `about:blank`, title the status's phrase, RFC
    9457 §4.2.1): Litestar's own errors under /api/v1 and the app's 500 there."""
    title = _title(status)
    if not detail or detail == title or detail.lower() == "internal error":
        detail = _PLAIN_DETAILS.get(status, detail or title)
    body = ProblemDetails(type="about:blank", title=title, status=status, detail=detail)
    return Response(
        body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}) or None
    )


# how a route maps a service refusal: its class -> (status, slug, title)
RefusalTable = Mapping[type[Refused], tuple[int, str, str]]
# the refusals every route that checks or starts work for an account can meet
SERVICE_REFUSALS: dict[type[Refused], tuple[int, str, str]] = {
    NotEnoughCredits: (HTTP_402_PAYMENT_REQUIRED, "insufficient-credits", "Not enough credits"),
    MayNotValidate: (HTTP_403_FORBIDDEN, "account-not-confirmed", "Account may not validate"),
}


def refused_problem(table: RefusalTable, refused: Refused) -> ApiProblem:
    """The problem a route answers for a service refusal, by the route's `table`."""
    status, slug, title = table[type(refused)]
    return ApiProblem(status, slug, title, refused.detail)


def problem_example(status: int, slug: str, title: str, detail: str) -> Example:
    """An OpenAPI example of a problem answer."""
    body = ProblemDetails(type=PROBLEM_TYPES + slug, title=title, status=status, detail=detail)
    return Example(summary=title, value=msgspec.to_builtins(body))


def unprocessable(exc: Exception, slug: str, title: str) -> Exception:
    """A 400 Litestar raised for a request it could not decode (a body or a query that does
    not match its types) as a 422 problem `slug`, its messages as the detail; any other
    exception as it is."""
    if (
        not isinstance(exc, HTTPException)
        or isinstance(exc, ApiProblem)
        or exc.status_code != HTTP_400_BAD_REQUEST
    ):
        return exc
    detail = exc.detail
    extra = exc.extra if isinstance(exc.extra, list) else []
    found = [
        f"{item.get('key')}: {item.get('message')}"
        for item in extra
        if isinstance(item, dict) and item.get("message")
    ]
    if found:
        detail = "; ".join(found)
    return ApiProblem(HTTP_422_UNPROCESSABLE_ENTITY, slug, title, detail)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The key a request sends (None: none). Raises ApiProblem(403) for two different keys
    or a header too long to be a key."""
    authorization = connection.headers.get("authorization")
    header_key = connection.headers.get("x-api-key")
    bearer = None
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            bearer = value.strip()
    found = [key for key in (bearer, header_key) if key is not None and key.strip()]
    if any(len(key) > HEADER_LIMIT for key in found):
        raise ApiProblem.refused(Refusal.INVALID)
    if len({key.strip() for key in found}) > 1:
        raise ApiProblem(
            HTTP_403_FORBIDDEN,
            "invalid-api-key",
            "Invalid API key",
            "Two different API keys were sent: send one.",
        )
    return found[0] if found else None


async def authenticate_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """The /api/v1 router's guard: an accepted key's principal on the connection, or a
    401/403 problem."""
    web: WebContext = connection.app.state["web"]
    gate, ip = refusal_gate(connection), client_ip(connection)
    wait = gate.blocked(ip, web.clock())
    if wait is not None:  # too many refused keys from this client lately: not looked up
        raise ApiProblem.too_many_refusals(wait)
    try:
        got = await api_keys.authenticate(web.database, presented_key(connection), now=web.clock())
    except ApiProblem:  # two keys at once, or a header too long to be one
        await _count_refusal(gate, ip, web)
        raise
    if isinstance(got, Refusal):
        log.info("api_key_refused", reason=got.value, path=connection.url.path)
        await _count_refusal(gate, ip, web)
        raise ApiProblem.refused(got)
    over = await key_limiter(connection).admit(got.key_id, web.clock())
    if over is not None:
        raise ApiProblem.rate_limited(over.retry_after)
    connection.state[_STATE_KEY] = got


async def _count_refusal(gate: RefusalGate, ip: str, web: WebContext) -> None:
    wait = await gate.refused(ip, web.clock())
    if wait is not None:
        raise ApiProblem.too_many_refusals(wait)


def refusal_gate(connection: ASGIConnection[Any, Any, Any, Any]) -> RefusalGate:
    """The app's count of refused keys per client IP (services/api_refusals.py), made on
    the first keyed request and kept in the app's state like the key limiter."""
    state = connection.app.state
    gate = state.get(_GATE_KEY)
    if not isinstance(gate, RefusalGate):
        web: WebContext = state["web"]
        gate = RefusalGate(web.database)
        state[_GATE_KEY] = gate
    return gate


def key_limiter(connection: ASGIConnection[Any, Any, Any, Any]) -> KeyLimiter:
    """The app's limiter of MAILVET_API_RATE_LIMIT (services/api_limits.py), made on the
    first keyed request and kept in the app's state: one per app, so /api/v1 and the
    compatibility routes count a key together, and two apps (two processes) apart but on
    the same shared counters."""
    state = connection.app.state
    limiter = state.get(_LIMITER_KEY)
    if not isinstance(limiter, KeyLimiter):
        web: WebContext = state["web"]
        limiter = KeyLimiter(web.database, web.settings.web.api_rates)
        state[_LIMITER_KEY] = limiter
    return limiter


def requires_scope(
    scope: Scope | str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A route guard: the request's key must have `scope` (403 otherwise). A coroutine, so
    that Litestar calls it on the loop (a plain function guard goes through a worker
    thread on every request)."""
    needed = Scope(scope)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = _principal_of(connection)
        if not principal.allows(needed):
            raise ApiProblem(
                HTTP_403_FORBIDDEN,
                "insufficient-scope",
                "Insufficient scope",
                f"This API key does not have the scope '{needed.value}'.",
            )

    return guard


def _principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiPrincipal:
    principal = connection.state.get(_STATE_KEY)
    if not isinstance(principal, ApiPrincipal):  # a route outside the guarded router
        raise ApiProblem.refused(Refusal.MISSING)
    return principal


def provide_principal(request: Request[Any, Any, Any]) -> ApiPrincipal:
    """The `principal` dependency: who the request's key speaks for."""
    return _principal_of(request)


def refusal_responses() -> dict[int, ResponseSpec]:
    """The OpenAPI `responses` of a keyed route: its 401, 403 and 429 problems, with
    examples."""

    def example(refusal: Refusal) -> Example:
        return problem_example(*_REFUSALS[refusal])

    forbidden = [example(r) for r in _REFUSALS if r is not Refusal.MISSING]
    limited = ApiProblem.rate_limited(1)
    too_many = ProblemDetails(
        type=PROBLEM_TYPES + limited.slug,
        title=limited.title,
        status=limited.status_code,
        detail=limited.detail,
    )
    return {
        HTTP_401_UNAUTHORIZED: ResponseSpec(
            ProblemDetails,
            description="No API key was sent.",
            media_type=PROBLEM_JSON,
            examples=[example(Refusal.MISSING)],
        ),
        HTTP_403_FORBIDDEN: ResponseSpec(
            ProblemDetails,
            description="The key is invalid, revoked, expired, of a disabled account or"
            " without the scope the route needs.",
            media_type=PROBLEM_JSON,
            examples=forbidden,
        ),
        HTTP_429_TOO_MANY_REQUESTS: ResponseSpec(
            ProblemDetails,
            description="The key is over its rate limit (MAILVET_API_RATE_LIMIT); the"
            " `Retry-After` header says in how many seconds its window ends.",
            media_type=PROBLEM_JSON,
            examples=[Example(summary=limited.title, value=msgspec.to_builtins(too_many))],
        ),
    }


# --- OpenAPI: the operations of the keyed routes ------------------------------------------------

# the body of an error of Litestar's own (its ValidationException: status_code, detail, extra)
_LITESTAR_ERROR = {"status_code", "detail"}


def _litestars_error(response: OpenAPIResponse | Reference) -> bool:
    """Whether `response` is the error Litestar documents by itself for a route that takes
    parameters or a body (a 400, application/json, its own `{status_code, detail, extra}`,
    no example)."""
    if not isinstance(response, OpenAPIResponse) or not response.content:
        return False
    for media in response.content.values():
        schema = media.schema
        variants = schema.one_of if isinstance(schema, Schema) and schema.one_of else [schema]
        for variant in variants:
            if isinstance(variant, Schema) and set(variant.properties or {}) >= _LITESTAR_ERROR:
                return True
    return False


@dataclass
class ApiOperation(Operation):
    """An operation of the keyed API in /schema (`operation_class=ApiOperation`): without
    the 400 Litestar documents by itself for every route that takes a parameter or a body.
    No keyed route answers it: under /api/v1 a request that does not validate is a 422
    problem (`problem_response`), and a compatibility route documents its own 400. A route
    whose JSON body wants examples of its own uses `api_operation(examples)`."""

    def __post_init__(self) -> None:
        if self.responses:
            self.responses = {
                status: response
                for status, response in self.responses.items()
                if not _litestars_error(response)
            }


def api_operation(body_examples: Mapping[str, Example]) -> type[ApiOperation]:
    """An `ApiOperation` whose request body (the `data` Litestar documents from the
    handler's type) shows `body_examples` (name: example) beside its schema."""
    examples: dict[str, Example | Reference] = dict(body_examples)

    @dataclass
    class WithBodyExamples(ApiOperation):
        def __post_init__(self) -> None:
            super().__post_init__()
            if isinstance(self.request_body, RequestBody):
                for media in self.request_body.content.values():
                    media.examples = dict(examples)

    return WithBodyExamples


# handler parameter annotation: `principal: Principal`
Principal = NamedDependency[SkipValidation[ApiPrincipal]]
