"""The names of the bus queues between the services."""

from __future__ import annotations

INTAKE = "intake"
PUBLISHER = "publisher"
ORCHESTRATOR = "orchestrator"
WORK = "work"
RESULTS = "results"


def rows_queue(job_id: str) -> str:
    """The per-job queue the publisher fills and the orchestrator drains."""
    return f"rows.{job_id}"
