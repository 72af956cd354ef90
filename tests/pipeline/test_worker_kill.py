"""A worker killed mid-job: the chunks it had in progress are delivered again to a new
worker (a new process: nothing remembered), which re-probes only the rows whose verdicts
were not yet in the job's verdict journal. Measured at the mail world's servers, which
record every RCPT they are sent."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Mapping

import pytest

from mailvet import metrics
from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.db.memory import MemoryJobRepository
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import Deps, build_deps
from mailvet.domain.messages import ChunkDone, RowChunk
from mailvet.domain.ports import MessageBus
from mailvet.domain.verdict import Check
from mailvet.pipeline import queues
from mailvet.pipeline.worker import Worker
from mailvet.settings import load_settings
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

pytestmark = pytest.mark.pipeline

SERVERS = ("127.0.0.90", "127.0.0.91", "127.0.0.92")
DOMAINS = [f"kill{n}.com" for n in range(6)]  # two domains per server
PER_DOMAIN = 1000
CHUNK = 200
JOB = "k" * 32


def address(domain: int, n: int) -> str:
    return f"u{domain}x{n}@{DOMAINS[domain]}"


@pytest.fixture(scope="module")
def kill_world() -> Iterator[MailWorld]:
    world = MailWorld()
    for server, ip in enumerate(SERVERS):
        mailboxes = {"postmaster": "250 2.1.5 OK"}
        for domain in (2 * server, 2 * server + 1):
            mailboxes |= {
                address(domain, n).split("@")[0]: "250 2.1.5 OK" for n in range(0, PER_DOMAIN, 10)
            }
            # (the rest of the local parts are unknown: 550 5.1.1)
        behaviour = SmtpBehaviour(
            mailboxes=mailboxes, latency=0.05, max_connections=2, max_recipients=20
        )
        world.add_smtp(ip, behaviour)
        for domain in (2 * server, 2 * server + 1):
            world.zone.add(DOMAINS[domain], mx=[(10, f"mx.{DOMAINS[domain]}")])
            world.zone.add(f"mx.{DOMAINS[domain]}", a=[ip])
    world.start()
    yield world
    world.stop()


def job_chunks(emails: list[str] | None = None, size: int = CHUNK) -> list[RowChunk]:
    if emails is None:
        # rows interleave the domains, as a real list does: every chunk touches every server
        emails = [address(d, n) for n in range(PER_DOMAIN) for d in range(len(DOMAINS))]
    return [
        RowChunk(
            job_id=JOB,
            chunk_id=i,
            first_row=i * size,
            rows=size,
            checks=Check.SMTP,
            emails=emails[i * size : (i + 1) * size],
        )
        for i in range(len(emails) // size)
    ]


class ProcessJournal:
    """One worker process's access to the shared journal: once the process is killed
    nothing it still had scheduled (a flush timer, a write task) reaches the journal."""

    def __init__(self, journal: MemoryJobRepository) -> None:
        self._journal = journal
        self.killed = False
        self.refused = 0  # writes attempted after the kill (a real kill runs none)

    async def keep_verdicts(self, job_id: str, verdicts: Mapping[int, bytes]) -> None:
        if self.killed:
            self.refused += 1
            return
        await self._journal.keep_verdicts(job_id, verdicts)

    async def kept_verdicts(self, job_id: str, first_row: int, rows: int) -> dict[int, bytes]:
        return await self._journal.kept_verdicts(job_id, first_row, rows)

    async def drop_verdicts(self, job_id: str, first_row: int, rows: int) -> None:
        if not self.killed:
            await self._journal.drop_verdicts(job_id, first_row, rows)


async def worker_process(
    world: MailWorld, jobs: MemoryJobRepository, journal: ProcessJournal | None
) -> tuple[Deps, Worker]:
    """What a new worker process has: its own engine and prober (nothing remembered)."""
    env = {**world.env(), "MAILVET_SMTP_PER_HOST_CONNECTIONS": "2"}
    deps = await build_deps(
        load_settings(env), jobs=jobs, storage=MemoryStorage(), bus=MemoryBus(), syntax_pool=None
    )
    worker = Worker(deps.engine, deps.bus, concurrency=16, journal=journal)
    return deps, worker


async def kill_and_redo(
    world: MailWorld, *, journal: bool, chunks: list[RowChunk] | None = None
) -> tuple[int, int, Counter[str]]:
    """Run the job's chunks on one worker, kill it once a third of the job has verdicts,
    run them all again on another; returns (job size, RCPTs sent twice, verdict counts)."""
    chunks = chunks or job_chunks()
    total = sum(chunk.rows for chunk in chunks)
    before = {ip: len(world.smtp(ip).stats.recipients) for ip in SERVERS}
    jobs = MemoryJobRepository()
    first_journal = ProcessJournal(jobs) if journal else None
    deps, first = await worker_process(world, jobs, first_journal)
    tasks = [asyncio.ensure_future(first.handle(chunk)) for chunk in chunks]
    # kill -9 once the worker has sent a third of the job's RCPTs (the timeout: a hang guard)
    written = RcptsWritten(total // 3)
    previous = metrics.use(written)
    try:
        await asyncio.wait_for(written.reached.wait(), 60)
    finally:
        metrics.use(previous)
    if first_journal is not None:
        first_journal.killed = True  # from here on the first process does nothing
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    first_results = await _results(deps.bus)
    done_first = {m.chunk_id for m in first_results}
    await deps.close()

    deps2, second = await worker_process(world, jobs, ProcessJournal(jobs) if journal else None)
    redelivered = [chunk for chunk in chunks if chunk.chunk_id not in done_first]
    await asyncio.gather(*(second.handle(chunk) for chunk in redelivered))
    statuses: Counter[str] = Counter()
    for message in first_results + await _results(deps2.bus):  # the whole job's verdicts
        statuses.update(message.statuses)
    await deps2.close()

    sent: Counter[str] = Counter()
    for ip in SERVERS:
        for rcpt in world.smtp(ip).stats.recipients[before[ip] :]:
            if not rcpt.startswith(("postmaster@", "mailvet-")):
                sent[rcpt] += 1
    twice = sum(n - 1 for n in sent.values() if n > 1)
    assert len(done_first) < len(chunks) / 2  # the kill came mid-job, most chunks unfinished
    return total, twice, statuses


class RcptsWritten(metrics.PrometheusRecorder):
    """The worker's metrics: `reached` is set once it has written `wanted` RCPT commands
    (the servers count in the world's thread; this counts in the worker's own loop)."""

    def __init__(self, wanted: int) -> None:
        super().__init__()
        self.wanted = wanted
        self.written = 0
        self.reached = asyncio.Event()

    def smtp_command(self, command: str) -> None:
        if command == "RCPT":
            self.written += 1
            if self.written >= self.wanted:
                self.reached.set()


async def _results(bus: MessageBus) -> list[ChunkDone]:
    assert isinstance(bus, MemoryBus)
    found: list[ChunkDone] = []
    while (message := await bus.pull(queues.RESULTS)) is not None:
        assert isinstance(message, ChunkDone)
        found.append(message)
    return found


async def test_a_killed_worker_redoes_under_5_percent_of_the_job(kill_world: MailWorld) -> None:
    total, twice, statuses = await kill_and_redo(kill_world, journal=True)
    print(f"with the journal: {twice} of {total} RCPTs sent twice ({twice / total:.1%})")
    assert statuses == {"deliverable": total // 10, "undeliverable": total - total // 10}
    assert twice < 0.05 * total, f"{twice} of {total} RCPTs sent twice"


async def test_without_the_journal_the_unfinished_chunks_are_probed_again(
    kill_world: MailWorld,
) -> None:
    total, twice, statuses = await kill_and_redo(kill_world, journal=False)
    print(f"without the journal: {twice} of {total} RCPTs sent twice ({twice / total:.1%})")
    assert statuses == {"deliverable": total // 10, "undeliverable": total - total // 10}
    assert twice > 0.2 * total  # what the journal saves


async def test_a_worker_killed_inside_one_big_domain_keeps_what_it_reached(
    kill_world: MailWorld,
) -> None:
    # one domain, four 1,000-row chunks: its verdicts must be kept as they come, not once
    # the whole domain group of a chunk is done (then the kill would keep none); what the
    # kill loses is about what its server had in progress (2 sessions of 20), hence 4,000
    emails = [address(0, n) for n in range(4 * PER_DOMAIN)]  # n >= PER_DOMAIN: unknown
    chunks = job_chunks(emails, size=PER_DOMAIN)
    total, twice, statuses = await kill_and_redo(kill_world, journal=True, chunks=chunks)
    print(f"one big domain: {twice} of {total} RCPTs sent twice ({twice / total:.1%})")
    assert statuses == {"deliverable": PER_DOMAIN // 10, "undeliverable": total - PER_DOMAIN // 10}
    assert twice < 0.05 * total, f"{twice} of {total} RCPTs sent twice"
