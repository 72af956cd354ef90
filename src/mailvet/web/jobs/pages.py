"""The signed-in lists area under /app: dashboard, new list, live job page, downloads.

Thin handlers over services/jobs.py (ownership and queries), services/credits.py (balance),
services/single_checks.py (a single check's credit) and the tabular detection (preview).

- `GET /app`: balance, the account's jobs (paginated, newest first) with their status
  labels (web/jobs/labels.py), progress and download links, and the single-address check.
- `POST /app/check`: one address, one credit (refunded when the verdict is one the ledger
  refunds); unconfirmed accounts are refused.
- `GET /app/jobs/new`, `POST /app/jobs/new`: upload a CSV/TXT/XLSX list through the app
  (web/jobs/upload.py streams it); it is kept as a draft in object storage (services.jobs
  draft_key) and in the session (this browser, its owner's id in the entry: `_add_draft`),
  then
- or, when the storage takes uploads itself (`PresignedUpload`: S3), the page's form posts
  the file straight to S3 under a pre-signed POST policy (the draft's exact key, 1 byte to
  the upload limit, the redirect below, an hour), jobs.js putting the file's name in its
  metadata field; S3 sends the browser to
- `GET /app/jobs/new/<draft>/uploaded?expires=&sig=` (signed over the account, the draft
  and its key: web/jobs/links.py): the signed-in owner's upload is checked there (the key S3
  names, the object's size, since S3 look-alikes may not enforce the policy) and kept as
  the same draft (`_add_draft`); a replay changes nothing. Then
- `GET /app/jobs/new/<draft>`: the preview (first rows, detected column, header row and
  sheet, all changeable by the column, header row and sheet choices), the cost and the
  balance;
- `POST /app/jobs/new/<draft>/start`: starts the job with the chosen column, header row
  and sheet (confirmed accounts only; `_start_draft`: the job row claims the draft, so a
  second press makes no second job), and leads to
- `GET /app/jobs/<id>`: live progress over Server-Sent Events (`/events`, the process's
  ProgressHub), the counts as an SVG chart drawn here, downloads, and "delete this job".
- `GET /app/jobs/<id>/download/<segment>`: redirects to a short-lived link: the storage's
  pre-signed URL for the whole result when it has them, else
  `/app/jobs/<id>/file/<segment>?expires=&sig=` (web/jobs/links.py), which streams the
  result or the segment (tabular/segments.py) in the file's own format.

Body limits: the upload (its own router) takes up to MAX_UPLOAD_BYTES, every other /app post
FORM_BODY_LIMIT; an anonymous request is refused (`SignedInOnly`) before any body is read.

Every job route reads the job through `services.jobs.owned_job`: another account's job,
its events and its files are a 404 like an id that does not exist.

The upload post is exempt from Litestar's CSRF middleware only because the middleware
would parse (and hold) the whole multipart body to find the token; the handler has the
token (`_csrf_token`, sent first in the form) checked by that same middleware
(web/jobs/csrf.py) when the file part begins, before a byte of the file is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import structlog
from litestar import Controller, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.enums import ScopeType
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery, QueryParameter, SkipValidation
from litestar.response import Redirect, ServerSentEvent, Template
from litestar.response.sse import ServerSentEventMessage
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_303_SEE_OTHER,
    HTTP_307_TEMPORARY_REDIRECT,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_409_CONFLICT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_422_UNPROCESSABLE_ENTITY,
)
from litestar.types import ASGIApp, Receive, Scope, Send

from mailvet.domain import credits as credits_rules
from mailvet.domain.accounts import Account
from mailvet.domain.job import FileInfo, Job, JobStatus
from mailvet.domain.ports import (
    JobRepository,
    MessageBus,
    ObjectNotFound,
    ObjectStorage,
    PresignedUpload,
)
from mailvet.domain.verdict import Reason
from mailvet.pipeline.job_files import decode_stored_layout, local_copy
from mailvet.pipeline.submit import new_job_id, result_name
from mailvet.services import credits, single_checks
from mailvet.services import jobs as job_service
from mailvet.services.accounts import get_account
from mailvet.services.jobs import JobRunning, Progress, draft_key
from mailvet.tabular import InputError
from mailvet.tabular.segments import ALL, is_segment, write_segment
from mailvet.web.auth.schemas import Fields
from mailvet.web.context import EngineDep, Web, WebContext
from mailvet.web.deps import AppSettings, Bus, Jobs, Storage
from mailvet.web.errors import CSRF_FAILED
from mailvet.web.forms import MAX_ADDRESS, is_htmx
from mailvet.web.jobs.chart import chart_of
from mailvet.web.jobs.controller import attachment
from mailvet.web.jobs.csrf import token_valid
from mailvet.web.jobs.labels import SEGMENT_TITLES, progress_percent, status_label
from mailvet.web.jobs.links import download_url, link_valid, upload_link, uploaded_path
from mailvet.web.jobs.preview import HEADER_CHOICES, build_preview
from mailvet.web.jobs.progress import ProgressHub
from mailvet.web.jobs.results import (
    RESULT_MEDIA_TYPES,
    fetch_to_scratch,
    presigned_result,
    result_kind,
    rewrite_turns,
    segment_name,
    stream_file,
)
from mailvet.web.jobs.upload import (
    MAX_UPLOAD_BYTES,
    metadata_filename,
    receive_upload,
    scratch_dir,
    size_text,
)
from mailvet.web.public.texts import REASON_TEXT
from mailvet.web.security import content_security_policy, origin_of
from mailvet.web.sessions import LoginRequired, flash, request_account, requires_login
from mailvet.web.throttle import enforce

log = structlog.get_logger(__name__)

DRAFTS_KEY = "job_drafts"  # session: draft id -> {"name": file name, "key": draft_key, "owner"}
MAX_DRAFTS = 5
CHECKS_PER_MINUTE = 30  # single checks per account
KEEPALIVE_SECONDS = 15.0
CSRF_FIELD = "_csrf_token"
# every /app post but the upload (its own limit, MAX_UPLOAD_BYTES): a few short form fields
FORM_BODY_LIMIT = 64 * 1024
UPLOAD_FORM_SECONDS = 3600  # a direct upload's POST policy: the form is good for an hour
UPLOAD_GRACE_SECONDS = 3600  # and its callback an hour more (a big file may still be arriving)
FILENAME_META = "filename"  # the metadata a direct upload brings its file name in


class JobsArea:
    """What the area keeps per process: the progress poller, made on first use."""

    def __init__(self) -> None:
        self._hub: ProgressHub | None = None

    def hub(self, web: WebContext) -> ProgressHub:
        if self._hub is None:
            self._hub = ProgressHub(web.database)
        return self._hub

    async def aclose(self) -> None:
        """Stop the poller (an `on_shutdown` hook of the app)."""
        if self._hub is not None:
            await self._hub.close()


Area = NamedDependency[SkipValidation[JobsArea]]
UploadLimit = NamedDependency[int]


def app_router(area: JobsArea | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> Router:
    """The /app lists area for `create_app(..., areas=[...])`; register `area.aclose` as
    an `on_shutdown` hook when you pass your own `area`."""
    kept = area or JobsArea()

    def provide_area() -> JobsArea:
        return kept

    def provide_upload_limit() -> int:
        return max_upload_bytes

    uploads = Router(
        path="/jobs/new",
        route_handlers=[UploadController],
        request_max_body_size=max_upload_bytes,
        include_in_schema=False,
    )
    return Router(
        path="/app",
        route_handlers=[ListsController, uploads],
        guards=[requires_login],
        middleware=[SignedInOnly],
        dependencies={
            "area": Provide(provide_area, sync_to_thread=False),
            "upload_limit": Provide(provide_upload_limit, sync_to_thread=False),
        },
        request_max_body_size=FORM_BODY_LIMIT,
        include_in_schema=False,
    )


class SignedInOnly:
    """Refuses an anonymous request before anything reads its body: route middleware wraps
    Litestar's CSRF middleware, which parses a form to find its token, and guards run only
    after that. `requires_login` stays on the router for what this does not cover."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and request_account(ASGIConnection(scope)) is None:
            raise LoginRequired("sign in first")
        await self.app(scope, receive, send)


