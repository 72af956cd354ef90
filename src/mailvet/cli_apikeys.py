"""`mailvet apikeys ...`: the API keys of an account from the shell.

    mailvet apikeys create EMAIL --label L [--expires YYYY-MM-DD|ISO-TIME] [--scope S ...]
    mailvet apikeys list EMAIL [--json]
    mailvet apikeys revoke KEY_ID

`create` prints only the new key (`key=$(mailvet apikeys create ...)`): it is shown this once,
only its digest is kept. `--expires` a date: valid until the end of that day, UTC; an ISO
time: until then (UTC without an offset); a time in the past makes an expired key. No
`--scope`: every scope (validate, jobs:read, jobs:write). `list --json` prints a list of
`{id, label, scopes, created_at, expires_at, last_used_at, revoked}`; without it, one line a
key. `revoke` takes any account's key (the operator's command; the web page only the
signed-in account's).

Errors go to stderr as `mailvet: error: ...`, as `mailvet users` does (cli_users.py, whose
helpers these commands use): exit 2 for input refused (a label, scope, expiry or key id that
cannot be), 1 for an unknown address or key.

Registered in cli.py with `app.add_typer(apikeys_app, name="apikeys")`. Importing this
module costs Typer only: SQLAlchemy is imported inside the commands.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from mailvet.cli_users import EXIT_REFUSED, _account_id, _fail, _in_transaction, _now

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from mailvet.services.api_keys import ApiKeyInfo, CreatedKey

apikeys_app = typer.Typer(help="API keys of the web application's accounts.", no_args_is_help=True)


@apikeys_app.command("create")
def create(
    email: Annotated[str, typer.Argument(help="The account's address.")],
    label: Annotated[str, typer.Option("--label", help="What the key is for.")],
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="YYYY-MM-DD (end of that day, UTC) or an ISO time."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="validate, jobs:read or jobs:write (repeat; default all)."),
    ] = None,
) -> None:
    """Create a key for the account; prints only the key (shown this once)."""
    from mailvet.domain import api_keys as rules

    try:
        clean_label = rules.clean_label(label)
        scopes = rules.parse_scopes(scope or [])
        expires_at = rules.parse_expiry(expires) if expires is not None else None
    except rules.InvalidApiKeyInput as exc:
        _fail(str(exc))

    async def make(session: AsyncSession) -> CreatedKey:
        from mailvet.services import api_keys

        account_id = await _account_id(session, email)
        try:
            return await api_keys.create_key(
                session,
                account_id,
                label=clean_label,
                scopes=[s.value for s in scopes],
                expires_at=expires_at,
                now=_now(),
            )
        except rules.InvalidApiKeyInput as exc:
            _fail(str(exc))

    typer.echo(_in_transaction(make).key)


@apikeys_app.command("list")
def list_(
    email: Annotated[str, typer.Argument(help="The account's address.")],
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list.")] = False,
) -> None:
    """List the account's keys (never their secrets), newest first."""

    async def read(session: AsyncSession) -> list[ApiKeyInfo]:
        from mailvet.services import api_keys

        return await api_keys.list_keys(session, await _account_id(session, email))

    keys = _in_transaction(read)
    if as_json:
        import msgspec

        typer.echo(msgspec.json.encode([_as_json(key) for key in keys]).decode())
        return
    for key in keys:
        typer.echo(
            "\t".join(
                [
                    key.id,
                    key.label,
                    ",".join(key.scopes),
                    f"created {_text(key.created_at)}",
                    f"expires {_text(key.expires_at) or 'never'}",
                    f"last used {_text(key.last_used_at) or 'never'}",
                    f"revoked {_text(key.revoked_at)}" if key.revoked else "active",
                ]
            )
        )


@apikeys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (mv_<KEY_ID>_...).")]) -> None:
    """Revoke a key of any account: every request with it is refused from now on."""
    from mailvet.domain.api_keys import is_key_id

    if not is_key_id(key_id):
        _fail("a key id is 16 letters and digits (the part after mv_)")

    async def revoke_it(session: AsyncSession) -> bool:
        from mailvet.services import api_keys

        return await api_keys.revoke_key(session, key_id, now=_now()) is not None

    if not _in_transaction(revoke_it):
        _fail("there is no key with this id", EXIT_REFUSED)


def _as_json(key: ApiKeyInfo) -> dict[str, object]:
    return {
        "id": key.id,
        "label": key.label,
        "scopes": key.scopes,
        "created_at": _text(key.created_at),
        "expires_at": _text(key.expires_at),
        "last_used_at": _text(key.last_used_at),
        "revoked": key.revoked,
    }


def _text(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z (None stays None)."""
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")
