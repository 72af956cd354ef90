"""The public API's jobs (issue 9 §2): thin handlers over services/api_jobs.py, whose
refusals they map to problem details (web/api/auth.py `ApiProblem`).

- `POST /api/v1/jobs` (scope `jobs:write`): a multipart body with the list in the part
  `file` and the optional fields `email_column` (a header name or a 1-based column
  number), `sheet` (an XLSX sheet), `checks` (syntax, dns or smtp) and `callback_url`
  (where the job's signed completion event goes, issue 9 §3); 201 with the job
  (`services.api_jobs.JobView`, still pending_start) and `Location: /api/v1/jobs/{id}`.
  Refused before the body is read: 415 a body that is not multipart/form-data, 403 an
  account not confirmed yet. While it streams in (web/jobs/upload.py `receive_upload`, to
  a scratch file): 413 past the upload limit, 422 no `file` part, an empty file or a
  malformed body, 408 a client that stalls. Then 422 a bad `checks`, a `callback_url`
  that may not be called, or a file that does not read as a list (the detection's own
  message); 402 a balance under the list's cost (its distinct valid addresses). A refused
  upload leaves no job, no file and no ledger entry. A balance spent after the start and
  before intake reserves it ends the job as `error_insufficient_credits`.
- `GET /api/v1/jobs` (scope `jobs:read`): the account's jobs, newest first, a page at a
  time (`page` from 1, `per_page` up to 100; out of range or not a number: 422), `status`
  to keep one job status; `{items, total, page, per_page, has_more}`, each item as below.
- `GET /api/v1/jobs/{id}` (`jobs:read`): one job.
- `GET /api/v1/jobs/{id}/results` (`jobs:read`): the result file; `status` a
  comma-separated list of segments (deliverable, undeliverable, risky, unknown,
  except-undeliverable) whose rows to keep, `format` csv or xlsx (blank: the stored
  result's kind; the other kind is converted, services.api_jobs.write_download). The
  whole result in its own kind is a 307 redirect to a short-lived link when the storage
  pre-signs them (S3, MAILVET_STORAGE_LINK_SECONDS), else streamed; a filtered or
  converted one is always streamed, named like `contacts.mailvet.deliverable+risky.xlsx`.
  409 before the job has completed, for a failed job, or once retention purged its files;
  422 a segment or a format that is not one, or more rows asked as XLSX than a sheet
  holds (`too-large-for-xlsx`).
- `DELETE /api/v1/jobs/{id}` (`jobs:write`): 204, the job's row and files gone; 409 while
  it has not ended.

Another account's job, an unknown id and an id that cannot be one are all 404: the answer
never says a job exists. The key's 401/403 come first on every route (the router's guard),
then the scope's 403.

`routes(max_upload_bytes)` is what web/api/__init__.py's `api_router` mounts under /api/v1.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Request, Response, Router, delete, get, post
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.params import FromPath, Parameter
from litestar.response import Redirect
from litestar.status_codes import (
    HTTP_201_CREATED,
    HTTP_204_NO_CONTENT,
    HTTP_307_TEMPORARY_REDIRECT,
    HTTP_400_BAD_REQUEST,
    HTTP_402_PAYMENT_REQUIRED,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_422_UNPROCESSABLE_ENTITY,
)
from litestar.types import ControllerRouterHandler

from mailvet.domain.api_keys import Scope
from mailvet.domain.job import Job, JobStatus
from mailvet.domain.ports import ObjectNotFound
from mailvet.domain.verdict import Reason
from mailvet.pipeline.submit import read_summary, result_name
from mailvet.services import api_jobs as service
from mailvet.services.api_jobs import (
    JobBusy,
    JobCounts,
    JobList,
    JobMissing,
    JobView,
    ResultNotReady,
    StartFields,
    TooLargeForXlsx,
)
from mailvet.services.api_validation import (
    InvalidRequest,
    NotEnoughCredits,
    Refused,
)
from mailvet.services.jobs import xlsx_limits
from mailvet.web.api.auth import (
    PROBLEM_JSON,
    SERVICE_REFUSALS,
    ApiOperation,
    ApiProblem,
    Principal,
    ProblemDetails,
    problem_example,
    problem_response,
    refusal_responses,
    refused_problem,
    requires_scope,
    unprocessable,
)
from mailvet.web.context import Web
from mailvet.web.deps import AppSettings, Bus, DnsResolver, Jobs, Storage
from mailvet.web.jobs.controller import attachment
from mailvet.web.jobs.results import (
    RESULT_MEDIA_TYPES,
    fetch_to_scratch,
    presigned_result,
    result_kind,
    rewrite_turns,
    stream_file,
)
from mailvet.web.jobs.upload import FILE_FIELD, MAX_UPLOAD_BYTES, receive_upload, scratch_dir

__all__ = ["JOBS_PATH", "routes"]

log = structlog.get_logger(__name__)

JOBS_PATH = "/jobs"
_API_JOBS = "/api/v1/jobs"

# a refusal of the service: (status, slug, title)
_REFUSED: dict[type[Refused], tuple[int, str, str]] = {
    **SERVICE_REFUSALS,
    InvalidRequest: (HTTP_422_UNPROCESSABLE_ENTITY, "invalid-request", "Invalid request"),
    JobMissing: (HTTP_404_NOT_FOUND, "job-not-found", "Job not found"),
    JobBusy: (HTTP_409_CONFLICT, "job-running", "Job still running"),
    ResultNotReady: (HTTP_409_CONFLICT, "result-not-ready", "No result yet"),
    TooLargeForXlsx: (HTTP_422_UNPROCESSABLE_ENTITY, "too-large-for-xlsx", "Too large for XLSX"),
}


def _problem(refused: Refused) -> ApiProblem:
    return refused_problem(_REFUSED, refused)


def _jobs_problem(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemDetails]:
    """These routes' errors: a service refusal as its problem; a query or an upload Litestar
    or the upload reader refuses as malformed (400) is a 422; the rest as the router
    answers them."""
    if isinstance(exc, Refused):
        exc = _problem(exc)
    else:
        exc = unprocessable(exc, "invalid-request", "Invalid request")
    return problem_response(request, exc)


def _fields(fields: dict[str, str]) -> StartFields:
    """The upload's form fields the service reads."""
    return StartFields(
        email_column=fields.get("email_column", ""),
        sheet=fields.get("sheet", ""),
        checks=fields.get("checks", ""),
        callback_url=fields.get("callback_url", ""),
    )


