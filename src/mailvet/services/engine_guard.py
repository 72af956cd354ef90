"""The validation engine with its own failures told apart: `Guarded(engine)` is a
`single_checks.BatchChecker` whose `check`/`check_many` raise `EngineUnavailable` when the
engine raises instead of giving a verdict (its resolver has no configuration, a bug in a
probe), so that the API answers 503 "try again later" for those, while a failure of the
rest of the request (the database) stays a 500. The credit of such a check is refunded by
services/single_checks.py (a check without a verdict is refunded). The log line names the
error type only, never the address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailvet.domain.verdict import Check, Verdict
from mailvet.logs import logger
from mailvet.services.single_checks import Checker

__all__ = ["EngineUnavailable", "Guarded"]


class EngineUnavailable(Exception):
    """The engine raised instead of giving a verdict (the original API's 'no worker')."""


@dataclass(frozen=True)
class Guarded:
    engine: Checker

    async def check(self, address: str, checks: Check) -> Verdict:
        try:
            return await self.engine.check(address, checks)
        except Exception as exc:
            raise _unavailable(exc) from exc

    async def check_many(self, addresses: Sequence[str], checks: Check) -> list[Verdict]:
        many = getattr(self.engine, "check_many", None)
        try:
            if many is None:
                return [await self.engine.check(address, checks) for address in addresses]
            verdicts: list[Verdict] = await many(addresses, checks)
            return verdicts
        except Exception as exc:
            raise _unavailable(exc) from exc


def _unavailable(exc: Exception) -> EngineUnavailable:
    logger(__name__).warning("engine_failed", error=type(exc).__name__)
    return EngineUnavailable(type(exc).__name__)