# --- helpers -------------------------------------------------------------------------------


def _account_id(request: Request[Any, Any, Any]) -> str:
    signed = request_account(request)
    if signed is None:  # requires_login ran first
        raise PermissionDeniedException("sign in first")
    return signed.account_id


@contextlib.asynccontextmanager
async def _reading(web: WebContext) -> AsyncIterator[Any]:
    async with web.database.session_maker() as session:
        yield session


async def _owned(web: WebContext, owner: str, job_id: str) -> Job:
    async with _reading(web) as session:
        job = await job_service.owned_job(session, owner, job_id)
    if job is None:
        raise NotFoundException("no such job")
    return job


async def _account(web: WebContext, owner: str) -> Account | None:
    async with _reading(web) as session:
        return await get_account(session, owner)


async def _account_context(web: WebContext, owner: str) -> dict[str, Any]:
    """The page's account, its balance (None with MAILVET_CREDITS=off) and credits_on."""
    async with _reading(web) as session:
        account = await get_account(session, owner)
        balance = await credits.balance(session, owner) if web.settings.web.charging else None
    return {"account": account, "balance": balance, "credits_on": web.settings.web.charging}


async def _started(web: WebContext, owner: str, draft_id: str) -> bool:
    """Whether the draft is `owner`'s job already (started by an earlier request)."""
    async with _reading(web) as session:
        return await job_service.owned_job(session, owner, draft_id) is not None


