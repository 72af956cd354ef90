"""The wall clock: aware UTC datetimes. Every use case and repository takes a `Clock` (tests
pass one they move); this module holds the default."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
