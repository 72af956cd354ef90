"""Browser sessions: Litestar's SessionMiddleware over our own backend on `web_sessions`.

Why our own backend and not `ServerSideSessionConfig` with a store: a Litestar store keeps
opaque bytes under a key, so it cannot end "every session of account X" (sign out
everywhere, password reset) without scanning them all, and its stock backend adopts any id
a client sends (session fixation) and writes an empty record for every anonymous request.
This backend (services/sessions.py does the SQL):

- the cookie `mailvet_session` holds a random token; the table only its SHA-256;
- a token the table does not know (forged, expired, ended) is never adopted: its data is
  empty, and if the request stores something it gets a fresh token; if not, the cookie is
  cleared;
- `sign_in` and `sign_out` move the data to a fresh token and delete the old row;
- an anonymous visitor with nothing in the session costs no write and gets no cookie;
- the cookie is HttpOnly, SameSite=Lax, and Secure when MAILVET_PUBLIC_URL is https;
- a live session is written back only when its data changed, or every TOUCH_EVERY to
  record when it was last seen.

Handlers read and write `request.session` (a dict of JSON values: flash messages,
`pending_2fa_account`, OAuth state/nonce/verifier, ...). Who is signed in is not in that
dict: `request_account(request)`; `sign_in(request, account_id, authenticated_at=...)`,
`sign_out(request)`. Guards: `requires_login` (anonymous: pages redirect to /login, JSON
gets 401), `requires_admin` (403 unless the account's role is admin).

/api/* is outside the sessions (API keys, no cookie): a browser's cookie can never make a
cross-site API call count as signed in, which is why /api may skip CSRF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.session.base import (
    BaseBackendConfig,
    BaseSessionBackend,
    SessionMiddleware,
)

from mailvet.services import sessions as stored_sessions
from mailvet.services.accounts import get_account

if TYPE_CHECKING:
    from litestar.handlers.base import BaseRouteHandler
    from litestar.types import Message, Scopes, ScopeSession

    from mailvet.domain.accounts import Account
    from mailvet.web.context import WebContext

SESSION_COOKIE = "mailvet_session"
TOUCH_EVERY = timedelta(minutes=5)
REAUTH_WITHIN = timedelta(minutes=10)
FLASH_KEY = "_flash"
_STATE_KEY = "mailvet_session"
# outside the sessions: no cookie is read or set there
SESSION_EXCLUDE = ["^/static/", "^/health$", "^/api/", "^/billing/stripe/webhook$", "^/schema"]


class SignedIn(msgspec.Struct, frozen=True):
    account_id: str
    authenticated_at: datetime | None


class LoginRequired(NotAuthorizedException):
    """Raised by `requires_login`: pages redirect to /login (web/errors.py), JSON gets 401."""


@dataclass
class _SessionState:
    """What the backend knows about this request's session, beside its data."""

    sent_cookie: bool = False
    stored: stored_sessions.StoredSession | None = None
    account_id: str | None = None
    authenticated_at: datetime | None = None
    rotate: bool = False  # sign-in or sign-out: a fresh token, the old row deleted


@dataclass
class SessionCookieConfig(BaseBackendConfig["DatabaseSessionBackend"]):
    key: str = SESSION_COOKIE
    max_age: int = 14 * 24 * 3600
    path: str = "/"
    domain: str | None = None
    secure: bool = False
    httponly: bool = True
    samesite: Literal["lax", "strict", "none"] = "lax"
    exclude: str | list[str] | None = field(default_factory=lambda: list(SESSION_EXCLUDE))
    exclude_opt_key: str = "skip_session"
    scopes: Scopes = field(default_factory=lambda: {ScopeType.HTTP})


