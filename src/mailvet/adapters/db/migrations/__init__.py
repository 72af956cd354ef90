"""Alembic script location for the job database (see `mailvet.adapters.db.migrate`)."""
