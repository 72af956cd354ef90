"""Rate limits as fixed windows: the arithmetic, no storage.

A rate is "N hits per window of S seconds". Windows are aligned on the Unix epoch (the
window of a moment is `floor(t / S) * S`), so every web replica computes the same window
for the same instant without talking to the others; only the counter is shared
(services/throttle.py keeps it in the database).
"""

from __future__ import annotations

import math
import re
from datetime import datetime

import msgspec

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*$")


class Rate(msgspec.Struct, frozen=True):
    limit: int
    window_seconds: int


class Throttle(msgspec.Struct, frozen=True):
    """The answer for one hit: `count` hits in the current window (this one included);
    `retry_after` whole seconds until the window ends (0 when allowed)."""

    allowed: bool
    count: int
    limit: int
    retry_after: int


def parse_rates(text: str) -> tuple[Rate, ...]:
    """`"200/minute,400/hour"` -> the rates; an empty text means no limit. ValueError on
    anything else (the settings are checked at start-up)."""
    rates = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = _RATE.match(part)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(f"not a rate (N/second|minute|hour|day): {part.strip()!r}")
        rates.append(Rate(int(match.group(1)), UNITS[match.group(2)]))
    return tuple(rates)


def window_start(now: datetime, window_seconds: int) -> int:
    """The Unix second the fixed window holding `now` began."""
    return int(now.timestamp()) // window_seconds * window_seconds


def seconds_left(now: datetime, window_seconds: int) -> int:
    """Whole seconds (at least 1) until the window holding `now` ends: a Retry-After."""
    end = window_start(now, window_seconds) + window_seconds
    return max(1, math.ceil(end - now.timestamp()))


def judge(count: int, limit: int, now: datetime, window_seconds: int) -> Throttle:
    """A hit that makes `count` in its window is allowed while `count <= limit`."""
    allowed = count <= limit
    wait = 0 if allowed else seconds_left(now, window_seconds)
    return Throttle(allowed=allowed, count=count, limit=limit, retry_after=wait)
