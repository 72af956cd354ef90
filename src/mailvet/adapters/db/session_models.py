"""ORM models of web sessions and shared rate-limit counters.

Used by web/sessions.py and web/throttle.py.

Registered on `models.metadata` (imported by adapters/db/schema.py, which the migrations and
`Database.create_all` read).
"""

from __future__ import annotations
