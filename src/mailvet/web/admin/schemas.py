"""The administrators' forms as they arrive (read by hand, web/auth/schemas.py says why)."""

from __future__ import annotations

import re
import secrets
from typing import Any, Self

import msgspec
from litestar import Request

from mailvet.domain.credits import adjust_key
from mailvet.services.credits import REASON_MAX
from mailvet.web.auth.schemas import Fields

MAX_ADJUSTMENT = 100_000_000
NONCE = re.compile(r"[0-9a-f]{32}")
NONCE_FIELD = "nonce"


def new_nonce() -> str:
    """The one-time nonce of a credits form: the ledger key of the adjustment it makes."""
    return secrets.token_hex(16)


class CreditsForm(msgspec.Struct, frozen=True, kw_only=True):
    """A grant (amount > 0) or a removal (amount < 0) of credits, and why. `amount` is 0
    when the field is not a whole number. `nonce`: the form's one-time nonce (`new_nonce`,
    made with the page), so that the same form sent twice adjusts once."""

    amount: int
    reason: str
    nonce: str

    @classmethod
    async def read(cls, request: Request[Any, Any, Any]) -> Self:
        f = await Fields.of(request)
        raw = f.text("amount", 16).strip().replace(" ", "").replace("+", "", 1)
        try:
            amount = int(raw) if raw.lstrip("-").isdigit() else 0
        except ValueError:
            amount = 0
        return cls(
            amount=amount,
            reason=" ".join(f.text("reason", REASON_MAX).split()),
            nonce=f.text(NONCE_FIELD, 64),
        )

    def ledger_key(self, account_id: str) -> str:
        return adjust_key(account_id, self.nonce)

    def problems(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.amount == 0 or abs(self.amount) > MAX_ADJUSTMENT:
            found["amount"] = (
                "Give a whole number of credits: positive to grant, negative to remove"
                f" (at most {MAX_ADJUSTMENT:,})."
            )
        if not self.reason:
            found["reason"] = "Say why (the ledger keeps it)."
        if not NONCE.fullmatch(self.nonce):
            found["form"] = "This form has expired: fill it in again below."
        return found