class DatabaseSessionBackend(BaseSessionBackend[SessionCookieConfig]):
    def __init__(self, config: SessionCookieConfig, context: WebContext) -> None:
        super().__init__(config)
        self.context = context

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
        state = _state_of(connection.scope)
        return state.stored.token_hash if state is not None and state.stored else None

    async def load_from_connection(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> dict[str, Any]:
        token = connection.cookies.get(self.config.key)
        state = _SessionState(sent_cookie=token is not None)
        connection.scope["state"][_STATE_KEY] = state
        if not token:
            return {}
        async with self.context.database.session_maker() as session:
            stored = await stored_sessions.load(
                session, stored_sessions.hash_token(token), now=self.context.clock()
            )
        if stored is None:
            return {}  # unknown, ended or expired: never adopted
        state.stored = stored
        state.account_id = stored.account_id
        state.authenticated_at = stored.authenticated_at
        return dict(stored.data)

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        state = _state_of(connection.scope)
        if state is None:
            return
        data = dict(scope_session) if isinstance(scope_session, dict) else {}
        now = self.context.clock()
        max_age = self.context.settings.web.session_max_age
        stored = state.stored
        token: str | None = None  # a new cookie to set
        clear = False
        if stored is None and not data and not state.rotate:
            if state.sent_cookie:  # an unknown token, and nothing to keep: drop it
                self._set_cookie(message, "", 0)
            return
        if not _writes(state, data, now):
            return
        async with self.context.database.unit_of_work(write=True) as session:
            if state.rotate:
                if state.account_id is None and not data:
                    if stored is not None:
                        await stored_sessions.end(session, stored.token_hash)
                    clear = state.sent_cookie
                else:
                    token, _ = await stored_sessions.rotate(
                        session,
                        stored.token_hash if stored is not None else None,
                        data=data,
                        account_id=state.account_id,
                        authenticated_at=state.authenticated_at,
                        now=now,
                        max_age=max_age,
                    )
            elif stored is not None:
                if not data and stored.account_id is None:
                    await stored_sessions.end(session, stored.token_hash)
                    clear = True
                elif data != stored.data or now - stored.last_seen_at >= TOUCH_EVERY:
                    # False when it was ended meanwhile (sign out everywhere, or a sign-in
                    # of the same browser rotated it): it stays ended. The cookie is left
                    # alone: clearing it here could undo that sign-in's new cookie; an
                    # unknown token is cleared on its next request anyway.
                    await stored_sessions.save(session, stored.token_hash, data=data, now=now)
            elif data:
                token, _ = await stored_sessions.create(
                    session,
                    data=data,
                    account_id=None,
                    authenticated_at=None,
                    now=now,
                    max_age=max_age,
                )
        if token is not None:
            self._set_cookie(message, token, max_age)
        elif clear:
            self._set_cookie(message, "", 0)

    def _set_cookie(self, message: Message, value: str, max_age: int) -> None:
        cookie = Cookie(
            key=self.config.key,
            value=value,
            max_age=max_age,
            expires=None if max_age else 0,
            path=self.config.path,
            domain=self.config.domain,
            secure=self.config.secure,
            httponly=self.config.httponly,
            samesite=self.config.samesite,
        )
        MutableScopeHeaders.from_message(message).add("set-cookie", cookie.to_header(header=""))


def _writes(state: _SessionState, data: dict[str, Any], now: datetime) -> bool:
    """Whether storing this request's session touches the database at all."""
    stored = state.stored
    if state.rotate or stored is None:
        return True
    if not data and stored.account_id is None:
        return True  # emptied: the row goes
    return data != stored.data or now - stored.last_seen_at >= TOUCH_EVERY


def session_middleware(context: WebContext) -> DefineMiddleware:
    config = SessionCookieConfig(max_age=context.settings.web.session_max_age, secure=context.https)
    return DefineMiddleware(SessionMiddleware, backend=DatabaseSessionBackend(config, context))


def _state_of(scope: Any) -> _SessionState | None:
    state = scope.get("state", {}).get(_STATE_KEY)
    return state if isinstance(state, _SessionState) else None


def _require_state(connection: ASGIConnection[Any, Any, Any, Any]) -> _SessionState:
    state = _state_of(connection.scope)
    if state is None:
        raise RuntimeError(f"no session on {connection.scope.get('path')} (excluded path?)")
    return state


# --- the API of the other areas ---------------------------------------------------------


def request_account(connection: ASGIConnection[Any, Any, Any, Any]) -> SignedIn | None:
    """Who is signed in on this request (after a `sign_in` in it: the new account)."""
    state = _state_of(connection.scope)
    if state is None or state.account_id is None:
        return None
    return SignedIn(state.account_id, state.authenticated_at)


def signed_in_id(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The signed-in account's id, behind `requires_login` (LoginRequired without one)."""
    signed = request_account(connection)
    if signed is None:  # requires_login stops it first
        raise LoginRequired("sign in first")
    return signed.account_id


async def signed_in_account(
    connection: ASGIConnection[Any, Any, Any, Any], web: WebContext
) -> Account:
    """The signed-in account of a page behind `requires_login`, as stored now
    (LoginRequired when there is none, or it was deleted meanwhile)."""
    async with web.database.unit_of_work() as session:
        account = await get_account(session, signed_in_id(connection))
    if account is None:  # deleted meanwhile
        raise LoginRequired("sign in first")
    return account


def current_token_hash(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The stored id of this request's session (for `end_all_sessions(except_token_hash=)`)."""
    state = _state_of(connection.scope)
    if state is None or state.stored is None or state.rotate:
        return None
    return state.stored.token_hash


def sign_in(
    connection: ASGIConnection[Any, Any, Any, Any],
    account_id: str,
    *,
    authenticated_at: datetime,
) -> None:
    """Sign `account_id` in: when the response leaves, the session (its data kept) moves to
    a fresh token and the old one is deleted. Also what a re-authentication calls, to
    renew `authenticated_at`."""
    state = _require_state(connection)
    state.account_id = account_id
    state.authenticated_at = authenticated_at
    state.rotate = True


def sign_out(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Sign out: this session's row is deleted and its data dropped (a flash added after
    this call survives, under a fresh token)."""
    state = _require_state(connection)
    state.account_id = None
    state.authenticated_at = None
    state.rotate = True
    connection.scope["session"] = {}


def recently_authenticated(
    connection: ASGIConnection[Any, Any, Any, Any],
    *,
    now: datetime,
    within: timedelta = REAUTH_WITHIN,
) -> bool:
    """The password (or Google) was given within `within`: sensitive changes go ahead
    without asking for it again."""
    signed = request_account(connection)
    return (
        signed is not None
        and signed.authenticated_at is not None
        and now - signed.authenticated_at <= within
    )


def flash(connection: ASGIConnection[Any, Any, Any, Any], text: str, kind: str = "info") -> None:
    """A message for the next page shown (`kind`: info, success, error)."""
    messages = list(connection.session.get(FLASH_KEY, []))
    messages.append({"kind": kind, "text": text})
    connection.session[FLASH_KEY] = messages


def take_flashes(connection: ASGIConnection[Any, Any, Any, Any]) -> list[dict[str, str]]:
    """The pending messages, removed from the session (base.html shows them)."""
    if "session" not in connection.scope or not isinstance(connection.scope["session"], dict):
        return []
    taken = connection.session.pop(FLASH_KEY, [])
    return [m for m in taken if isinstance(m, dict)]


# --- guards ----------------------------------------------------------------------------


def requires_login(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if request_account(connection) is None:
        raise LoginRequired("sign in first")


async def requires_admin(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Signed in, with role admin and not disabled (read from the database each time: a
    demoted admin loses access at once)."""
    signed = request_account(connection)
    if signed is None:
        raise LoginRequired("sign in first")
    from mailvet.services.accounts import get_account

    context: WebContext = connection.app.state["web"]
    async with context.database.session_maker() as session:
        account = await get_account(session, signed.account_id)
    if account is None or account.disabled or not account.is_admin:
        raise PermissionDeniedException("administrators only")
