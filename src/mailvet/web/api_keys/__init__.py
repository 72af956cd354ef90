"""The API keys page of a signed-in account (/app/api-keys): its keys, a new one (shown
once), revoking one. The keys are checked by the API (web/api/auth.py).

`api_keys_router(ports)` is the area for `create_app(..., areas=[...])` (web/site.py), with
the same `AuthPorts` as the sign-in pages (its accounts service re-authenticates).
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from mailvet.web.api_keys.controller import ApiKeysController
from mailvet.web.auth.ports import AuthPorts

__all__ = ["api_keys_router"]


def api_keys_router(ports: AuthPorts) -> Router:
    def provide_auth() -> AuthPorts:
        return ports

    return Router(
        path="/",
        route_handlers=[ApiKeysController],
        dependencies={"auth": Provide(provide_auth, sync_to_thread=False)},
        include_in_schema=False,
    )
