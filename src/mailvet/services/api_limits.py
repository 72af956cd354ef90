"""The public API's limit per key (MAILVET_API_RATE_LIMIT, default `100/second`), counted
for each key across every web process, without a database write per request: quota leases.

The count of a key's window is a row of `rate_counters` that every replica shares (as the
per-IP limits', services/throttle.py; fixed windows aligned on the epoch,
domain/throttle.py). A process does not count each request there: it takes a *slice* of the
window's quota at once (`take`: one upsert that adds the slice to the count and returns the
new count; the first lease of a new window starts the count afresh), is granted
`min(slice, limit - count before)` of it, and serves that many requests from memory; when
they are spent it takes another slice. Once the shared count has reached the limit the
process refuses the key's requests until the window ends, without asking again, with the
seconds to the window's end (`Throttle.retry_after`, at least 1). A slice is a twentieth of
the limit (`slice_of`: at least 1, at most MAX_SLICE), so a key at 100/second costs one
upsert per 5 requests and a benchmark's high limit one per thousand.

What this guarantees, and what it does not:
- Across replicas the limit is never exceeded: the grants of one window add up to at most
  the limit, whoever took them.
- A replica's unused slice is lost when the window ends: another replica may refuse a little
  early (at most one slice per other replica per window and rate), and requests that one
  rate allows are not handed back to another rate's count when a second rate refuses them.
- Refused requests are not counted (unlike the per-IP limits): a key that is over its limit
  gets its whole quota back in the next window.

Inside one process the admissions are plain arithmetic on the key's windows (no await);
only a lease awaits, under the key's `asyncio.Lock`, so concurrent requests of one key take
one slice between them rather than one each. Several rates (`100/second,5000/hour`) are all
checked; a request is admitted when every one of them has a unit left, and then spends one
of each.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import case
from sqlalchemy.ext.asyncio import AsyncSession

from mailvet.adapters.db.database import Database, dialect_insert
from mailvet.adapters.db.session_models import COUNTER_KEY_LENGTH, RateCounterRow
from mailvet.domain.throttle import Rate, Throttle, seconds_left, window_start

__all__ = ["MAX_SLICE", "KeyLimiter", "counter_key", "granted", "slice_of", "take"]

log = structlog.get_logger(__name__)

SLICE_SHARE = 20  # a lease is this fraction of the limit
MAX_SLICE = 1000
PRUNE_ABOVE = 10_000  # keys remembered before the idle ones are forgotten
COUNTER_PREFIX = "api-key"


def slice_of(limit: int) -> int:
    """How much of a window's quota one lease asks for."""
    return max(1, min(MAX_SLICE, limit // SLICE_SHARE))


def granted(limit: int, count_after: int, taken: int) -> int:
    """What a lease of `taken` that made the shared count `count_after` is granted: what
    was left of the limit before it, at most what it asked for."""
    return max(0, min(taken, limit - (count_after - taken)))


def counter_key(key_id: str, rate: Rate) -> str:
    """The shared counter of a key for one rate (its window length in the name)."""
    return f"{COUNTER_PREFIX}:{key_id}:{rate.window_seconds}"[:COUNTER_KEY_LENGTH]


async def take(session: AsyncSession, key: str, *, amount: int, start: int) -> int:
    """Add `amount` to the counter of `key` in the window that began at `start` (Unix
    seconds) and return its new count; a counter of an older window starts again at
    `amount`, and a lease of a window older than the counter's (a replica whose clock is a
    little behind) is counted in the counter's window, so skew never lets more through. One
    atomic statement in the caller's transaction (not committed here)."""
    row = RateCounterRow
    values = dialect_insert(session, row).values(key=key, window_start=start, count=amount)
    statement = values.on_conflict_do_update(
        index_elements=[row.key],
        set_={
            # every SET reads the row as it was
            "count": case(
                (row.window_start >= values.excluded.window_start, row.count + amount),
                else_=amount,
            ),
            "window_start": case(
                (row.window_start > values.excluded.window_start, row.window_start),
                else_=values.excluded.window_start,
            ),
        },
    ).returning(row.count)
    return int((await session.execute(statement)).scalar_one())


@dataclass
class _Window:
    """One rate's state of one key in this process: the window it is about, the units of
    the leases not spent yet, and whether the shared count has reached the limit."""

    start: int = -1
    left: int = 0
    exhausted: bool = False
    told: bool = False  # the refusal of this window was logged

    def move_to(self, start: int) -> None:
        """On to the window that began at `start` (never back: a request that waited for a
        lease into the next window counts in that one)."""
        if start > self.start:
            self.start, self.left, self.exhausted, self.told = start, 0, False, False


@dataclass
class _Key:
    windows: list[_Window]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class KeyLimiter:
    """The limits `rates` of every key, for one process (one per app: web/api/auth.py);
    the shared counters are in `database`."""

    def __init__(self, database: Database, rates: tuple[Rate, ...]) -> None:
        self.database = database
        self.rates = rates
        self.leases = 0  # upserts made (tests and logs: how often the database was asked)
        self._keys: dict[str, _Key] = {}

    async def admit(self, key_id: str, now: datetime) -> Throttle | None:
        """None when a request of `key_id` at `now` is within every rate (one unit of each
        spent), else the refusal with the longest wait."""
        if not self.rates:
            return None
        state = self._keys.get(key_id)
        if state is None:
            if len(self._keys) >= PRUNE_ABOVE:
                self._prune(now)
            state = self._keys[key_id] = _Key([_Window() for _ in self.rates])
        starts = [window_start(now, rate.window_seconds) for rate in self.rates]
        for window, start in zip(state.windows, starts, strict=True):
            window.move_to(start)
        while True:  # a lease grants a unit or says the window is spent (or it moved on)
            if refused := self._refused(state):
                return self._refusal(key_id, state, refused, now)
            if not self._short(state):
                break
            async with state.lock:  # one lease at a time per key; others wait for it
                await self._lease(key_id, state)
        for window in state.windows:
            window.left -= 1
        return None

    @staticmethod
    def _short(state: _Key) -> bool:
        return any(window.left <= 0 for window in state.windows)

    def _refused(self, state: _Key) -> list[int]:
        """The rates (indexes) with no unit left and none to lease this window."""
        return [i for i, w in enumerate(state.windows) if w.left <= 0 and w.exhausted]

    async def _lease(self, key_id: str, state: _Key) -> None:
        """One slice for each rate of the key that has no unit left (and may have more),
        in one transaction. A grant is kept only if its window is still the key's when the
        answer comes (a request of the next window may have moved it on meanwhile)."""
        wanted = [
            (i, rate, window.start)
            for i, (rate, window) in enumerate(zip(self.rates, state.windows, strict=True))
            if window.left <= 0 and not window.exhausted
        ]
        if not wanted:  # another request's lease came first
            return
        counts: list[tuple[int, Rate, int, int]] = []
        async with self.database.unit_of_work(write=True) as session:
            for i, rate, start in wanted:
                amount = slice_of(rate.limit)
                count = await take(session, counter_key(key_id, rate), amount=amount, start=start)
                counts.append((i, rate, start, count))
        self.leases += 1
        for i, rate, start, count in counts:
            window = state.windows[i]
            if window.start == start:
                window.left += granted(rate.limit, count, slice_of(rate.limit))
                window.exhausted = count >= rate.limit

    def _refusal(self, key_id: str, state: _Key, refused: list[int], now: datetime) -> Throttle:
        waits = {i: seconds_left(now, self.rates[i].window_seconds) for i in refused}
        worst = max(refused, key=lambda i: waits[i])
        window = state.windows[worst]
        if not window.told:  # once per key and window, not once per refused request
            window.told = True
            log.info(
                "api_rate_limited",
                key_id=key_id,
                limit=self.rates[worst].limit,
                window_seconds=self.rates[worst].window_seconds,
                retry_after=waits[worst],
            )
        return Throttle(
            allowed=False,
            count=self.rates[worst].limit,
            limit=self.rates[worst].limit,
            retry_after=waits[worst],
        )

    def _prune(self, now: datetime) -> None:
        """Forget the keys whose windows have all ended (and that no lease is holding)."""
        current = [window_start(now, rate.window_seconds) for rate in self.rates]
        idle = [
            key_id
            for key_id, state in self._keys.items()
            if not state.lock.locked()
            and all(w.start != s for w, s in zip(state.windows, current, strict=True))
        ]
        for key_id in idle:
            del self._keys[key_id]