_GONE = "this upload is no longer stored; upload it again"


@dataclass(frozen=True)
class _Choices:
    """What the preview chose (from its query, or the start form): the address column
    ("" to detect), the sheet ("" for the first) and the header row (None to detect)."""

    column: str = ""
    sheet: str = ""
    header_row: int | None = None


def _drafts(request: Request[Any, Any, Any], owner: str) -> dict[str, dict[str, str]]:
    """The drafts `owner` uploaded in this browser; another account's (signed in here
    before, without signing out) are not theirs to see or start."""
    raw = request.session.get(DRAFTS_KEY)
    if not isinstance(raw, dict):
        return {}
    return {
        draft_id: draft
        for draft_id, draft in raw.items()
        if isinstance(draft, dict) and draft.get("owner") == owner
    }


async def _keep_drafts(
    request: Request[Any, Any, Any],
    storage: ObjectStorage,
    owner: str,
    drafts: dict[str, dict[str, str]],
) -> None:
    """Store `drafts` as the session's only ones: the files of another account's drafts
    still in the session are deleted (the owner's own are the caller's to delete)."""
    raw = request.session.get(DRAFTS_KEY)
    for draft in raw.values() if isinstance(raw, dict) else ():
        if isinstance(draft, dict) and draft.get("owner") != owner and _is_draft_key(draft):
            await storage.delete_prefix(draft["key"])
    request.session[DRAFTS_KEY] = drafts


async def _add_draft(
    request: Request[Any, Any, Any],
    storage: ObjectStorage,
    owner: str,
    draft_id: str,
    *,
    key: str,
    name: str,
) -> None:
    """Keep the file stored at `key` as `owner`'s draft `draft_id` in this session; past
    MAX_DRAFTS the oldest draft and its file go."""
    drafts = _drafts(request, owner)
    drafts[draft_id] = {"name": name, "key": key, "owner": owner}
    while len(drafts) > MAX_DRAFTS:
        oldest = next(iter(drafts))
        await storage.delete_prefix(drafts.pop(oldest)["key"])
    await _keep_drafts(request, storage, owner, drafts)


def _draft(request: Request[Any, Any, Any], owner: str, draft_id: str) -> dict[str, str]:
    found = _drafts(request, owner).get(draft_id)
    if found is None or "name" not in found or not _is_draft_key(found):
        raise NotFoundException("no such upload (it may have been started or removed)")
    return found


def _is_draft_key(draft: dict[str, str]) -> bool:
    """Whether the entry holds its file's key (`draft_key`, kept at upload)."""
    return str(draft.get("key", "")).startswith(job_service.DRAFTS)


