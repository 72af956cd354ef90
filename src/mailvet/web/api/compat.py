"""The original's API, kept so that its users' scripts keep working: `POST
/api/validate-email` and `POST /api/get-credit-balance`, at /api (not /api/v1). New
integrations should use /api/v1 (the schema marks these two deprecated).

Same keys as /api/v1 and the same guard (web/api/auth.py): `x-api-key: KEY` as the
original, or `Authorization: Bearer KEY`; the same limit per key (MAILVET_API_RATE_LIMIT,
counted together with the key's /api/v1 calls); outside the per-IP limit of the pages.
A check costs what `POST /api/v1/validate` costs, through the same use case
(services/api_validation.py `validate_one`, full checks: syntax, DNS and SMTP): one credit,
refunded when the verdict is unknown for a reason the caller did not choose.

The original's body shapes were not recorded; these are plain JSON, close to the market's,
never problem details (the original's clients parse `{"error": ...}`):

`POST /api/validate-email`, `Content-Type: application/json`,
`{"email": "ann@example.com", "single_level_response": false}` (the second field optional:
true, false, or the strings "true"/"false"; other fields ignored):
- 200 `{"email", "status", "reason", "normalized", "ascii_email", "suggestion",
  "disposable", "role", "free", "catch_all", "mx", "smtp_code", "credits_remaining"}`: the
  fields of /api/v1/validate's verdict (`status` deliverable|undeliverable|risky|unknown);
- 200 with `"single_level_response": true`: `{"email": "ann@example.com", "result":
  "deliverable"}` (the status alone).

`POST /api/get-credit-balance` (any body or none; it is not read):
- 200 `{"credits": 940}`, the balance the account can spend.

Errors, `{"error": "a sentence"}`, checked in this order:
- 401 no key (`WWW-Authenticate: Bearer`);
- 403 a bad key: not one of ours, revoked, expired, of a disabled account, or without the
  scope `validate` (validate-email); also an account whose address is not confirmed yet;
- 429 the key is over its rate limit, with `Retry-After` (seconds);
- 415 the body is not `application/json` (validate-email);
- 413 a body over MAX_BODY bytes;
- 400 no email: the body is not JSON or not an object, `email` is missing, not a string,
  blank or over 320 characters, or `single_level_response` is not a boolean;
- 402 no credits left;
- 503 no worker: the validation engine failed to check the address (its resolver or SMTP
  prober raised: DNS not configured on the host, a broken adapter); the credit is refunded
  and the failure logged (error type only). The original answered 503 when its validation
  worker service was down; the engine runs in the web process here, so this is the one
  way it can be unavailable.

`compat_router()` is the area for build_site (web/site.py); the routes are in /schema under
the tag `compatibility`, marked deprecated, with the shapes above as examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from litestar import Request, Response, Router, post
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_402_PAYMENT_REQUIRED,
    HTTP_403_FORBIDDEN,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from mailvet.domain.api_keys import Scope
from mailvet.domain.verdict import Check, Status
from mailvet.services import api_validation as service
from mailvet.services import credits as ledger
from mailvet.services.api_validation import (
    InvalidRequest,
    MayNotValidate,
    NotEnoughCredits,
    ValidateResponse,
)
from mailvet.services.engine_guard import EngineUnavailable, Guarded
from mailvet.web.api.auth import (
    ApiProblem,
    Principal,
    authenticate_api_key,
    provide_principal,
    requires_scope,
)
from mailvet.web.api.v1 import EXAMPLE_RESULT
from mailvet.web.context import EngineDep, Web
from mailvet.web.errors import ErrorBody

__all__ = [
    "COMPAT_PATH",
    "MAX_BODY",
    "Balance",
    "EngineUnavailable",
    "StatusOnly",
    "compat_router",
]

log = structlog.get_logger(__name__)

COMPAT_PATH = "/api"
MAX_BODY = 16 * 1024  # an address is at most 320 characters: far more than a request needs
TAG = "compatibility"
NO_EMAIL = 'Send the address to check as JSON: {"email": "ann@example.com"}.'
_ERROR_TEXT = {  # Litestar's bare errors, said as sentences
    HTTP_413_REQUEST_ENTITY_TOO_LARGE: "The request body is too large.",
}


class StatusOnly(msgspec.Struct, frozen=True, kw_only=True):
    """validate-email's answer with `single_level_response`: the status alone."""

    email: str
    result: Status


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    """get-credit-balance's answer."""

    credits: int


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> ApiProblem:
    """A refusal of these routes (rendered `{"error": message}` by `_plain_error`)."""
    return ApiProblem(status, "compat", "", message, headers)