# --- OpenAPI: the upload's body, answers and examples -----------------------------------------


@dataclass
class _UploadOperation(ApiOperation):
    """POST /api/v1/jobs in the schema: its body is read as it streams (not a `data`
    parameter Litestar would document), so the multipart form is described here."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            required=True,
            description="The list (CSV, TXT or XLSX) and how to read it.",
            content={
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        required=[FILE_FIELD],
                        properties={
                            FILE_FIELD: Schema(
                                type=OpenAPIType.STRING,
                                format=OpenAPIFormat.BINARY,
                                description="The list: CSV, TXT or XLSX.",
                            ),
                            "email_column": Schema(
                                type=OpenAPIType.STRING,
                                description="The address column: its header or its 1-based"
                                " number (default: detected).",
                                examples=["email"],
                            ),
                            "sheet": Schema(
                                type=OpenAPIType.STRING,
                                description="The XLSX sheet to read (default: the one whose"
                                " column holds addresses).",
                            ),
                            "checks": Schema(
                                type=OpenAPIType.STRING,
                                enum=["syntax", "dns", "smtp"],
                                description="How far to check (default: the installation's,"
                                " smtp unless configured).",
                            ),
                            "callback_url": Schema(
                                type=OpenAPIType.STRING,
                                format=OpenAPIFormat.URI,
                                description="Where to POST the signed job.completed or"
                                " job.failed event when the job ends (instead of the"
                                " account's default webhook URL); a public http(s) URL.",
                                examples=["https://hooks.example.com/mailvet"],
                            ),
                        },
                    ),
                    examples={
                        "A CSV list": Example(
                            summary="A CSV list, syntax checks only",
                            value={
                                "file": "name,email\r\nAnn,ann@example.com\r\n",
                                "email_column": "email",
                                "checks": "syntax",
                            },
                        ),
                    },
                ),
            },
        )


_CSV_EXAMPLE = (
    "name,email,mailvet_status,mailvet_reason,mailvet_normalized,mailvet_suggestion,"
    "mailvet_disposable,mailvet_role,mailvet_free,mailvet_catch_all,mailvet_mx,"
    "mailvet_smtp_code,mailvet_ascii_email\r\n"
    "Ann,ann@example.com,deliverable,accepted,ann@example.com,,false,false,false,false,"
    "mx.example.com,250,ann@example.com\r\n"
)
_FILE = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)


@dataclass
class _ResultsOperation(ApiOperation):
    """GET /api/v1/jobs/{id}/results in the schema: its 200 is a file of either kind (a
    Stream, which Litestar documents without content), its 307 a link in `Location`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        responses = self.responses or {}
        ok, moved = responses.get("200"), responses.get(str(HTTP_307_TEMPORARY_REDIRECT))
        if isinstance(ok, OpenAPIResponse):
            ok.content = {
                "text/csv": OpenAPIMediaType(
                    schema=_FILE,
                    examples={
                        "csv": Example(
                            summary="A CSV result (format=csv)",
                            value=_CSV_EXAMPLE,
                        )
                    },
                ),
                RESULT_MEDIA_TYPES["xlsx"]: OpenAPIMediaType(
                    schema=_FILE,
                    examples={
                        "xlsx": Example(
                            summary="An XLSX result (format=xlsx)",
                            description="The workbook's bytes (a zip archive); the"
                            " address sheet holds the rows, the mailvet columns after"
                            " the list's own.",
                            value="PK\u0003\u0004... (binary)",
                        )
                    },
                ),
            }
        if isinstance(moved, OpenAPIResponse):
            moved.headers = {
                "Location": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.URI),
                    description="The short-lived link of the storage"
                    " (MAILVET_STORAGE_LINK_SECONDS).",
                )
            }