def _segment_or_404(segment: str) -> None:
    if not is_segment(segment):
        raise NotFoundException("no such download")


def _header_row(raw: str) -> int | None:
    """The header row chosen on the preview (0: none), None for detection (also for
    anything not on offer)."""
    raw = raw.strip()
    if raw.isdigit() and len(raw) <= 3 and int(raw) <= HEADER_CHOICES:
        return int(raw)
    return None


def _job_view(job: Job) -> dict[str, Any]:
    return {
        "job": job,
        "label": status_label(job.status),
        "percent": progress_percent(job.status, job.rows_done, job.rows_total),
        "completed": job.status is JobStatus.COMPLETED,
        "failed": job.status.is_error,
    }


def _progress_view(progress: Progress) -> dict[str, Any]:
    return {
        "progress": progress,
        "label": status_label(progress.status),
        "percent": progress_percent(progress.status, progress.rows_done, progress.rows_total),
    }


# the dashboard's ?page=N: a larger N is refused with 400 (10**20 overflowed the query's
# OFFSET: a 500); any smaller one is a page (past the last: an empty one)
MAX_PAGE = 1_000_000
PageNumber = Annotated[int, QueryParameter(name="page", le=MAX_PAGE)]


class ListsController(Controller):
    path = "/"

    # --- dashboard --------------------------------------------------------------------------

    @get("/", name="dashboard")
    async def dashboard(
        self, request: Request[Any, Any, Any], web: Web, page: PageNumber = 1
    ) -> Template:
        return await _dashboard(request, web, page=page)

    @post("/check", name="single_check", status_code=HTTP_200_OK)
    async def single_check(
        self, request: Request[Any, Any, Any], web: Web, engine: EngineDep
    ) -> Template:
        owner = _account_id(request)
        form = await Fields.of(request)
        address = form.text("email", MAX_ADDRESS + 1).strip()
        result: dict[str, Any] = {"check_email": address[:MAX_ADDRESS]}
        status = HTTP_200_OK
        account = await _account(web, owner)
        if account is None:
            raise PermissionDeniedException("no account")
        if not address:
            result["check_error"] = "Enter an email address."
            status = HTTP_400_BAD_REQUEST
        elif len(address) > MAX_ADDRESS:
            result["check_error"] = f"An address has at most {MAX_ADDRESS} characters."
            status = HTTP_400_BAD_REQUEST
        elif not single_checks.may_validate(account):
            result["check_error"] = "Confirm your email address before you check addresses."
            status = HTTP_403_FORBIDDEN
        else:
            await enforce(web, f"check-account:{owner}", limit=CHECKS_PER_MINUTE, window_seconds=60)
            outcome = await single_checks.check_address(
                web.database,
                engine,
                account,
                address,
                web.settings.engine.checks,
                charging=web.settings.web.charging,
                clock=web.clock,
            )
            if outcome.short is not None:
                result["check_error"] = (
                    f"A check costs 1 credit and your balance is {outcome.short.available}."
                    " Buy credits or upload a list once you have some."
                )
                status = HTTP_409_CONFLICT
            result["verdict"] = outcome.verdict
            result["charged"] = outcome.charged
            if outcome.verdict is not None:
                result["reason_text"] = REASON_TEXT.get(Reason(outcome.verdict.reason), "")
        if is_htmx(request):
            return Template("jobs/_check_result.html", context=result, status_code=status)
        return await _dashboard(request, web, page=1, extra=result, status_code=status)

    # --- new list ---------------------------------------------------------------------------

    @get("/jobs/new", name="new_list")
    async def new_list(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        storage: Storage,
        settings: AppSettings,
        upload_limit: UploadLimit,
    ) -> Template:
        return await _new_list(request, web, storage, settings, upload_limit)

    @get("/jobs/new/{draft_id:str}/uploaded", name="list_uploaded")
    async def list_uploaded(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        storage: Storage,
        settings: AppSettings,
        upload_limit: UploadLimit,
        draft_id: FromPath[str],
        expires: FromQuery[int] = 0,
        sig: FromQuery[str] = "",
        key: FromQuery[str] = "",
    ) -> Redirect | Template:
        """Where S3 sends the browser after a direct upload (`key` is S3's addition)."""
        owner = _account_id(request)
        if not isinstance(storage, PresignedUpload):
            raise NotFoundException("uploads go through the app here")

        async def refused(reason: str, error: str, status_code: int) -> Template:
            log.warning("direct_upload_refused", draft=draft_id, account_id=owner, reason=reason)
            return await _new_list(
                request, web, storage, settings, upload_limit, error=error, status_code=status_code
            )

        state = upload_link(
            web.secret_key,
            account_id=owner,
            draft_id=draft_id,
            key=key,
            expires=expires,
            sig=sig,
            now=web.clock(),
        )
        if state == "forged" or not _is_draft_key({"key": key}):
            return await refused(
                "signature",
                "This upload could not be checked (the link is not this account's):"
                " upload the list again.",
                HTTP_403_FORBIDDEN,
            )
        preview = Redirect(f"/app/jobs/new/{draft_id}", status_code=HTTP_303_SEE_OTHER)
        if draft_id in _drafts(request, owner):
            return preview  # a replay: the draft is kept already
        if await _started(web, owner, draft_id):
            return Redirect(f"/app/jobs/{draft_id}", status_code=HTTP_303_SEE_OTHER)
        if state == "expired":
            await storage.delete_prefix(key)
            return await refused(
                "expired", "This upload took too long: upload the list again.", HTTP_400_BAD_REQUEST
            )
        try:
            stored = await storage.stat(key)
        except ObjectNotFound:
            return await refused(
                "missing",
                "The file did not arrive (or it is gone already): upload the list again.",
                HTTP_400_BAD_REQUEST,
            )
        if not 1 <= stored.size <= upload_limit:
            await storage.delete_prefix(key)
            too_big = stored.size > upload_limit
            return await refused(
                "too_large" if too_big else "empty",
                f"The upload is larger than the limit of {size_text(upload_limit)}."
                if too_big
                else "The uploaded file is empty.",
                HTTP_413_REQUEST_ENTITY_TOO_LARGE if too_big else HTTP_400_BAD_REQUEST,
            )
        name = metadata_filename(stored.metadata.get(FILENAME_META, ""))
        await _add_draft(request, storage, owner, draft_id, key=key, name=name)
        log.info("list_uploaded", draft=draft_id, bytes=stored.size, account_id=owner, direct=True)
        return preview

    @get("/jobs/new/{draft_id:str}", name="preview_list")
    async def preview_list(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        storage: Storage,
        settings: AppSettings,
        draft_id: FromPath[str],
        column: FromQuery[str] = "",
        sheet: FromQuery[str] = "",
        header_row: FromQuery[str] = "",
    ) -> Template:
        choices = _Choices(column=column, sheet=sheet, header_row=_header_row(header_row))
        return await _preview(request, web, storage, settings, draft_id, choices)

    @post("/jobs/new/{draft_id:str}/start", name="start_list", status_code=HTTP_303_SEE_OTHER)
    async def start_list(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        jobs: Jobs,
        storage: Storage,
        bus: Bus,
        settings: AppSettings,
        draft_id: FromPath[str],
    ) -> Redirect | Template:
        owner = _account_id(request)
        job_page = Redirect(f"/app/jobs/{draft_id}", status_code=HTTP_303_SEE_OTHER)
        try:
            draft = _draft(request, owner, draft_id)
        except NotFoundException:
            if await _started(web, owner, draft_id):
                return job_page  # started already, by an earlier press of the button
            raise
        form = await Fields.of(request)
        choices = _Choices(
            column=form.text("email_column", 64).strip(),
            sheet=form.text("sheet", 1024),
            header_row=_header_row(form.text("header_row", 8)),
        )
        account = await _account(web, owner)
        if account is None or not single_checks.may_validate(account):
            return await _preview(
                request,
                web,
                storage,
                settings,
                draft_id,
                choices,
                error="Confirm your email address before you start a validation.",
                status_code=HTTP_403_FORBIDDEN,
            )
        job = Job(
            id=draft_id,
            owner=owner,
            file=FileInfo(
                filename=draft["name"],
                email_column=choices.column or None,
                checks=settings.engine.checks,
                sheet=choices.sheet or None,
                header_row=choices.header_row,
            ),
        )
        started = await _start_draft(web, jobs, storage, bus, job, draft_key=draft["key"])
        drafts = _drafts(request, owner)
        drafts.pop(draft_id, None)
        await _keep_drafts(request, storage, owner, drafts)
        if started:
            log.info("job_started", job_id=draft_id, account_id=owner)
        return job_page

    # --- one job ----------------------------------------------------------------------------

    @get("/jobs/{job_id:str}", name="job_page")
    async def job_page(
        self, request: Request[Any, Any, Any], web: Web, job_id: FromPath[str]
    ) -> Template:
        job = await _owned(web, _account_id(request), job_id)
        return Template("jobs/job.html", context=_job_context(job))

    @get("/jobs/{job_id:str}/events", name="job_events")
    async def job_events(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        area: Area,
        job_id: FromPath[str],
    ) -> ServerSentEvent:
        owner = _account_id(request)
        await _owned(web, owner, job_id)
        hub = area.hub(web)
        engine = request.app.template_engine
        if engine is None:  # never: the SaaS app has its templates
            raise RuntimeError("no template engine")
        render = engine.get_template("jobs/_progress.html").render
        return ServerSentEvent(_events(web, hub, owner, job_id, render))

    @get("/jobs/{job_id:str}/download/{segment:str}", name="job_download")
    async def job_download(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        storage: Storage,
        settings: AppSettings,
        job_id: FromPath[str],
        segment: FromPath[str],
    ) -> Redirect:
        owner = _account_id(request)
        job = await _owned(web, owner, job_id)
        _segment_or_404(segment)
        if job.status is not JobStatus.COMPLETED or not job.file.filename:
            raise NotFoundException("this job has no result to download")
        seconds = settings.storage.link_seconds
        presigned = presigned_result(storage, settings, job.id) if segment == ALL else None
        if presigned is not None:
            return Redirect(presigned, status_code=HTTP_303_SEE_OTHER)
        url = download_url(
            web.secret_key,
            account_id=owner,
            job_id=job.id,
            segment=segment,
            now=web.clock(),
            seconds=seconds,
        )
        return Redirect(url, status_code=HTTP_303_SEE_OTHER)

    @get("/jobs/{job_id:str}/file/{segment:str}", name="job_file")
    async def job_file(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        jobs: Jobs,
        storage: Storage,
        settings: AppSettings,
        job_id: FromPath[str],
        segment: FromPath[str],
        expires: FromQuery[int] = 0,
        sig: FromQuery[str] = "",
    ) -> Response[Any]:
        owner = _account_id(request)
        job = await _owned(web, owner, job_id)
        if not link_valid(
            web.secret_key,
            account_id=owner,
            job_id=job.id,
            segment=segment,
            expires=expires,
            sig=sig,
            now=web.clock(),
        ):
            # expired or not ours: send the owner through a fresh link
            return Redirect(
                f"/app/jobs/{job.id}/download/{segment}", status_code=HTTP_307_TEMPORARY_REDIRECT
            )
        _segment_or_404(segment)
        if segment == ALL:
            return await _stream_result(jobs, storage, settings, job, segment)
        async with rewrite_turns(request.app.state).turn():
            return await _stream_result(jobs, storage, settings, job, segment)

    @post("/jobs/{job_id:str}/delete", name="delete_job", status_code=HTTP_303_SEE_OTHER)
    async def delete_job(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        storage: Storage,
        job_id: FromPath[str],
    ) -> Redirect:
        owner = _account_id(request)
        await _owned(web, owner, job_id)
        try:
            async with web.database.unit_of_work(write=True) as session:
                await job_service.delete_job(session, storage, owner, job_id)
        except JobRunning:
            wait = "This job is still starting or running: delete it once it has finished."
            flash(request, wait, "error")
            return Redirect(f"/app/jobs/{job_id}", status_code=HTTP_303_SEE_OTHER)
        flash(request, "The job and its files are deleted.", "success")
        return Redirect("/app", status_code=HTTP_303_SEE_OTHER)


