"""Lists: the signed-in area under /app (pages.py: dashboard, new list with its preview,
the live job page over Server-Sent Events, downloads of the result and its segments) and
the anonymous JSON job API of the app without accounts (controller.py, /api/jobs)."""

from mailvet.web.jobs.controller import JobController, jobs_router

__all__ = ["JobController", "jobs_router"]