_EXAMPLE_ID = "5e0c4f1a9b8d4c3e2f1a0b9c8d7e6f5a"
_EXAMPLE_PENDING = JobView(
    id=_EXAMPLE_ID,
    filename="contacts.csv",
    status=JobStatus.PENDING_START,
    rows_total=0,
    rows_done=0,
    unique_addresses=1180,
    cost=0,
    counts=JobCounts(),
    reasons={},
    created_at=datetime.fromisoformat("2026-12-01T12:00:00+00:00"),
    started_at=None,
    finished_at=None,
    error="",
)
_EXAMPLE_DONE = msgspec.structs.replace(
    _EXAMPLE_PENDING,
    status=JobStatus.COMPLETED,
    rows_total=1200,
    rows_done=1200,
    cost=1150,
    counts=JobCounts(deliverable=900, undeliverable=150, risky=100, unknown=50),
    reasons={
        Reason.ACCEPTED.value: 900,
        Reason.REJECTED.value: 120,
        Reason.INVALID_SYNTAX.value: 30,
        Reason.CATCH_ALL.value: 100,
        Reason.TIMEOUT.value: 50,
    },
    started_at=datetime.fromisoformat("2026-12-01T12:00:02+00:00"),
    finished_at=datetime.fromisoformat("2026-12-01T12:03:40+00:00"),
)
_EXAMPLE_SHORT = msgspec.structs.replace(
    _EXAMPLE_PENDING,
    status=JobStatus.ERROR_INSUFFICIENT_CREDITS,
    rows_total=1200,
    finished_at=datetime.fromisoformat("2026-12-01T12:00:02+00:00"),
    error="this list needs 1180 credits and the balance is 100: 1080 missing",
)


def _problem_spec(status: int, description: str, *examples: Example) -> ResponseSpec:
    return ResponseSpec(
        ProblemDetails, description=description, media_type=PROBLEM_JSON, examples=list(examples)
    )


def _refusal_example(kind: type[Refused], detail: str) -> Example:
    status, slug, title = _REFUSED[kind]
    return problem_example(status, slug, title, detail)


_NOT_FOUND = {
    HTTP_404_NOT_FOUND: _problem_spec(
        HTTP_404_NOT_FOUND,
        "No job of this account has this id (another account's jobs are not found either).",
        _refusal_example(JobMissing, "no such job"),
    )
}


def _invalid(description: str, *details: str) -> dict[int, ResponseSpec]:
    examples = [_refusal_example(InvalidRequest, detail) for detail in details]
    return {HTTP_422_UNPROCESSABLE_ENTITY: _problem_spec(422, description, *examples)}


def _view_example(summary: str, view: JobView) -> Example:
    return Example(summary=summary, value=msgspec.to_builtins(view))


# --- the routes -------------------------------------------------------------------------------


