"""Where a job's files live in object storage (the layout of the original system)."""

from __future__ import annotations

UPLOADED = "validation/uploaded/"
IN_PROGRESS = "validation/in-progress/"
COMPLETED = "validation/completed/"


def uploaded(job_id: str) -> str:
    return f"{UPLOADED}{job_id}"


def in_progress_input(job_id: str) -> str:
    return f"{IN_PROGRESS}{job_id}/input"


def chunk_results(job_id: str, chunk_id: int) -> str:
    return f"{IN_PROGRESS}{job_id}/chunks/{chunk_id:08d}"


def result_header(job_id: str) -> str:
    """The rendered first part of a CSV/TXT result (preamble and header with our columns)."""
    return f"{IN_PROGRESS}{job_id}/result-header"


def job_work(job_id: str) -> str:
    return f"{IN_PROGRESS}{job_id}/"


def completed(job_id: str) -> str:
    return f"{COMPLETED}{job_id}"


def summary(job_id: str) -> str:
    return f"{COMPLETED}{job_id}.summary.json"


def job_prefixes(job_id: str) -> tuple[str, ...]:
    """Every prefix a job's files live under (upload, work files, result and summary)."""
    return (uploaded(job_id), job_work(job_id), completed(job_id))
