"""The ORM models: the only place that knows table layouts (the migrations follow them).

Plain SQLAlchemy (no framework base class): importing the models costs SQLAlchemy alone.
The naming convention gives the constraint and index names the migrations create
(`pk_jobs`, `fk_job_chunks_job_id_jobs`, `ix_jobs_owner`).
"""

from __future__ import annotations

import datetime

from sqlalchemy import (
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from mailvet.clock import utc_now

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime.datetime]):
    """`DateTime(timezone=True)` that stores UTC and always reads back an aware datetime
    (SQLite keeps no zone: its values come back naive, and are UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime.datetime]:
        return datetime.datetime

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise TypeError("tzinfo is required")
        return value.astimezone(datetime.UTC)

    def process_result_value(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value


class Base(DeclarativeBase):
    metadata = metadata


class JobRow(Base):
    """A validation job; `created_at`/`updated_at` are UTC and set by the repository on write."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_created_at", "created_at"),
        # an account's jobs newest first (the dashboard's page): found and ordered by the index
        Index("ix_jobs_owner_created_at", "owner", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # uuid4 hex, made by the caller
    filename: Mapped[str] = mapped_column(String(1024))
    email_column: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    sheet: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    result_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    checks: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(String, default="")
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    layout: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    owner: Mapped[str] = mapped_column(String(255), default="")  # ix_jobs_owner_created_at
    # credits (revision 0005): credits reserved (the distinct valid addresses), and the
    # result's counts per status and reason (domain.job.JobCounts as JSON) once completed
    cost: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    counts: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the header row chosen on the preview (FileInfo.header_row); None: detected
    header_row: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime(), default=utc_now)
    updated_at: Mapped[datetime.datetime] = mapped_column(
        UtcDateTime(), default=utc_now, onupdate=utc_now
    )


class JobChunkRow(Base):
    """One row per chunk whose results are stored: the key of idempotent progress."""

    __tablename__ = "job_chunks"

    job_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    chunk_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rows: Mapped[int] = mapped_column(Integer)


class JobVerdictRow(Base):
    """A verdict reached for one row of a job, kept until its chunk's result is stored (so a
    chunk delivered again after its worker died redoes only the rows it had not reached)."""

    __tablename__ = "job_verdicts"

    job_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    row: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    verdict: Mapped[bytes] = mapped_column(LargeBinary)
