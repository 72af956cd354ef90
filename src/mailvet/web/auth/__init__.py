"""Accounts in the browser: sign-up, confirmation, sign-in (password, TOTP or a recovery
code, Google), sign-out, password reset, and the account's two-factor and password pages.

`auth_router(ports)` is the area's router for `create_app(..., areas=[...])`; `ports` come
from `build_auth_ports(web, storage=deps.storage)` (web/auth/ports.py). Register
`ports.aclose` as an `on_shutdown` hook of the app.
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from mailvet.web.auth.account_pages import PasswordSettingsController, TwoFactorController
from mailvet.web.auth.controllers import LoginController, PasswordResetController, SignupController
from mailvet.web.auth.google import GoogleController
from mailvet.web.auth.ports import AuthPorts, build_auth_ports

__all__ = ["AuthPorts", "auth_router", "build_auth_ports"]


def auth_router(ports: AuthPorts) -> Router:
    def provide_auth() -> AuthPorts:
        return ports

    return Router(
        path="/",
        route_handlers=[
            SignupController,
            LoginController,
            PasswordResetController,
            GoogleController,
            TwoFactorController,
            PasswordSettingsController,
        ],
        dependencies={"auth": Provide(provide_auth, sync_to_thread=False)},
        include_in_schema=False,
    )
