"""`mailvet users ...`: accounts of the web application from the shell.

    mailvet users create EMAIL [--admin] [--confirmed] [--credits N]   (password: one stdin line)
    mailvet users grant EMAIL N --reason TEXT
    mailvet users balance EMAIL

`create` prints only the new account's id and `balance` only the number, so scripts can use
them (`id=$(mailvet users create ... <<< "$pw")`). An account made here starts with exactly
`--credits` (default 0): no sign-up grant. Errors go to stderr: exit 2 for input refused
(a weak password, a malformed address), 1 for an unknown or already used address.

Registered in cli.py with `app.add_typer(users_app, name="users")`. Importing this module
costs Typer only: SQLAlchemy and argon2 are imported inside the commands.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from mailvet.settings import Settings

users_app = typer.Typer(help="Accounts of the web application.", no_args_is_help=True)

EXIT_REFUSED = 1  # no such account, or the address has one already
EXIT_BAD_INPUT = 2
T = TypeVar("T")


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    typer.echo(f"mailvet: error: {message}", err=True)
    raise typer.Exit(code)


@users_app.command("create")
def create(
    email: Annotated[str, typer.Argument(help="The account's address.")],
    admin: Annotated[bool, typer.Option("--admin", help="An administrator.")] = False,
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="The address counts as confirmed.")
    ] = False,
    credits: Annotated[int, typer.Option("--credits", help="Credits to start with.", min=0)] = 0,
) -> None:
    """Create an account; the password is read from stdin (one line). Prints its id."""
    password = _read_password()

    async def make(session: AsyncSession) -> str:
        from argon2 import PasswordHasher

        from mailvet.services.accounts import create_account

        account = await create_account(
            session,
            email=email,
            password=password,
            admin=admin,
            confirmed=confirmed,
            credits=credits,
            hasher=PasswordHasher(),
            now=_now(),
        )
        return account.id

    typer.echo(_in_transaction(make))


@users_app.command("grant")
def grant(
    email: Annotated[str, typer.Argument(help="The account's address.")],
    amount: Annotated[int, typer.Argument(help="Credits to add; to take some away: -- -N")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the ledger).")],
) -> None:
    """Add credits to an account (an administrator's adjustment, with the reason)."""
    if not reason.strip():
        _fail("--reason must say why")
    if amount == 0:
        _fail("the amount must not be 0")

    async def adjust(session: AsyncSession) -> None:
        from mailvet.services import credits as ledger
        from mailvet.services.accounts import CLI_ACTOR

        account_id = await _account_id(session, email)
        short = await ledger.adjust(
            session, account_id, amount, actor=CLI_ACTOR, reason=reason.strip(), now=_now()
        )
        if short is not None:
            _fail(f"cannot take {-amount} credits: the balance is {short.available}", EXIT_REFUSED)

    _in_transaction(adjust)


@users_app.command("balance")
def balance(email: Annotated[str, typer.Argument(help="The account's address.")]) -> None:
    """Print the account's balance (credits it can spend)."""

    async def read(session: AsyncSession) -> int:
        from mailvet.services import credits as ledger

        return (await ledger.balance(session, await _account_id(session, email))).balance

    typer.echo(str(_in_transaction(read)))


def _read_password() -> str:
    """One line of stdin without its line ending; asked for without echo on a terminal."""
    if sys.stdin is None:
        _fail("the password is read from stdin")
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("Password: ")
    line = sys.stdin.readline()
    if not line:
        _fail("no password on stdin (one line)")
    return line.removesuffix("\n").removesuffix("\r")


async def _account_id(session: AsyncSession, email: str) -> str:
    from mailvet.services.accounts import find_account

    account = await find_account(session, email)
    if account is None:
        _fail("there is no account with this address", EXIT_REFUSED)
    return account.id


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _settings() -> Settings:
    from mailvet.logs import configure_logging
    from mailvet.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail(str(exc))
    configure_logging(settings.log_level or "warning", bool(settings.log_json))
    return settings


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction on the configured database (the embedded SQLite file
    is created and migrated as every command does; another must be migrated already)."""
    import asyncio

    from mailvet.services.accounts import AccountError

    settings = _settings()

    async def main() -> T:
        from mailvet.adapters.db.database import make_database
        from mailvet.bootstrap import prepare_schema

        await prepare_schema(settings.database)
        database = make_database(settings.database)
        try:
            async with database.session_maker() as session, session.begin():
                return await work(session)
        finally:
            await database.dispose()

    from mailvet.settings import SettingsError

    try:
        return asyncio.run(main())
    except AccountError as exc:
        from mailvet.services.accounts import AccountExists, NoSuchAccount

        refused = isinstance(exc, AccountExists | NoSuchAccount)
        _fail(exc.message, EXIT_REFUSED if refused else EXIT_BAD_INPUT)
    except SettingsError as exc:
        _fail(str(exc))