@post(
    "/",
    status_code=HTTP_201_CREATED,
    summary="Start a job",
    description="Upload a list (multipart/form-data: the file in `file`; optional"
    " `email_column`, `sheet`, `checks`, `callback_url`) and start validating it. The"
    " answer is the job, still `pending_start`; follow it at the `Location`, or have its"
    " signed job.completed or job.failed event sent to `callback_url` (else to the"
    " account's default webhook URL). The list costs a credit per distinct valid address:"
    " a balance under that is refused at once (402, nothing stored). The job reserves"
    " them when intake accepts it and is charged what its verdicts cost when it ends"
    " (refunds as for single checks); a balance spent meanwhile ends it as"
    " `error_insufficient_credits`, charged nothing.",
    tags=["jobs"],
    guards=[requires_scope(Scope.JOBS_WRITE)],
    operation_class=_UploadOperation,
    responses={
        HTTP_201_CREATED: ResponseSpec(
            JobView,
            description="The job, started; `Location` is its URL.",
            examples=[_view_example("A job just started", _EXAMPLE_PENDING)],
        ),
        **refusal_responses(),
        HTTP_402_PAYMENT_REQUIRED: _problem_spec(
            402,
            "The balance is under the list's cost (a credit per distinct valid address):"
            " no job is started, nothing is stored.",
            _refusal_example(
                NotEnoughCredits, "this request needs 1180 credits, the balance is 100"
            ),
        ),
        HTTP_413_REQUEST_ENTITY_TOO_LARGE: _problem_spec(
            413,
            "The upload is larger than the limit.",
            problem_example(
                413,
                "",
                "Request Entity Too Large",
                "the upload is larger than the limit of 200 MiB",
            ),
        ),
        HTTP_415_UNSUPPORTED_MEDIA_TYPE: _problem_spec(
            415,
            "The body is not multipart/form-data.",
            problem_example(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                "Send the list as multipart/form-data, the file in the part 'file'.",
            ),
        ),
        **_invalid(
            "No file, an empty one, a file that is not a list, or a bad field.",
            "no file: send the list in the multipart field 'file'",
            "contacts.csv: no column with email addresses was found",
            "checks must be one of syntax, dns, smtp, not 'everything'",
        ),
    },
)
async def start_job(
    request: Request[Any, Any, Any],
    web: Web,
    jobs: Jobs,
    storage: Storage,
    bus: Bus,
    settings: AppSettings,
    principal: Principal,
    dns_resolver: DnsResolver,
) -> Response[JobView]:
    media, _ = request.content_type
    if media != "multipart/form-data":
        raise ApiProblem(
            HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            f"Send the list as multipart/form-data, the file in the part '{FILE_FIELD}'.",
        )
    await service.may_start(web.database, principal.account_id)
    try:
        upload = await receive_upload(
            request, scratch_dir(settings), idle_seconds=settings.web_upload_idle_seconds
        )
    except ClientException as exc:
        if exc.status_code != HTTP_400_BAD_REQUEST:  # 413 past the limit: as it is
            raise
        raise ApiProblem(
            HTTP_422_UNPROCESSABLE_ENTITY, "invalid-request", "Invalid request", exc.detail
        ) from None
    try:
        view = await service.start_from_upload(
            web.database,
            jobs,
            storage,
            bus,
            principal.account_id,
            upload.path,
            filename=upload.filename,
            fields=_fields(upload.fields),
            default_checks=settings.engine.checks,
            limits=xlsx_limits(settings),
            charging=web.settings.web.charging,
            clock=web.clock,
            resolver=dns_resolver,
            allow_private=settings.webhooks.allow_private,
        )
    finally:
        upload.path.unlink(missing_ok=True)
    log.info(
        "api_job_started",
        job_id=view.id,
        account_id=principal.account_id,
        key_id=principal.key_id,
        bytes=upload.size,
    )
    return Response(
        view, status_code=HTTP_201_CREATED, headers={"Location": f"{_API_JOBS}/{view.id}"}
    )


