"""The job API: upload a list, follow its progress, download the result."""

from mailvet.web.jobs.controller import JobController, jobs_router

__all__ = ["JobController", "jobs_router"]