class UploadController(Controller):
    """The upload post alone, under a router with the upload's body limit."""

    path = "/"

    @post("/", name="upload_list", exclude_from_csrf=True, status_code=HTTP_303_SEE_OTHER)
    async def upload_list(
        self,
        request: Request[Any, Any, Any],
        web: Web,
        storage: Storage,
        settings: AppSettings,
    ) -> Redirect:
        owner = _account_id(request)

        async def check_token(fields: dict[str, str]) -> None:
            if not await token_valid(request, fields.get(CSRF_FIELD)):
                raise PermissionDeniedException(CSRF_FAILED)

        upload = await receive_upload(
            request,
            scratch_dir(settings),
            idle_seconds=settings.web_upload_idle_seconds,
            before_file=check_token,
        )
        draft_id = new_job_id()
        key = draft_key(web.clock(), draft_id)
        try:
            await storage.put_file(key, upload.path)
        finally:
            upload.path.unlink(missing_ok=True)
        await _add_draft(request, storage, owner, draft_id, key=key, name=upload.filename)
        log.info("list_uploaded", draft=draft_id, bytes=upload.size, account_id=owner)
        return Redirect(f"/app/jobs/new/{draft_id}", status_code=HTTP_303_SEE_OTHER)


# --- the pieces of the handlers -------------------------------------------------------------


