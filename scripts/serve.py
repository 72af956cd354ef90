"""`make serve`: the whole SaaS on the embedded default at http://127.0.0.1:8000.

On the embedded default (a SQLite file and local storage in ./.mailvet, the in-process bus),
with mail going to the log (MAILVET_MAILER=log: a confirmation code or a reset link is a
log line, so you can sign up without a mail server). On the first start it creates an
administrator account with a random password and prints that password once; later starts
say the administrator exists and print no password. Then it becomes `mailvet run all`.

Every MAILVET_* variable of the caller's is kept (they win over these defaults), e.g.
`MAILVET_WEB_PORT=8080 make serve`; MAILVET_SERVE_ADMIN sets the administrator's address
(default admin@example.com).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

DEFAULTS = {
    "MAILVET_MAILER": "log",
    "MAILVET_WEB_HOST": "127.0.0.1",
    "MAILVET_WEB_PORT": "8000",
    "MAILVET_LOG_LEVEL": "info",
}
ADMIN_VARIABLE = "MAILVET_SERVE_ADMIN"
DEFAULT_ADMIN = "admin@example.com"


def environment(given: dict[str, str]) -> dict[str, str]:
    """The caller's environment with the defaults of `make serve` under it; the public URL
    follows the port unless it is given."""
    env = {**DEFAULTS, **given}
    env.setdefault("MAILVET_PUBLIC_URL", f"http://127.0.0.1:{env['MAILVET_WEB_PORT']}")
    return env


async def ensure_admin(env: dict[str, str], email: str) -> str | None:
    """Create the administrator when no admin account exists; its password (the only time
    it is known), or None when one existed already."""
    from argon2 import PasswordHasher
    from sqlalchemy import select

    from mailvet.adapters.db.account_models import AccountRow
    from mailvet.adapters.db.database import WRITE_INTENT, make_database
    from mailvet.bootstrap import prepare_schema
    from mailvet.domain.accounts import Role
    from mailvet.services.accounts import create_account
    from mailvet.settings import load_settings

    settings = load_settings(env)
    await prepare_schema(settings.database)
    database = make_database(settings.database)
    try:
        async with database.session_maker() as session, session.begin():
            await session.connection(execution_options=WRITE_INTENT)
            found = await session.execute(
                select(AccountRow.id).where(AccountRow.role == Role.ADMIN.value).limit(1)
            )
            if found.first() is not None:
                return None
            password = secrets.token_urlsafe(15)  # 20 characters, about 120 bits
            await create_account(
                session,
                email=email,
                password=password,
                first_name="Admin",
                admin=True,
                confirmed=True,
                credits=settings.web.free_credits,
                hasher=PasswordHasher(),
                now=datetime.now(UTC),
            )
            return password
    finally:
        await database.dispose()


def main() -> int:
    env = environment(dict(os.environ))
    email = env.get(ADMIN_VARIABLE, DEFAULT_ADMIN)
    password = asyncio.run(ensure_admin(env, email))
    url = env["MAILVET_PUBLIC_URL"]
    if password is None:
        print(f"mailvet: the administrator account exists already ({email} or another).")
    else:
        print(
            "mailvet: created the administrator account\n"
            f"    email:    {email}\n"
            f"    password: {password}\n"
            "  This password is shown only now: keep it, or change it at"
            f" {url}/app/account/password after signing in."
        )
    print(f"mailvet: serving {url} (mail goes to the log); stop with Ctrl-C.", flush=True)
    mailvet = Path(sys.executable).with_name("mailvet")
    command = [str(mailvet), "run", "all"]
    os.execve(command[0], command, env)  # noqa: S606 (our own entry point, no shell)


if __name__ == "__main__":
    sys.exit(main())
