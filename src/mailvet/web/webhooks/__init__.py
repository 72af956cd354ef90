"""The webhooks page of a signed-in account (/app/webhooks): the default URL its jobs'
completion events go to, the signing secret (shown, rotated), and the latest deliveries
with each attempt. The events are queued and sent by services/webhooks.py.

`webhooks_router(ports, resolver)` is the area for `create_app(..., areas=[...])`
(web/site.py), with the same `AuthPorts` as the sign-in pages (its accounts service
re-authenticates) and the resolver that checks a URL's host (the pipeline's DNS resolver).
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from mailvet.services.webhooks import HostResolver
from mailvet.web.auth.ports import AuthPorts
from mailvet.web.webhooks.controller import WebhooksController

__all__ = ["webhooks_router"]


def webhooks_router(ports: AuthPorts, resolver: HostResolver) -> Router:
    def provide_auth() -> AuthPorts:
        return ports

    def provide_resolver() -> HostResolver:
        return resolver

    return Router(
        path="/",
        route_handlers=[WebhooksController],
        dependencies={
            "auth": Provide(provide_auth, sync_to_thread=False),
            "resolver": Provide(provide_resolver, sync_to_thread=False),
        },
        include_in_schema=False,
    )
