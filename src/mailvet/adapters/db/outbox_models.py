"""ORM models of the mail outbox (durable, retried); used by services/outbox.py.

Registered on `models.metadata` (imported by adapters/db/schema.py, which the migrations and
`Database.create_all` read).
"""

from __future__ import annotations
