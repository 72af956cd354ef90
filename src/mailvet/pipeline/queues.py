"""The names of the bus queues between the services."""

from __future__ import annotations

INTAKE = "intake"
PUBLISHER = "publisher"
ORCHESTRATOR = "orchestrator"
WORK = "work"  # network chunks (DNS, SMTP): many in progress per worker
# syntax-only chunks: taken off the bus only as fast as the workers' CPU slots free up, so a
# 1M-row file does not sit in a worker's memory waiting for a slot
WORK_CPU = "work_cpu"
RESULTS = "results"


def rows_queue(job_id: str) -> str:
    """The per-job queue the publisher fills and the orchestrator drains."""
    return f"rows.{job_id}"
