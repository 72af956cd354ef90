"""The account page of a signed-in user (/app/account): names, newsletter, picture, the
Google connection, links to the password and two-factor pages, and deleting the account.
(The credits and billing page, /app/billing, is web/billing/'s.)

`account_router(ports)` is the area for `create_app(..., areas=[...])`, with the same
`AuthPorts` as the sign-in pages (web/auth/ports.py: the accounts service and whether
Google sign-in is set up); the object storage comes from the app's `storage` dependency.
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from mailvet.web.account.controllers import AccountController
from mailvet.web.auth.ports import AuthPorts

__all__ = ["account_router"]


def account_router(ports: AuthPorts) -> Router:
    def provide_auth() -> AuthPorts:
        return ports

    return Router(
        path="/",
        route_handlers=[AccountController],
        dependencies={"auth": Provide(provide_auth, sync_to_thread=False)},
        include_in_schema=False,
    )
