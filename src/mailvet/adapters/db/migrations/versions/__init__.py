"""Alembic revisions of the job database, oldest first (Alembic skips this file)."""