@get(
    "/",
    summary="List jobs",
    description="The account's jobs, newest first, a page at a time; `status` keeps the"
    " jobs in one state.",
    tags=["jobs"],
    guards=[requires_scope(Scope.JOBS_READ)],
    operation_class=ApiOperation,
    responses={
        200: ResponseSpec(
            JobList,
            description="A page of jobs.",
            examples=[
                Example(
                    summary="The first page",
                    value=msgspec.to_builtins(
                        JobList(
                            items=[_EXAMPLE_DONE],
                            total=41,
                            page=1,
                            per_page=20,
                            has_more=True,
                        )
                    ),
                )
            ],
        ),
        **refusal_responses(),
        **_invalid(
            "A status that is not a job state, or a page out of range.",
            "status must be one of pending_start, file_accepted, ...",
        ),
    },
)
async def list_jobs(
    web: Web,
    principal: Principal,
    status: Annotated[
        str | None,
        Parameter(
            description="Keep the jobs in this state: pending_start, file_accepted,"
            " file_queued, file_validation_in_progress, file_completed, or an error_* one.",
            examples=[Example(value="file_completed")],
        ),
    ] = None,
    page: Annotated[
        int,
        Parameter(
            ge=1, le=service.MAX_PAGE, description="The page, from 1.", examples=[Example(value=1)]
        ),
    ] = 1,
    per_page: Annotated[
        int,
        Parameter(
            ge=1,
            le=service.MAX_PER_PAGE,
            description="Jobs per page.",
            examples=[Example(value=service.DEFAULT_PER_PAGE)],
        ),
    ] = service.DEFAULT_PER_PAGE,
) -> JobList:
    wanted = service.parse_status(status)
    async with web.database.session_maker() as session:
        return await service.list_jobs(
            session,
            principal.account_id,
            status=wanted,
            page=page,
            per_page=per_page,
            charging=web.settings.web.charging,
        )


@get(
    "/{job_id:str}",
    summary="One job",
    description="The job's state, progress, counts per status and reason (rows), and cost."
    " `status` is the pipeline's state: pending_start, file_accepted, file_queued,"
    " file_validation_in_progress, file_completed, or error_* (the reason in `error`).",
    tags=["jobs"],
    guards=[requires_scope(Scope.JOBS_READ)],
    operation_class=ApiOperation,
    responses={
        200: ResponseSpec(
            JobView,
            description="The job.",
            examples=[
                _view_example("A completed job", _EXAMPLE_DONE),
                _view_example("A job the balance did not cover", _EXAMPLE_SHORT),
            ],
        ),
        **refusal_responses(),
        **_NOT_FOUND,
    },
)
async def get_job(web: Web, principal: Principal, job_id: FromPath[str]) -> JobView:
    async with web.database.session_maker() as session:
        return await service.job_view(
            session, principal.account_id, job_id, charging=web.settings.web.charging
        )


