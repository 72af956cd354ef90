"""ORM models of the credit ledger (append-only entries, reservations); used by services/credits.py.

Registered on `models.metadata` (imported by adapters/db/schema.py, which the migrations and
`Database.create_all` read).
"""

from __future__ import annotations
