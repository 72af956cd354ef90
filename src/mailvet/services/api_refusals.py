"""The public API's limit on refused keys per client IP: a client that sends REFUSALS_PER_IP
requests with a missing, invalid, revoked or expired key within a minute is answered 429
for the rest of that minute, before its keys are even looked up.

Why: the keyed API is outside the per-IP page limit (web/throttle.py), and its own limit
counts per key (services/api_limits.py), so without this a client could make the web role
read the keys table as fast as it can send made-up keys. The keys themselves cannot be
guessed (domain/api_keys.py: 256 bits of secret); this bounds the cost, not the odds.

Only refusals are counted, so an accepted request costs nothing here but a dictionary
lookup. A refusal is one hit of the shared counter `api-refused:<ip>` (services/throttle.py:
every replica counts the same IP together); once a hit is over the limit the process also
remembers the IP as blocked until the window's end (`RefusalGate.blocked`), and from then
on refuses it from memory without a database write. Another replica learns it at its next
refusal of that IP. IPv6 clients count by their /64, as for the page limits
(web/throttle.client_ip).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mailvet.adapters.db.database import Database, write_intent
from mailvet.logs import logger
from mailvet.services.throttle import Limit

__all__ = ["REFUSALS_PER_IP", "RefusalGate"]

REFUSALS_PER_IP = Limit("api-refused", 60, 60)
PRUNE_ABOVE = 10_000  # blocked IPs remembered before the expired ones are forgotten


class RefusalGate:
    """The refused-key counts of one web process (one per app: web/api/auth.py)."""

    def __init__(self, database: Database, rule: Limit = REFUSALS_PER_IP) -> None:
        self._database = database
        self._rule = rule
        self._blocked: dict[str, datetime] = {}

    def blocked(self, ip: str, now: datetime) -> int | None:
        """Seconds until `ip` may try again (None: it may now), from memory."""
        until = self._blocked.get(ip)
        if until is None:
            return None
        if until <= now:
            del self._blocked[ip]
            return None
        return max(1, int((until - now).total_seconds() + 0.999))

    async def refused(self, ip: str, now: datetime) -> int | None:
        """Count one refusal of `ip`; the seconds it must wait when that was one too many
        (None: under the limit)."""
        async with self._database.session_maker() as session, session.begin():
            await write_intent(session)
            answer = await self._rule.hit(session, ip, now)
        if answer.allowed:
            return None
        wait = max(1, answer.retry_after)
        if len(self._blocked) >= PRUNE_ABOVE:
            self._blocked = {k: v for k, v in self._blocked.items() if v > now}
        if ip not in self._blocked:
            logger(__name__).warning("api_refusals_blocked", count=answer.count, seconds=wait)
        self._blocked[ip] = now + timedelta(seconds=wait)
        return wait