@get(
    "/{job_id:str}/results",
    summary="Download a job's result",
    description="The result file: the list with the mailvet columns added. `status` keeps"
    " the rows of the named segments (comma-separated: deliverable, undeliverable, risky,"
    " unknown, except-undeliverable); `format` is csv or xlsx (default: the result's own"
    " kind, CSV for a CSV or TXT list, XLSX for an XLSX list). The other kind is converted:"
    " an XLSX list's result as CSV is its address sheet's rows (UTF-8, text cells that"
    " start like a formula get a leading quote); a CSV or TXT list's result as XLSX is one"
    " sheet of its rows, every cell text. A result of more rows than an XLSX sheet holds"
    " (1,048,576) asked as XLSX is a 422. The whole result in its own kind may be a"
    " redirect to a short-lived link of the storage.",
    tags=["jobs"],
    guards=[requires_scope(Scope.JOBS_READ)],
    operation_class=_ResultsOperation,
    responses={
        200: ResponseSpec(
            None,  # its content: _ResultsOperation
            description="The file (text/csv or the XLSX media type, as `format` asks), as an"
            " attachment.",
        ),
        HTTP_307_TEMPORARY_REDIRECT: ResponseSpec(
            None,
            description="The whole result at a short-lived link of the storage (Location).",
        ),
        **refusal_responses(),
        **_NOT_FOUND,
        HTTP_409_CONFLICT: _problem_spec(
            409,
            "The job has not completed (or it failed): it has no result.",
            _refusal_example(
                ResultNotReady, "the job is file_validation_in_progress, it has no result yet"
            ),
        ),
        HTTP_422_UNPROCESSABLE_ENTITY: _problem_spec(
            422,
            "A status that is not a segment, a format that is neither csv nor xlsx, or a"
            " result asked as XLSX that a workbook cannot hold.",
            _refusal_example(
                InvalidRequest,
                "status takes a comma-separated list of deliverable, undeliverable, risky,"
                " unknown, except-undeliverable",
            ),
            _refusal_example(InvalidRequest, "format is csv or xlsx"),
            _refusal_example(
                TooLargeForXlsx,
                "the result has 1,200,001 rows, more than the 1,048,576 an XLSX sheet holds:"
                " ask format=csv, or fewer rows with status",
            ),
        ),
    },
)
async def job_results(
    request: Request[Any, Any, Any],
    web: Web,
    jobs: Jobs,
    storage: Storage,
    settings: AppSettings,
    principal: Principal,
    job_id: FromPath[str],
    status: Annotated[
        str | None,
        Parameter(
            description="The segments to keep, comma-separated (default: every row).",
            examples=[Example(value="deliverable,risky")],
        ),
    ] = None,
    format: Annotated[
        str | None,
        Parameter(
            description="csv or xlsx (default: the result's own kind); the other kind"
            " is converted.",
            examples=[Example(value="csv")],
        ),
    ] = None,
) -> Response[Any]:
    async with web.database.session_maker() as session:
        job = await service.owned(session, principal.account_id, job_id)
    kept = service.result_filter(status)
    wanted = service.result_format(format)
    service.ready(job)
    service.check_fits(job, kept, wanted)
    url = presigned_result(storage, settings, job.id) if kept is None else None
    if url is not None:
        try:
            stored = (await read_summary(storage, job.id)).result_kind
        except ObjectNotFound:  # purged meanwhile
            raise ResultNotReady(job) from None
        if wanted is None or wanted == stored:
            return Redirect(url, status_code=HTTP_307_TEMPORARY_REDIRECT)
    if kept is None and wanted is None:  # the stored file as it is
        out, asked = await _download(jobs, storage, settings, job, kept, wanted)
    else:  # perhaps rewritten: one of the process's few turns
        async with rewrite_turns(request.app.state).turn():
            out, asked = await _download(jobs, storage, settings, job, kept, wanted)
    name = result_name(job.file.filename, asked if kept is None else f"{kept.label}.{asked}")
    return stream_file(
        out,
        media_type=RESULT_MEDIA_TYPES[asked],
        headers={"content-disposition": attachment(name), "cache-control": "no-store"},
    )


async def _download(
    jobs: Jobs,
    storage: Storage,
    settings: AppSettings,
    job: Job,
    kept: service.ResultFilter | None,
    wanted: service.Kind | None,
) -> tuple[Path, service.Kind]:
    """The job's result in a scratch file, `kept` rows only, as `wanted` (None: its own
    kind), and the kind it is."""
    try:
        out, summary = await fetch_to_scratch(jobs, storage, settings, job)
    except NotFoundException:
        raise ResultNotReady(job) from None
    kind = result_kind(summary)
    asked = wanted or kind
    if kept is not None or asked != kind:
        part = out.with_name(out.name + ".part")
        try:
            await asyncio.to_thread(
                service.write_download, out, part, job=job, stored=kind, asked=asked, kept=kept
            )
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        finally:
            out.unlink(missing_ok=True)
        out = part
    return out, asked


@delete(
    "/{job_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    summary="Delete a job",
    description="Delete a job that has ended (completed or failed) with its files: the list"
    " and the result.",
    tags=["jobs"],
    guards=[requires_scope(Scope.JOBS_WRITE)],
    operation_class=ApiOperation,
    responses={
        **refusal_responses(),
        **_NOT_FOUND,
        HTTP_409_CONFLICT: _problem_spec(
            409,
            "The job has not ended yet.",
            _refusal_example(
                JobBusy,
                "the job is file_validation_in_progress: delete it once it has completed or failed",
            ),
        ),
    },
)
async def delete_job(
    web: Web, storage: Storage, principal: Principal, job_id: FromPath[str]
) -> None:
    async with web.database.unit_of_work(write=True) as session:
        await service.delete(session, storage, principal.account_id, job_id)
    log.info("api_job_deleted", job_id=job_id, account_id=principal.account_id)


def routes(max_upload_bytes: int = MAX_UPLOAD_BYTES) -> list[ControllerRouterHandler]:
    """The jobs routes under /jobs, an upload taking at most `max_upload_bytes`."""
    return [
        Router(
            path=JOBS_PATH,
            route_handlers=[start_job, list_jobs, get_job, job_results, delete_job],
            request_max_body_size=max_upload_bytes,
            exception_handlers={Refused: _jobs_problem, HTTPException: _jobs_problem},
        )
    ]
