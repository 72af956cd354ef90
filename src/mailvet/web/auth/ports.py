"""What the sign-in pages need beyond the shell's `WebContext`: `AuthPorts`.

`build_auth_ports(web, storage=...)` makes them once per process from the settings: the
accounts service (services/accounts.py) on the context's hasher, secret key and clock, the
captcha (reCAPTCHA v2 when its keys are set, else none) and the Google sign-in client (None
when no client id is set: /auth/google answers 404). Tests pass their own pieces (a memory
captcha, a client of the fake provider). `aclose()` closes the HTTP clients of the captcha
and of Google sign-in; register it as an `on_shutdown` hook of the app, so it runs in the
event loop that used them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from litestar.di import NamedDependency
from litestar.params import SkipValidation

if TYPE_CHECKING:
    from mailvet.domain.identity import Captcha, OidcClient
    from mailvet.domain.ports import ObjectStorage
    from mailvet.services.accounts import AccountService
    from mailvet.web.context import WebContext


@dataclass
class AuthPorts:
    accounts: AccountService
    captcha: Captcha
    oidc: OidcClient | None = None

    async def aclose(self) -> None:
        await self.captcha.aclose()
        if self.oidc is not None:
            await self.oidc.aclose()


def build_auth_ports(
    web: WebContext,
    *,
    storage: ObjectStorage | None = None,
    captcha: Captcha | None = None,
    oidc: OidcClient | None = None,
) -> AuthPorts:
    """The ports of `web`'s settings, or the pieces given. `storage` is the object storage
    (account deletion removes the account's files there)."""
    from mailvet.adapters.captcha import build_captcha
    from mailvet.adapters.oidc import build_oidc
    from mailvet.services.accounts import AccountKeys, AccountService

    accounts = AccountService(
        hasher=web.hasher,
        keys=AccountKeys.from_secret(web.secret_key),
        public_url=web.settings.web.public_url,
        free_credits=web.settings.web.free_credits,
        storage=storage,
        clock=web.clock,
    )
    return AuthPorts(
        accounts=accounts,
        captcha=captcha if captcha is not None else build_captcha(web.settings.web),
        oidc=oidc if oidc is not None else build_oidc(web.settings.web),
    )


# the handler parameter annotation (the object given to auth_router, not validated)
Auth = NamedDependency[SkipValidation[AuthPorts]]
