"""The web role: `create_app(deps)` builds the Litestar app over the composition root's ports.

The app does not own the deps: the caller builds them (`build_deps`), starts and stops the
bus, and closes them. Startup does nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Litestar
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin

from mailvet.bootstrap import Deps
from mailvet.web.deps import provide_ports
from mailvet.web.errors import EXCEPTION_HANDLERS
from mailvet.web.health import health_routes
from mailvet.web.jobs import jobs_router
from mailvet.web.jobs.upload import MAX_UPLOAD_BYTES

__all__ = ["MAX_UPLOAD_BYTES", "create_app"]


def create_app(
    deps: Deps, *, max_upload_bytes: int = MAX_UPLOAD_BYTES, roles: Sequence[str] = ("web",)
) -> Litestar:
    """`roles`: what this process runs (`mailvet run all`: every role), for /health."""
    return Litestar(
        route_handlers=[*health_routes(deps, roles), jobs_router(max_upload_bytes)],
        dependencies=provide_ports(deps),
        exception_handlers=EXCEPTION_HANDLERS,
        # mailvet configures logging itself (structlog); Litestar's default would take over
        # the root logger. Unexpected errors are logged by the 500 handler.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="mailvet", version="1", path="/schema", render_plugins=[ScalarRenderPlugin()]
        ),
    )
