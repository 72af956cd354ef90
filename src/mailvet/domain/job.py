"""A bulk validation job and its state machine (the states of the original system)."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from mailvet.domain.verdict import Check


class JobStatus(enum.StrEnum):
    PENDING_START = "pending_start"
    FILE_ACCEPTED = "file_accepted"
    FILE_QUEUED = "file_queued"
    IN_PROGRESS = "file_validation_in_progress"
    COMPLETED = "file_completed"
    ERROR_FILE = "error_df"  # unreadable file, no email column, uploaded file missing
    ERROR_INTERNAL = "error_internal"  # a step failed, or the run that owned the job died
    # the owner's credits do not cover the list's cost (the shortfall in `error`)
    ERROR_INSUFFICIENT_CREDITS = "error_insufficient_credits"

    @property
    def is_error(self) -> bool:
        return self.value.startswith("error_")

    @property
    def is_final(self) -> bool:
        return self is JobStatus.COMPLETED or self.is_error


_NEXT: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING_START: frozenset({JobStatus.FILE_ACCEPTED}),
    JobStatus.FILE_ACCEPTED: frozenset({JobStatus.FILE_QUEUED}),
    # an empty list goes straight on: queued with nothing to wait for
    JobStatus.FILE_QUEUED: frozenset({JobStatus.IN_PROGRESS}),
    JobStatus.IN_PROGRESS: frozenset({JobStatus.COMPLETED}),
}


# between intake and completion: the services resume these after a restart
ACTIVE_STATUSES = frozenset({JobStatus.FILE_ACCEPTED, JobStatus.FILE_QUEUED, JobStatus.IN_PROGRESS})


class IllegalTransition(Exception):
    pass


def check_transition(current: JobStatus, new: JobStatus) -> None:
    """Raise unless `current -> new` is allowed. Any non-final state may fail."""
    if current is new:
        return
    if new.is_error and not current.is_final:
        return
    if new not in _NEXT.get(current, frozenset()):
        raise IllegalTransition(f"{current} -> {new}")


class FileInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the customer sent: original name and the options chosen."""

    filename: str
    email_column: str | None = None
    checks: Check = Check.SMTP
    sheet: str | None = None  # the XLSX sheet to read (None: the column search picks one)
    # the result's kind when the caller wants one ("csv", "xlsx"); None: that of the input
    result_kind: str | None = None
    # the header's record number chosen on the preview (1-based, 0: none); None: detected
    header_row: int | None = None


class JobCounts(msgspec.Struct, frozen=True, kw_only=True):
    """A completed job's rows per status and per reason, and the credits it was charged."""

    statuses: dict[str, int] = {}
    reasons: dict[str, int] = {}
    charged: int = 0


class Job(msgspec.Struct, kw_only=True):
    id: str
    file: FileInfo
    status: JobStatus = JobStatus.PENDING_START
    error: str = ""
    rows_total: int = 0
    rows_done: int = 0
    chunks_total: int = 0
    layout: bytes = b""  # the detected file layout (msgpack), opaque to the domain
    owner: str = ""
    # the credits reserved: its distinct syntactically valid addresses (counted when the job
    # pays); the result's counts once completed
    cost: int = 0
    counts: JobCounts | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