def _plain_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """The router's exception handler: every refusal, the key's and the limit's included,
    as `{"error": ...}` with its status and headers (the original's clients parse that)."""
    if not isinstance(exc, HTTPException):  # the app's 500 handler logs and answers
        raise exc
    message = exc.detail
    if not isinstance(exc, ApiProblem):
        message = _ERROR_TEXT.get(exc.status_code, message)
    return Response(
        ErrorBody(error=message), status_code=exc.status_code, headers=exc.headers or None
    )


def _is_json(request: Request[Any, Any, Any]) -> bool:
    media, _ = request.content_type
    return media == "application/json" or media.endswith("+json")


def _flag(value: object) -> bool:
    """single_level_response: a JSON boolean, or its text; absent or null: false."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise _error(HTTP_400_BAD_REQUEST, "single_level_response must be true or false.")


def decode_request(raw: bytes) -> tuple[str, bool]:
    """(email, single_level_response) of a validate-email body; ApiProblem(400) else."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise _error(HTTP_400_BAD_REQUEST, "The body is not valid JSON. " + NO_EMAIL) from None
    if not isinstance(body, dict):
        raise _error(HTTP_400_BAD_REQUEST, "The body is not a JSON object. " + NO_EMAIL)
    email = body.get("email")
    if not isinstance(email, str) or not email.strip():
        raise _error(HTTP_400_BAD_REQUEST, "No email given. " + NO_EMAIL)
    return email, _flag(body.get("single_level_response"))


# --- OpenAPI ------------------------------------------------------------------------------------

_EXAMPLE = ValidateResponse(
    **msgspec.structs.asdict(EXAMPLE_RESULT), credits_remaining=941
)  # /api/v1/validate's example verdict


# validate-email's 200: one shape or the other (a union is a type to Litestar, not to mypy)
_EITHER: Any = ValidateResponse | StatusOnly


