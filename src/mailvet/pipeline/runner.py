"""Run the back-end services in this process, over whatever bus the deps carry.

`ROLES` names the five services; `Pipeline(deps, roles)` subscribes the chosen ones, so
`mailvet run worker` and `mailvet validate` (all of them) share this one wiring.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import structlog

from mailvet.bootstrap import Deps
from mailvet.domain.messages import Message
from mailvet.domain.ports import Handler, MessageBus, VerdictJournal
from mailvet.pipeline import queues
from mailvet.pipeline.intake import Intake
from mailvet.pipeline.orchestrator import Orchestrator
from mailvet.pipeline.publisher import Publisher
from mailvet.pipeline.resultgen import ResultGenerator, fail_job
from mailvet.pipeline.worker import Worker
from mailvet.tabular import XlsxLimits

log = structlog.get_logger(__name__)

ROLES = ("intake", "publisher", "orchestrator", "worker", "resultgen")


def describe_flows(bus: MessageBus) -> None:
    """Subscribe no-op handlers for every service queue (for documents such as AsyncAPI)."""

    async def nothing(message: Message) -> None:
        return None

    names = (
        queues.INTAKE,
        queues.PUBLISHER,
        queues.ORCHESTRATOR,
        queues.WORK,
        queues.WORK_CPU,
        queues.RESULTS,
    )
    for queue in (*names, queues.rows_queue("{job_id}")):  # one row queue per job
        bus.subscribe(queue, nothing)


class Pipeline:
    """The chosen services subscribed on `deps.bus`.

    `resume`: on start, take up the jobs the database holds as active (a service restarting
    in a cluster, or `run all`). `mailvet validate` starts with resume=False: it runs only
    the job it submits, and never adopts another process's jobs on the same database.
    """

    def __init__(self, deps: Deps, roles: Iterable[str] = ROLES, *, resume: bool = True) -> None:
        self.deps = deps
        self.roles = tuple(roles)
        self.resume = resume
        self._orchestrator: Orchestrator | None = None
        self._resultgen: ResultGenerator | None = None
        self._worker: Worker | None = None
        bus, jobs, storage = deps.bus, deps.jobs, deps.storage
        bus.on_give_up = self._give_up
        engine_settings = deps.settings.engine
        scratch = deps.settings.scratch_dir  # files in transit stay under the data folder
        if "intake" in self.roles:
            # the pool's workers start while intake reads a big syntax-only file (same process)
            warm = getattr(deps.syntax_pool, "warm", None) if "worker" in self.roles else None
            intake = Intake(
                jobs,
                storage,
                bus,
                chunk_size=engine_settings.chunk_size,
                syntax_chunk_size=engine_settings.syntax_chunk_size,
                warm_syntax_pool=warm,
                xlsx_limits=XlsxLimits(
                    max_cell_bytes=engine_settings.max_cell_bytes,
                    max_expanded_bytes=engine_settings.max_xlsx_expanded_bytes,
                ),
                scratch=scratch,
                ledger=deps.ledger,
                events=deps.events,
            )
            bus.subscribe(queues.INTAKE, cast(Handler, intake.handle), concurrency=2)
        if "publisher" in self.roles:
            publisher = Publisher(jobs, storage, bus, scratch=scratch)
            # several at once, so a big file being published does not hold back a small one
            bus.subscribe(queues.PUBLISHER, cast(Handler, publisher.handle), concurrency=4)
        if "orchestrator" in self.roles:
            self._orchestrator = Orchestrator(bus, jobs, backlog=engine_settings.dispatch_backlog)
            bus.subscribe(queues.ORCHESTRATOR, self._orchestrator.handle)
        if "worker" in self.roles:
            self._worker = worker = Worker(
                deps.engine,
                bus,
                pool=deps.syntax_pool,
                concurrency=engine_settings.worker_concurrency,
                journal=deps.jobs if isinstance(deps.jobs, VerdictJournal) else None,
            )
            bus.subscribe(queues.WORK, cast(Handler, worker.handle), concurrency=worker.in_flight)
            # syntax chunks: no more taken than there are CPU slots to run them
            bus.subscribe(
                queues.WORK_CPU, cast(Handler, worker.handle), concurrency=worker.cpu_slots
            )
        if "resultgen" in self.roles:
            self._resultgen = ResultGenerator(
                jobs, storage, scratch=scratch, ledger=deps.ledger, events=deps.events
            )
            bus.subscribe(queues.RESULTS, self._resultgen.handle, concurrency=4)

    async def _give_up(self, message: Message, exc: Exception) -> None:
        """The bus dropped a message for good (dead-lettered after its last try, or in
        memory at once): its job cannot finish, so it ends with an error, not a hang."""
        job_id = getattr(message, "job_id", "")
        if not job_id:
            return
        try:
            await fail_job(self.deps.jobs, self.deps.ledger, job_id, exc, self.deps.events)
        except Exception:
            log.exception("fail_job_failed", job_id=job_id)

    async def start(self) -> None:
        await self.deps.bus.start()
        if self._orchestrator is not None:
            await self._orchestrator.start(resume=self.resume)
        if self._resultgen is not None and self.resume:
            await self._resultgen.resume()

    async def stop(self) -> None:
        if self._orchestrator is not None:
            await self._orchestrator.stop()
        await self.deps.bus.stop()
        if self._worker is not None:
            await self._worker.close()  # the handlers are stopped: their last verdicts kept
        if self._resultgen is not None:
            await self._resultgen.stop()
