"""The administrators' pages (/admin, role admin): users (search, disable or enable, grant
or remove credits with a reason) and every job with its state.

`admin_router(ports)` is the area for `create_app(..., areas=[...])`, with the same
`AuthPorts` as the sign-in pages (web/auth/ports.py: the accounts service).
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from mailvet.web.admin.controllers import AdminController
from mailvet.web.auth.ports import AuthPorts

__all__ = ["admin_router"]


def admin_router(ports: AuthPorts) -> Router:
    def provide_auth() -> AuthPorts:
        return ports

    return Router(
        path="/",
        route_handlers=[AdminController],
        dependencies={"auth": Provide(provide_auth, sync_to_thread=False)},
        include_in_schema=False,
    )
