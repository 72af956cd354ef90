"""The ORM models: the only place that knows table layouts (a migration will follow them)."""

from __future__ import annotations

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.mixins import AuditColumns
from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

metadata = DefaultBase.metadata


class JobRow(DefaultBase, AuditColumns):
    """A validation job; `created_at`/`updated_at` are UTC and set by the repository on write."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # uuid4 hex, made by the caller
    filename: Mapped[str] = mapped_column(String(1024))
    email_column: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    checks: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(String, default="")
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    layout: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    owner: Mapped[str] = mapped_column(String(255), default="", index=True)


class JobChunkRow(DefaultBase):
    """One row per chunk whose results are stored: the key of idempotent progress."""

    __tablename__ = "job_chunks"

    job_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    chunk_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rows: Mapped[int] = mapped_column(Integer)
