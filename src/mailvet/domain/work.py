"""Which job the code running now works for, without passing it through every port.

The worker sets `current_job` around a chunk; asyncio tasks inherit it, so the SMTP prober
can serve the recipients queued for one server round-robin across jobs: a small job's
addresses do not wait behind the thousands a big job queued on the same server.
"""

from __future__ import annotations

from contextvars import ContextVar

current_job: ContextVar[str] = ContextVar("mailvet_current_job", default="")
