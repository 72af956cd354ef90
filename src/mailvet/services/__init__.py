"""Use cases of the SaaS over ports: accounts, the credit ledger, the mail outbox.

Called by the web controllers and by the CLI (`mailvet users ...`) alike; each takes its ports
and a unit of work (a SQLAlchemy AsyncSession it does not commit) and holds the rules.
"""