async def _start_draft(
    web: WebContext,
    jobs: JobRepository,
    storage: ObjectStorage,
    bus: MessageBus,
    job: Job,
    *,
    draft_key: str,
) -> bool:
    """Start a draft as `job` (its id is the draft's): services.jobs.start_job (the row
    claims the draft, so a second press of the button returns False; a failed move or
    publish removes the row again, so the customer can press Start once more);
    NotFoundException when the draft's file is gone."""
    try:
        return await job_service.start_job(
            web.database, jobs, storage, bus, job, source_key=draft_key
        )
    except ObjectNotFound:
        raise NotFoundException(_GONE) from None


async def _new_list(
    request: Request[Any, Any, Any],
    web: WebContext,
    storage: ObjectStorage,
    settings: Any,
    upload_limit: int,
    *,
    error: str = "",
    status_code: int = HTTP_200_OK,
) -> Template:
    """The new-list page; its form posts to S3 when the storage takes uploads itself (a
    fresh draft id and key each time: nothing is kept until the callback), else here."""
    owner = _account_id(request)
    account = await _account(web, owner)
    context: dict[str, Any] = {"account": account, "error": error, "direct": None}
    if not isinstance(storage, PresignedUpload):
        return Template("jobs/new.html", context=context, status_code=status_code)
    draft_id = new_job_id()
    now = web.clock()
    key = draft_key(now, draft_id)
    callback = uploaded_path(
        web.secret_key,
        account_id=owner,
        draft_id=draft_id,
        key=key,
        now=now,
        seconds=UPLOAD_FORM_SECONDS + UPLOAD_GRACE_SECONDS,
    )
    form = storage.presigned_post(
        key,
        max_bytes=upload_limit,
        redirect=settings.web.base_url
        + callback,  # MAILVET_PUBLIC_URL: where S3 sends the browser back
        expires=timedelta(seconds=UPLOAD_FORM_SECONDS),
        metadata=[FILENAME_META],
    )
    context |= {"direct": form, "filename_field": form.metadata[FILENAME_META]}
    policy = content_security_policy(
        recaptcha=bool(settings.web.recaptcha_site_key), form_action=[origin_of(form.url)]
    )
    return Template(
        "jobs/new.html",
        context=context,
        status_code=status_code,
        headers={"Content-Security-Policy": policy, "Cache-Control": "no-store"},
    )


