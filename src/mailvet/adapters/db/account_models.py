"""ORM models of accounts: accounts, e-mailed codes, recovery codes, password resets.

Used by services/accounts.py.

Registered on `models.metadata` (imported by adapters/db/schema.py, which the migrations and
`Database.create_all` read).
"""

from __future__ import annotations