@dataclass
class _ValidateEmailOperation(Operation):
    """validate-email's operation with its request body (the handler reads the raw body
    itself, to answer the original's 415 and 400 rather than Litestar's)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        required=["email"],
                        properties={
                            "email": Schema(
                                type=OpenAPIType.STRING,
                                description="The address to check.",
                                max_length=service.MAX_ADDRESS,
                            ),
                            "single_level_response": Schema(
                                type=OpenAPIType.BOOLEAN,
                                default=False,
                                description="true: answer the status alone, as `result`.",
                            ),
                        },
                    ),
                    examples={
                        "check": Example(value={"email": "ann@example.com"}),
                        "status only": Example(
                            value={"email": "ann@example.com", "single_level_response": True}
                        ),
                    },
                )
            },
        )


def _errors(*statuses: int) -> dict[int, ResponseSpec]:
    said = {
        HTTP_400_BAD_REQUEST: ("No email, or a body that is not a JSON object.", NO_EMAIL),
        HTTP_401_UNAUTHORIZED: (
            "No API key was sent.",
            "Send your API key as 'Authorization: Bearer KEY' or 'x-api-key: KEY'.",
        ),
        HTTP_402_PAYMENT_REQUIRED: (
            "No credits left.",
            "this request needs 1 credits, the balance is 0",
        ),
        HTTP_403_FORBIDDEN: (
            "A bad key (invalid, revoked, expired, of a disabled account, without the scope),"
            " or an account not confirmed yet.",
            "This API key is not valid.",
        ),
        HTTP_413_REQUEST_ENTITY_TOO_LARGE: ("The body is too large.", _ERROR_TEXT[413]),
        HTTP_415_UNSUPPORTED_MEDIA_TYPE: ("The body is not JSON.", "Send the body as JSON."),
        HTTP_429_TOO_MANY_REQUESTS: (
            "The key is over its rate limit; see Retry-After.",
            "This API key is over its rate limit: try again in 1 s.",
        ),
        HTTP_503_SERVICE_UNAVAILABLE: (
            "The validation engine is unavailable (the credit is refunded).",
            "The validation engine is unavailable: try again later.",
        ),
    }
    return {
        status: ResponseSpec(
            ErrorBody,
            description=said[status][0],
            examples=[Example(summary=said[status][0], value={"error": said[status][1]})],
        )
        for status in statuses
    }


# --- routes --------------------------------------------------------------------------------------


@post(
    "/validate-email",
    status_code=HTTP_200_OK,
    summary="Validate one address (the original's API)",
    description="Kept for the original's scripts; use `POST /api/v1/validate`. Full checks"
    " (syntax, DNS, SMTP); one credit, refunded when the verdict is unknown for a reason you"
    ' did not choose. Errors are `{"error": ...}`.',
    tags=[TAG],
    deprecated=True,
    guards=[requires_scope(Scope.VALIDATE)],
    request_max_body_size=MAX_BODY,
    operation_class=_ValidateEmailOperation,
    responses={
        HTTP_200_OK: ResponseSpec(
            _EITHER,
            description="The verdict and the balance after it; with single_level_response"
            " the status alone.",
            examples=[
                Example(summary="The verdict", value=msgspec.to_builtins(_EXAMPLE)),
                Example(
                    summary="single_level_response",
                    value={"email": "ann@example.com", "result": "deliverable"},
                ),
            ],
        ),
        **_errors(
            HTTP_400_BAD_REQUEST,
            HTTP_401_UNAUTHORIZED,
            HTTP_402_PAYMENT_REQUIRED,
            HTTP_403_FORBIDDEN,
            HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            HTTP_429_TOO_MANY_REQUESTS,
            HTTP_503_SERVICE_UNAVAILABLE,
        ),
    },
)
async def validate_email(
    request: Request[Any, Any, Any], web: Web, engine: EngineDep, principal: Principal
) -> ValidateResponse | StatusOnly:
    if not _is_json(request):
        raise _error(
            HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "Send the body as JSON with 'Content-Type: application/json'.",
        )
    email, single = decode_request(await request.body())  # over MAX_BODY: 413
    try:
        answer = await service.validate_one(
            web.database,
            Guarded(engine),
            principal.account_id,
            email,
            checks=Check.SMTP,
            charging=web.settings.web.charging,
            clock=web.clock,
        )
    except InvalidRequest as refused:
        raise _error(HTTP_400_BAD_REQUEST, refused.detail) from None
    except NotEnoughCredits as refused:
        raise _error(HTTP_402_PAYMENT_REQUIRED, refused.detail) from None
    except MayNotValidate as refused:
        raise _error(HTTP_403_FORBIDDEN, refused.detail) from None
    except EngineUnavailable:
        raise _error(
            HTTP_503_SERVICE_UNAVAILABLE, "The validation engine is unavailable: try again later."
        ) from None
    if single:
        return StatusOnly(email=email, result=answer.status)
    return answer


@post(
    "/get-credit-balance",
    status_code=HTTP_200_OK,
    summary="Credit balance (the original's API)",
    description="Kept for the original's scripts; use `GET /api/v1/credits`. The body, if"
    " any, is not read.",
    tags=[TAG],
    deprecated=True,
    responses={
        HTTP_200_OK: ResponseSpec(
            Balance,
            description="The balance the account can spend.",
            examples=[Example(summary="A balance", value={"credits": 940})],
        ),
        **_errors(HTTP_401_UNAUTHORIZED, HTTP_403_FORBIDDEN, HTTP_429_TOO_MANY_REQUESTS),
    },
)
async def get_credit_balance(web: Web, principal: Principal) -> Balance:
    async with web.database.session_maker() as session:
        balance = await ledger.balance(session, principal.account_id)
    return Balance(credits=balance.balance)


ROUTES = [validate_email, get_credit_balance]


def compat_router() -> Router:
    """/api/validate-email and /api/get-credit-balance behind the API key guard."""
    return Router(
        path=COMPAT_PATH,
        route_handlers=ROUTES,
        guards=[authenticate_api_key],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
        exception_handlers={HTTPException: _plain_error},
    )
