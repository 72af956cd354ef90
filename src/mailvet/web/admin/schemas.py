"""The administrators' forms as they arrive (read by hand, web/auth/schemas.py says why)."""

from __future__ import annotations

from typing import Any, Self

import msgspec
from litestar import Request

from mailvet.services.credits import REASON_MAX
from mailvet.web.auth.schemas import Fields

MAX_ADJUSTMENT = 100_000_000


class CreditsForm(msgspec.Struct, frozen=True, kw_only=True):
    """A grant (amount > 0) or a removal (amount < 0) of credits, and why. `amount` is 0
    when the field is not a whole number."""

    amount: int
    reason: str

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        raw = f.text("amount", 16).strip().replace(" ", "").replace("+", "", 1)
        try:
            amount = int(raw) if raw.lstrip("-").isdigit() else 0
        except ValueError:
            amount = 0
        return cls(amount=amount, reason=" ".join(f.text("reason", REASON_MAX).split()))

    def problems(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.amount == 0 or abs(self.amount) > MAX_ADJUSTMENT:
            found["amount"] = (
                "Give a whole number of credits: positive to grant, negative to remove"
                f" (at most {MAX_ADJUSTMENT:,})."
            )
        if not self.reason:
            found["reason"] = "Say why (the ledger keeps it)."
        return found