async def _dashboard(
    request: Request[Any, Any, Any],
    web: WebContext,
    *,
    page: int,
    extra: dict[str, Any] | None = None,
    status_code: int = HTTP_200_OK,
) -> Template:
    owner = _account_id(request)
    page = max(1, page)
    size = job_service.PAGE_SIZE
    context = await _account_context(web, owner)
    async with _reading(web) as session:
        jobs_page = await job_service.jobs_page(
            session, owner=owner, offset=(page - 1) * size, limit=size
        )
    context |= {
        "rows": [_job_view(job) for job in jobs_page.items],
        "page": page,
        "pages": max(1, -(-jobs_page.total // size)),
        "total": jobs_page.total,
        "has_more": jobs_page.has_more,
        "check_email": "",
        "check_error": "",
        "verdict": None,
        "reason_text": "",
        "charged": False,
    }
    context.update(extra or {})
    return Template("jobs/dashboard.html", context=context, status_code=status_code)


async def _preview(
    request: Request[Any, Any, Any],
    web: WebContext,
    storage: ObjectStorage,
    settings: Any,
    draft_id: str,
    choices: _Choices,
    *,
    error: str = "",
    status_code: int = HTTP_200_OK,
) -> Template:
    owner = _account_id(request)
    draft = _draft(request, owner, draft_id)
    context: dict[str, Any] = {
        "draft_id": draft_id,
        "filename": draft["name"],
        "preview": None,
        "error": error,
        "input_error": "",
        "chosen_column": choices.column,
        "chosen_sheet": choices.sheet,
        "chosen_header_row": choices.header_row,
    }
    try:
        async with local_copy(storage, draft["key"], scratch_dir(settings)) as path:
            preview = await asyncio.to_thread(
                build_preview,
                path,
                filename=draft["name"],
                email_column=choices.column or None,
                sheet=choices.sheet or None,
                limits=job_service.xlsx_limits(settings),
                header_row=choices.header_row,
            )
        context["preview"] = preview
    except InputError as exc:
        context["input_error"] = str(exc)
        if status_code == HTTP_200_OK:
            status_code = HTTP_422_UNPROCESSABLE_ENTITY
    except ObjectNotFound:
        raise NotFoundException(_GONE) from None
    context |= await _account_context(web, owner)
    balance = context["balance"]
    context |= {
        "short": (
            credits_rules.spend(balance.balance, context["preview"].cost)
            if balance is not None and context["preview"] is not None
            else None
        ),
    }
    return Template("jobs/preview.html", context=context, status_code=status_code)


def _job_context(job: Job) -> dict[str, Any]:
    context = _job_view(job)
    context["chart"] = chart_of(job.counts) if job.counts is not None else None
    context["segments"] = [
        {"segment": segment, "title": title} for segment, title in SEGMENT_TITLES.items()
    ]
    context["downloadable"] = job.status is JobStatus.COMPLETED and bool(job.file.filename)
    return context


async def _events(
    web: WebContext, hub: ProgressHub, owner: str, job_id: str, render: Any
) -> AsyncIterator[ServerSentEventMessage]:
    """The job's progress fragment on every change; the final one with the chart and the
    downloads, then `done` (the page closes the stream, sse-close)."""
    async with hub.watch(job_id) as updates:
        while True:
            try:
                progress = await asyncio.wait_for(anext(updates), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive", data=None)
                continue
            if progress.status.is_final:
                job = await _owned(web, owner, job_id)
                html = render(**_job_context(job), final=True)
                yield ServerSentEventMessage(data=html, event="progress")
                yield ServerSentEventMessage(data="done", event="done")
                return
            html = render(**_progress_view(progress), final=False)
            yield ServerSentEventMessage(data=html, event="progress")


async def _stream_result(
    jobs: Any, storage: ObjectStorage, settings: Any, job: Job, segment: str
) -> Response[Any]:
    out, summary = await fetch_to_scratch(jobs, storage, settings, job)
    kind = result_kind(summary)
    name = result_name(job.file.filename, kind)
    if segment != ALL:
        part = out.with_name(out.name + f".{segment}")
        try:
            layout = decode_stored_layout(job.layout).layout
            await asyncio.to_thread(
                write_segment, out, part, kind=kind, layout=layout, segment=segment
            )
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        finally:
            out.unlink(missing_ok=True)
        out = part
        name = segment_name(job.file.filename, kind, segment)
    return stream_file(
        out,
        media_type=RESULT_MEDIA_TYPES[kind],
        headers={"content-disposition": attachment(name), "cache-control": "no-store"},
    )
