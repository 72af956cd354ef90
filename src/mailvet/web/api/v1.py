"""`POST /api/v1/validate` and `POST /api/v1/validate/batch`: one address or up to 1,000
checked for the key's account (scope `validate`). The rules (price, refunds, duplicates,
all-or-nothing, timeout) are services/api_validation.py's; these handlers decode the JSON
body into its msgspec Structs, call one use case and map its refusals to problem details
(web/api/auth.py `ApiProblem`):

- 415 a body that is not `application/json` (or `*+json`), checked after the key (401/403
  come first) and before the body is read;
- 422 a body that does not decode strictly (msgspec, no coercion of "5" to 5): not JSON or
  not UTF-8, wrong types, missing or blank `email`, an entry over 320 characters, an
  unknown `checks`, a `timeout` outside (0, 30];
- 413 a batch of more than 1,000 entries, or a body over MAX_SINGLE_BODY/MAX_BATCH_BODY
  bytes (Litestar refuses it unread);
- 402 not enough credits (a batch needs one per distinct address, all at once);
- 403 an account not confirmed yet;
- 503 the validation engine raised instead of giving a verdict (services/engine_guard.py;
  the credits of that request are refunded).

`ROUTES` is what web/api/__init__.py's `api_router` mounts under /api/v1 (its router guard
authenticates every request first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import JSONBody
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_402_PAYMENT_REQUIRED,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from mailvet.domain.api_keys import Scope
from mailvet.domain.verdict import Reason, Status
from mailvet.services import api_validation as service
from mailvet.services.api_validation import (
    BatchRequest,
    BatchResponse,
    InvalidRequest,
    Refused,
    Result,
    TooMany,
    ValidateRequest,
    ValidateResponse,
)
from mailvet.services.engine_guard import EngineUnavailable, Guarded
from mailvet.web.api.auth import (
    PROBLEM_JSON,
    SERVICE_REFUSALS,
    ApiProblem,
    Principal,
    ProblemDetails,
    api_operation,
    problem_example,
    problem_response,
    refusal_responses,
    refused_problem,
    requires_scope,
    unprocessable,
)
from mailvet.web.context import EngineDep, Web

__all__ = ["MAX_BATCH_BODY", "MAX_SINGLE_BODY", "ROUTES", "validate", "validate_batch"]

# an entry is at most 320 characters, each at most 6 bytes of JSON ("\uXXXX"): the bodies of
# the longest valid requests fit, anything far beyond is refused (413) before it is read
MAX_SINGLE_BODY = 16 * 1024
MAX_BATCH_BODY = service.MAX_BATCH * (6 * service.MAX_ADDRESS + 8) + 1024

# a refusal of the service: (status, slug, title)
_REFUSED: dict[type[Refused], tuple[int, str, str]] = {
    **SERVICE_REFUSALS,
    InvalidRequest: (HTTP_422_UNPROCESSABLE_ENTITY, "invalid-body", "Invalid body"),
    TooMany: (HTTP_413_REQUEST_ENTITY_TOO_LARGE, "batch-too-large", "Batch too large"),
}


def _problem(refused: Refused) -> ApiProblem:
    return refused_problem(_REFUSED, refused)


def _unavailable() -> ApiProblem:
    """The engine raised instead of giving a verdict (services/engine_guard.py): the
    credit is refunded, the caller may try again."""
    return ApiProblem(
        HTTP_503_SERVICE_UNAVAILABLE,
        "engine-unavailable",
        "Validation engine unavailable",
        "The validation engine could not check the address: try again later.",
    )


def _strict_json(body: type[msgspec.Struct]) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """before_request (after the router's key guard, before the handler's `data`): a JSON
    body (415 otherwise) that decodes into `body` strictly (422 otherwise). Litestar's own
    decoding of `data` is lax (it would take "5" for the number 5): this one is msgspec's
    strict decoding of the same bytes, so a wrong type is refused whatever Litestar makes
    of it."""

    async def check(request: Request[Any, Any, Any]) -> None:
        media, _ = request.content_type
        if media != "application/json" and not media.endswith("+json"):
            raise ApiProblem(
                HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "Send the body as JSON with 'Content-Type: application/json'.",
            )
        raw = await request.body()  # over the route's request_max_body_size: 413
        try:
            msgspec.json.decode(raw, type=body)
        except msgspec.ValidationError as exc:
            raise ApiProblem(
                HTTP_422_UNPROCESSABLE_ENTITY, "invalid-body", "Invalid body", str(exc)
            ) from None
        except msgspec.DecodeError:
            raise ApiProblem(
                HTTP_422_UNPROCESSABLE_ENTITY,
                "invalid-body",
                "Invalid body",
                "The body is not valid JSON (UTF-8).",
            ) from None

    return check


def _body_problem(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemDetails]:
    """These routes' errors: a body Litestar could not decode into the request Struct (its
    400: malformed JSON, wrong types, a broken constraint) is a 422 problem; the rest as
    the router answers them."""
    exc = unprocessable(exc, "invalid-body", "Invalid body")
    return problem_response(request, exc)


# --- OpenAPI: answers and examples ---------------------------------------------------------

EXAMPLE_RESULT = Result(
    email="Ann.Lee@Example.com",
    status=Status.DELIVERABLE,
    reason=Reason.ACCEPTED,
    normalized="Ann.Lee@example.com",
    ascii_email="Ann.Lee@example.com",
    suggestion="",
    disposable=False,
    role=False,
    free=False,
    catch_all=False,
    mx="mx1.example.com",
    smtp_code=250,
)
_EXAMPLE_TYPO = Result(
    email="bob@gmial.com",
    status=Status.RISKY,
    reason=Reason.SUSPECTED_TYPO,
    normalized="bob@gmial.com",
    ascii_email="bob@gmial.com",
    suggestion="bob@gmail.com",
    disposable=False,
    role=False,
    free=False,
    catch_all=None,  # no mailbox probe for a typo domain: not established
    mx="",
    smtp_code=None,
)


def _problems(*statuses: int) -> dict[int, ResponseSpec]:
    examples: dict[int, list[Example]] = {
        HTTP_402_PAYMENT_REQUIRED: [
            problem_example(
                402,
                "insufficient-credits",
                "Not enough credits",
                "this request needs 1 credits, the balance is 0",
            )
        ],
        HTTP_413_REQUEST_ENTITY_TOO_LARGE: [
            problem_example(
                413,
                "batch-too-large",
                "Batch too large",
                "a batch holds at most 1000 addresses, this one has 1001",
            )
        ],
        HTTP_415_UNSUPPORTED_MEDIA_TYPE: [
            problem_example(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                "Send the body as JSON with 'Content-Type: application/json'.",
            )
        ],
        HTTP_422_UNPROCESSABLE_ENTITY: [
            problem_example(422, "invalid-body", "Invalid body", "email: Expected `str`, got `int`")
        ],
        HTTP_503_SERVICE_UNAVAILABLE: [
            problem_example(
                503,
                "engine-unavailable",
                "Validation engine unavailable",
                "The validation engine could not check the address: try again later.",
            )
        ],
    }
    descriptions = {
        HTTP_402_PAYMENT_REQUIRED: "Not enough credits for the addresses to check.",
        HTTP_413_REQUEST_ENTITY_TOO_LARGE: "More than 1,000 entries, or a body too large.",
        HTTP_415_UNSUPPORTED_MEDIA_TYPE: "The body is not JSON.",
        HTTP_422_UNPROCESSABLE_ENTITY: "The body does not match the schema.",
        HTTP_503_SERVICE_UNAVAILABLE: "The engine failed to check (the credit is refunded).",
    }
    return {
        status: ResponseSpec(
            ProblemDetails,
            description=descriptions[status],
            media_type=PROBLEM_JSON,
            examples=examples[status],
        )
        for status in statuses
    }


_PRICE = (
    " Every checked address costs one credit, at any level of checks; it is refunded when"
    " the verdict is `unknown` for a reason you did not choose (`timeout`,"
    " `connection_failed`, `greylisted`, `smtp_error`; not `not_checked`)."
)


# the request bodies' own examples (each field's are in the component schemas)
_VALIDATE_BODIES = {
    "smtp": Example(
        summary="One address, every check (the default)", value={"email": "Ann.Lee@Example.com"}
    ),
    "syntax": Example(
        summary="The syntax only", value={"email": "ann.lee@example.com", "checks": "syntax"}
    ),
    "timeout": Example(
        summary="An answer within 5 seconds",
        value={"email": "ann.lee@example.com", "checks": "smtp", "timeout": 5},
    ),
}
_BATCH_BODIES = {
    "batch": Example(
        summary="Two addresses, every check",
        value={"emails": ["Ann.Lee@Example.com", "bob@gmial.com"]},
    ),
    "dns": Example(
        summary="DNS checks; the entry given twice is checked and charged once",
        value={"emails": ["ann.lee@example.com", "ann.lee@example.com"], "checks": "dns"},
    ),
}


def _validation_responses(ok: ResponseSpec) -> dict[int, ResponseSpec]:
    """What a validation route answers: its 200 (`ok`), the key's refusals and the
    service's (402, 413, 415, 422) and the engine's (503), each with its example."""
    return {
        HTTP_200_OK: ok,
        **refusal_responses(),
        **_problems(
            HTTP_402_PAYMENT_REQUIRED,
            HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            HTTP_422_UNPROCESSABLE_ENTITY,
            HTTP_503_SERVICE_UNAVAILABLE,
        ),
    }


@post(
    "/validate",
    status_code=HTTP_200_OK,
    summary="Validate one address",
    description="Check one address (`checks`: syntax, dns or smtp, the default). With"
    " `timeout` (seconds, at most 30) the answer is unknown/timeout when the verdict takes"
    " longer; the check finishes in the background and a later call gets its verdict." + _PRICE,
    tags=["validation"],
    guards=[requires_scope(Scope.VALIDATE)],
    before_request=_strict_json(ValidateRequest),
    operation_class=api_operation(_VALIDATE_BODIES),
    request_max_body_size=MAX_SINGLE_BODY,
    exception_handlers={HTTPException: _body_problem},
    responses=_validation_responses(
        ResponseSpec(
            ValidateResponse,
            description="The verdict, and the balance after this check.",
            examples=[
                Example(
                    summary="A deliverable address",
                    value={
                        **msgspec.to_builtins(EXAMPLE_RESULT),
                        "credits_remaining": 941,
                    },
                )
            ],
        ),
    ),
)
async def validate(
    data: JSONBody[ValidateRequest], web: Web, engine: EngineDep, principal: Principal
) -> ValidateResponse:
    try:
        return await service.validate_one(
            web.database,
            Guarded(engine),
            principal.account_id,
            data.email,
            checks=data.checks,
            within=data.timeout,
            charging=web.settings.web.charging,
            clock=web.clock,
        )
    except Refused as refused:
        raise _problem(refused) from None
    except EngineUnavailable:
        raise _unavailable() from None


@post(
    "/validate/batch",
    status_code=HTTP_200_OK,
    summary="Validate up to 1,000 addresses",
    description="Check a batch of addresses: one result per entry, in the order given"
    " (duplicates included); entries with the same normalized address are checked and"
    " charged once. The batch needs a credit per distinct address, all at once: when the"
    " balance is short, nothing is checked or charged." + _PRICE,
    tags=["validation"],
    guards=[requires_scope(Scope.VALIDATE)],
    before_request=_strict_json(BatchRequest),
    operation_class=api_operation(_BATCH_BODIES),
    request_max_body_size=MAX_BATCH_BODY,
    exception_handlers={HTTPException: _body_problem},
    responses=_validation_responses(
        ResponseSpec(
            BatchResponse,
            description="One result per entry, and the balance after the batch.",
            examples=[
                Example(
                    summary="Two addresses",
                    value=msgspec.to_builtins(
                        BatchResponse(
                            results=[EXAMPLE_RESULT, _EXAMPLE_TYPO], credits_remaining=940
                        )
                    ),
                )
            ],
        ),
    ),
)
async def validate_batch(
    data: JSONBody[BatchRequest], web: Web, engine: EngineDep, principal: Principal
) -> BatchResponse:
    try:
        return await service.validate_batch(
            web.database,
            Guarded(engine),
            principal.account_id,
            data.emails,
            checks=data.checks,
            charging=web.settings.web.charging,
            clock=web.clock,
        )
    except Refused as refused:
        raise _problem(refused) from None
    except EngineUnavailable:
        raise _unavailable() from None


ROUTES = [validate, validate_batch]
