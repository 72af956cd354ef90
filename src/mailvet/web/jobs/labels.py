"""What the pages call a job's state (the labels of the original system), its progress and
its downloads (the segments of tabular/segments.py)."""

from __future__ import annotations

from mailvet.domain.job import JobStatus
from mailvet.domain.verdict import Status
from mailvet.tabular.segments import ALL, EXCEPT_UNDELIVERABLE

STATUS_LABELS: dict[JobStatus, str] = {
    JobStatus.PENDING_START: "Pending Start",
    JobStatus.FILE_ACCEPTED: "File Accepted",
    JobStatus.FILE_QUEUED: "File Queued",
    JobStatus.IN_PROGRESS: "Processing",
    JobStatus.COMPLETED: "Completed",
}
FAILED = "Failed"


def status_label(status: JobStatus) -> str:
    """Pending Start, File Accepted, File Queued, Processing, Completed; every error
    state is Failed."""
    return FAILED if status.is_error else STATUS_LABELS[status]


def progress_percent(status: JobStatus, rows_done: int, rows_total: int) -> int:
    """0-100: a completed job is 100 even when it had no rows; a running one never shows
    100 before it is completed (the result is written after the last row)."""
    if status is JobStatus.COMPLETED:
        return 100
    if rows_total <= 0:
        return 0
    return min(99, rows_done * 100 // rows_total)


SEGMENT_TITLES: dict[str, str] = {
    ALL: "Whole result",
    Status.DELIVERABLE.value: "Deliverable only",
    Status.UNDELIVERABLE.value: "Undeliverable only",
    Status.RISKY.value: "Risky",
    Status.UNKNOWN.value: "Unknown",
    EXCEPT_UNDELIVERABLE: "Everything except undeliverable",
}
