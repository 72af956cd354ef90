"""`mailvet webhooks ...`: an account's completion webhooks from the shell.

    mailvet webhooks secret EMAIL

`secret` prints the account's signing secret alone (`secret=$(mailvet webhooks secret ...)`),
made now if it has none: the key, exactly as printed, of the HMAC in each delivery's
`Mailvet-Signature` header, the same one /app/webhooks shows. Errors go to stderr as
`mailvet: error: ...`, as `mailvet users` does (cli_users.py, whose helpers this uses):
exit 1 for an unknown address.

Registered in cli.py with `app.add_typer(webhooks_app, name="webhooks")`. Importing this
module costs Typer only: SQLAlchemy is imported inside the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mailvet.cli_users import _account_id, _in_transaction, _now

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

webhooks_app = typer.Typer(help="Completion webhooks of the accounts.", no_args_is_help=True)


@webhooks_app.command("secret")
def secret(email: Annotated[str, typer.Argument(help="The account's address.")]) -> None:
    """Print the account's webhook signing secret (made if it has none)."""

    async def get(session: AsyncSession) -> str:
        from mailvet.services import webhooks

        return await webhooks.secret(session, await _account_id(session, email), now=_now())

    typer.echo(_in_transaction(get))


@webhooks_app.callback()
def _group() -> None:
    """Completion webhooks of the accounts."""
