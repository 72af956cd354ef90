"""/admin: the administrators' pages (role admin, checked on every request by
`requires_admin`, web/sessions.py).

- /admin: the users, newest first, searched by address or name
  (`services.accounts.search_accounts`), with their balances;
- /admin/users/{id}: one user: state, balance, the latest ledger entries and jobs; disable
  (its sessions end) or enable it (`AccountService.set_disabled`); grant or remove credits
  with a reason (`services.credits.adjust_once`: an admin adjustment entry saying who and
  why; removing more than the balance is refused). Each rendering of the credits form
  carries a new one-time nonce, the entry's idempotency key: the same form sent twice (a
  double click, a re-sent POST) writes one entry;
- /admin/jobs: every job with its state, newest first, filtered by state (paginated).

An administrator cannot disable their own account (the last way in could go).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import structlog
from litestar import Controller, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.domain.accounts import Account
from mailvet.domain.credits import Shortfall
from mailvet.domain.job import JobStatus
from mailvet.services import accounts as account_service
from mailvet.services import admin as admin_queries
from mailvet.services import credits
from mailvet.web.admin.schemas import NONCE_FIELD, CreditsForm, new_nonce
from mailvet.web.auth.common import NO_STORE, see_other, unit_of_work
from mailvet.web.auth.ports import Auth
from mailvet.web.context import Web, WebContext
from mailvet.web.jobs.labels import progress_percent, status_label
from mailvet.web.sessions import LoginRequired, flash, request_account, requires_admin

log = structlog.get_logger(__name__)

USERS_PER_PAGE = 50
JOBS_PER_PAGE = 50
ENTRIES_SHOWN = 20
ACCOUNT_ID = re.compile(r"[0-9a-f]{32}")
STATUS_CHOICES = [(status.value, status_label(status), status.value) for status in JobStatus]

Page = Annotated[int, QueryParameter(name="page", ge=1, le=100_000)]


class AdminController(Controller):
    path = "/admin"
    include_in_schema = False
    guards = [requires_admin]

    @get("/", name="admin_users")
    async def users(self, web: Web, q: FromQuery[str] = "", page: Page = 1) -> Template:
        query = q[:200]
        async with web.database.session_maker() as session:
            found = await account_service.search_accounts(
                session, query, limit=USERS_PER_PAGE + 1, offset=(page - 1) * USERS_PER_PAGE
            )
            shown = found[:USERS_PER_PAGE]
            balances = await admin_queries.balances_of(session, [a.id for a in shown])
            total = await admin_queries.count_accounts(session)
        return _page(
            "users.html",
            {
                "accounts": shown,
                "balances": balances,
                "q": query,
                "page": page,
                "has_more": len(found) > USERS_PER_PAGE,
                "total": total,
            },
        )

    @get("/users/{account_id:str}", name="admin_user")
    async def user(
        self, request: Request[Any, Any, Any], web: Web, account_id: FromPath[str]
    ) -> Template:
        async with web.database.session_maker() as session:
            account = await _account(session, account_id)
            return await _user_page(session, request, account)

    @post("/users/{account_id:str}/disable", status_code=HTTP_200_OK)
    async def disable(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth, account_id: FromPath[str]
    ) -> Template | Redirect:
        return await _set_disabled(request, web, auth.accounts, account_id, disabled=True)

    @post("/users/{account_id:str}/enable", status_code=HTTP_200_OK)
    async def enable(
        self, request: Request[Any, Any, Any], web: Web, auth: Auth, account_id: FromPath[str]
    ) -> Template | Redirect:
        return await _set_disabled(request, web, auth.accounts, account_id, disabled=False)

    @post("/users/{account_id:str}/credits", status_code=HTTP_200_OK)
    async def adjust_credits(
        self, request: Request[Any, Any, Any], web: Web, account_id: FromPath[str]
    ) -> Template | Redirect:
        form = await CreditsForm.read(request)
        admin = _admin_id(request)
        async with unit_of_work(web, write=True) as session:
            account = await _account(session, account_id)
            problems = form.problems()
            if problems:
                return await _user_page(session, request, account, errors=problems)
            got = await credits.adjust_once(
                session,
                account.id,
                form.amount,
                key=form.ledger_key(account.id),
                actor=admin,
                reason=form.reason,
                now=web.clock(),
            )
            if isinstance(got, Shortfall):
                message = f"The balance is {got.available}: {got.needed} cannot be removed."
                return await _user_page(session, request, account, errors={"amount": message})
        if isinstance(got, credits.Repeated):  # a double click, a re-sent POST
            log.info("admin_adjustment_repeated", account_id=account.id, actor=admin)
            flash(request, "This form was sent before: the balance did not change again.", "info")
        else:
            what = "granted" if form.amount > 0 else "removed"
            flash(request, f"{abs(form.amount)} credits {what}.", "success")
        return see_other(f"/admin/users/{account.id}")

    @get("/jobs", name="admin_jobs")
    async def jobs(self, web: Web, page: Page = 1, status: FromQuery[str] = "") -> Template:
        chosen = JobStatus(status) if status in JobStatus._value2member_map_ else None
        async with web.database.session_maker() as session:
            found = await admin_queries.all_jobs_page(
                session, offset=(page - 1) * JOBS_PER_PAGE, limit=JOBS_PER_PAGE, status=chosen
            )
        return _page(
            "jobs.html",
            {
                "jobs": [_job_row(entry) for entry in found.items],
                "page": page,
                "has_more": found.has_more,
                "total": found.total,
                "status": chosen.value if chosen else "",
                "statuses": STATUS_CHOICES,
            },
        )


# --- helpers ---------------------------------------------------------------------------------


def _admin_id(request: Request[Any, Any, Any]) -> str:
    signed = request_account(request)
    if signed is None:  # requires_admin stops it first
        raise LoginRequired("sign in first")
    return signed.account_id


async def _account(session: AsyncSession, account_id: str) -> Account:
    account = (
        await account_service.get_account(session, account_id)
        if ACCOUNT_ID.fullmatch(account_id)
        else None
    )
    if account is None:
        raise NotFoundException("no such account")
    return account


async def _set_disabled(
    request: Request[Any, Any, Any],
    web: WebContext,
    service: account_service.AccountService,
    account_id: str,
    *,
    disabled: bool,
) -> Template | Redirect:
    async with unit_of_work(web, write=True) as session:
        account = await _account(session, account_id)
        try:
            await admin_queries.set_disabled(
                service, session, account.id, disabled, actor=_admin_id(request)
            )
        except admin_queries.SelfDisable:
            return await _user_page(
                session, request, account, errors={"disable": "You cannot disable yourself."}
            )
    log.info("admin_set_disabled", account_id=account.id, disabled=disabled)
    flash(request, "The account is disabled." if disabled else "The account is enabled.", "success")
    return see_other(f"/admin/users/{account.id}")


async def _user_page(
    session: AsyncSession,
    request: Request[Any, Any, Any],
    account: Account,
    *,
    errors: dict[str, str] | None = None,
) -> Template:
    balance = await credits.balance(session, account.id)
    entries = await credits.history(session, account.id, limit=ENTRIES_SHOWN)
    jobs = await admin_queries.all_jobs_page(session, limit=ENTRIES_SHOWN, owner=account.id)
    actors = {entry.actor for entry in entries.items if ACCOUNT_ID.fullmatch(entry.actor)}
    actor_emails = await admin_queries.emails_of(session, sorted(actors))
    return _page(
        "user.html",
        {
            "account": account,
            "balance": balance,
            "entries": entries,
            "actor_emails": actor_emails,
            "jobs": [_job_row(entry) for entry in jobs.items],
            "jobs_total": jobs.total,
            "is_self": account.id == _admin_id(request),
            "nonce_field": NONCE_FIELD,
            "nonce": new_nonce(),
            "errors": errors or {},
        },
        status_code=HTTP_400_BAD_REQUEST if errors else HTTP_200_OK,
    )


def _job_row(entry: admin_queries.OwnedJob) -> dict[str, Any]:
    job = entry.job
    return {
        "id": job.id,
        "owner": job.owner,
        "owner_email": entry.owner_email,
        "filename": job.file.filename,
        "created_at": job.created_at,
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "cost": job.cost,
        "label": status_label(job.status),
        "status": job.status.value,
        "percent": progress_percent(job.status, job.rows_done, job.rows_total),
        "error": job.error,
    }


def _page(name: str, context: dict[str, Any], *, status_code: int = HTTP_200_OK) -> Template:
    return Template(
        f"admin/{name}", context=context, status_code=status_code, headers=dict(NO_STORE)
    )
