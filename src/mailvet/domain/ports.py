"""Ports: what the pipeline needs from the outside world, as small typing.Protocols.

Adapters in mailvet.adapters implement them (real and in-memory twins side by side).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

import msgspec

from mailvet.domain.job import Job, JobCounts, JobStatus
from mailvet.domain.messages import Message
from mailvet.domain.smtp_reply import Reply

# --- jobs --------------------------------------------------------------------------------


class JobNotFound(Exception):
    pass


class JobRepository(Protocol):
    async def add(self, job: Job) -> None: ...

    async def get(self, job_id: str) -> Job:
        """Raise JobNotFound if there is no such job."""
        ...

    async def set_status(self, job_id: str, status: JobStatus, error: str = "") -> Job:
        """Move the job to `status`, enforcing the state machine (IllegalTransition)."""
        ...

    async def set_counts(
        self, job_id: str, *, rows_total: int, chunks_total: int, layout: bytes
    ) -> None: ...

    async def set_cost(self, job_id: str, cost: int) -> None:
        """The credits reserved for the job (its distinct valid addresses)."""
        ...

    async def set_result_counts(self, job_id: str, counts: JobCounts) -> None:
        """The completed result's counts per status and reason, and the credits charged."""
        ...

    async def record_chunk(self, job_id: str, chunk_id: int, rows: int) -> bool:
        """Remember that a chunk's results are stored; False if it was already recorded.

        Also advances rows_done by `rows` the first time only (idempotent progress).
        """
        ...

    async def list_jobs(self, limit: int = 100) -> list[Job]: ...

    async def list_active(self) -> list[Job]:
        """Jobs between intake and completion (oldest first): what a restarted service resumes."""
        ...


# --- object storage ----------------------------------------------------------------------


class ObjectNotFound(Exception):
    pass


class ObjectStorage(Protocol):
    """Keys look like `validation/uploaded/<job_id>`; values are bytes or files."""

    async def put_file(self, key: str, path: Path) -> None: ...

    async def get_file(self, key: str, path: Path) -> None:
        """Download to `path`; ObjectNotFound if missing."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    async def get_bytes(self, key: str) -> bytes: ...

    async def move(self, src: str, dst: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def delete_prefix(self, prefix: str) -> None: ...


@runtime_checkable
class LocalFiles(Protocol):
    """An ObjectStorage whose objects are local files never written again once stored
    (adapters/storage/local.py): read in place, moved in, linked out (pipeline/job_files.py)."""

    def local_file(self, key: str) -> Path:
        """The object's file, to read in place (ObjectNotFound if there is none)."""
        ...

    async def adopt_file(self, key: str, path: Path) -> None:
        """Store `path` itself under `key` (moved, not copied): `path` is gone after."""
        ...

    async def take_file(self, key: str, path: Path) -> None:
        """get_file for a caller that deletes the object next (`path` may share its file)."""
        ...


@runtime_checkable
class PresignedStorage(Protocol):
    """An ObjectStorage that can hand out a time-limited download link (S3Storage)."""

    def presigned_get(self, key: str, expires: timedelta = ...) -> str: ...


class UploadForm(msgspec.Struct, frozen=True, kw_only=True):
    """A browser form that uploads one file straight into storage: post `fields` to `url`
    in their order, the file last (as `file_field`), as multipart/form-data. `metadata`
    names, for each piece of metadata the page may fill in, the field among `fields` (sent
    empty) that carries it."""

    url: str
    fields: tuple[tuple[str, str], ...]
    metadata: Mapping[str, str] = msgspec.field(default_factory=dict)
    file_field: str = "file"


class StoredObject(msgspec.Struct, frozen=True, kw_only=True):
    """What storage says of an object: its size in bytes and the metadata it came with."""

    size: int
    metadata: Mapping[str, str] = msgspec.field(default_factory=dict)


@runtime_checkable
class PresignedUpload(Protocol):
    """An ObjectStorage browsers can upload to themselves (S3Storage: a pre-signed POST),
    which then tells what arrived."""

    def presigned_post(
        self,
        key: str,
        *,
        max_bytes: int,
        redirect: str,
        expires: timedelta,
        metadata: Sequence[str] = (),
    ) -> UploadForm:
        """A form that stores one file of 1..`max_bytes` bytes at `key` exactly, then sends
        the browser to `redirect` (storage appends its own query: `bucket`, `key`, `etag`);
        valid for `expires`. The browser may fill the `metadata` names with any value."""
        ...

    async def stat(self, key: str) -> StoredObject:
        """The object's size and metadata (the `metadata` names of its form); ObjectNotFound
        if there is none."""
        ...


# --- message bus -------------------------------------------------------------------------

Handler = Callable[[Message], Awaitable[None]]
GiveUp = Callable[[Message, Exception], Awaitable[None]]


class MessageBus(Protocol):
    """Queues by name. Delivery is at least once: handlers must be idempotent.

    A handler that raises gets its message again later (RabbitMQ: up to the delivery limit);
    when the bus gives up on a message (dead-letters or drops it) it calls `on_give_up`.
    """

    on_give_up: GiveUp | None

    async def publish(self, queue: str, message: Message) -> None:
        """May wait when the queue is full (back-pressure)."""
        ...

    def subscribe(self, queue: str, handler: Handler, *, concurrency: int = 1) -> None: ...

    async def transfer(self, src: str, dst: str) -> Message | None:
        """Move one message from `src` to `dst` without waiting for one (None if `src` is
        empty); it leaves `src` only once it is safely in `dst` (round-robin dispatch)."""
        ...

    async def depth(self, queue: str) -> int:
        """Messages waiting in the queue."""
        ...

    async def delete_queue(self, queue: str) -> None: ...

    async def ping(self) -> bool:
        """Health: does the broker answer (an in-process bus always does)?"""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# --- DNS ---------------------------------------------------------------------------------


class RouteKind(enum.Enum):
    MX = "mx"  # explicit MX hosts
    IMPLICIT = "implicit"  # no MX, but A/AAAA: the domain itself (RFC 5321 5.1)
    NULL_MX = "null_mx"  # RFC 7505
    NO_DOMAIN = "no_domain"  # NXDOMAIN
    NO_MX = "no_mx"  # exists, but no MX and no A/AAAA
    TIMEOUT = "timeout"  # no answer: cannot decide
    FAILED = "failed"  # SERVFAIL / refused / broken answer: cannot decide


class MailRoute(msgspec.Struct, frozen=True):
    kind: RouteKind
    hosts: tuple[str, ...] = ()  # in preference order; equal preferences in random order
    preferences: tuple[int, ...] = ()  # MX preference of each host, aligned with hosts


class Resolver(Protocol):
    async def mail_route(self, domain: str) -> MailRoute:
        """The mail exchangers of an ASCII (IDNA) domain. Never raises for DNS trouble."""
        ...

    async def host_addresses(self, host: str) -> list[str]:
        """IPv4/IPv6 addresses of an MX host; [] if none or on failure."""
        ...


# --- SMTP --------------------------------------------------------------------------------


class ProbeFailure(enum.Enum):
    TIMEOUT = "timeout"
    CONNECTION_FAILED = "connection_failed"
    SMTP_ERROR = "smtp_error"  # session-level refusal (MAIL FROM refused, protocol error)
    TEMPORARY = "temporary"  # the server kept saying "try later" (4xx greeting) past the retries
    NOT_SUPPORTED = "not_supported"  # e.g. a non-ASCII mailbox and a server without SMTPUTF8


class ProbeResult(msgspec.Struct, frozen=True):
    """What the MX said about one recipient: a reply, or why there is none."""

    mx: str = ""
    reply: Reply | None = None
    failure: ProbeFailure | None = None
    # the reply to RCPT TO:<postmaster@domain> in the same session (RFC 5321 4.5.1: it must
    # exist), the control that tells a refusal of the mailbox from a refusal of us
    control: Reply | None = None


class SmtpProber(Protocol):
    async def probe(
        self, hosts: Sequence[str], recipients: Sequence[str], *, solo: bool = False
    ) -> list[ProbeResult]:
        """Ask the first reachable host of `hosts` about each recipient (same order out).

        `solo`: each recipient in a transaction of its own (the catch-all probe), so no
        state a server keeps inside a transaction can spill onto real recipients.
        """
        ...

    async def close(self) -> None: ...


# --- verdicts kept as they are reached -----------------------------------------------------


@runtime_checkable
class VerdictJournal(Protocol):
    """A job's verdicts by row, kept as they are reached and until the chunk's result is
    stored: a chunk delivered again after its worker was killed redoes only the rows it had
    not reached. Values are opaque bytes (the worker's encoding of a Verdict)."""

    async def keep_verdicts(self, job_id: str, verdicts: Mapping[int, bytes]) -> None:
        """Store row -> verdict; a row kept before keeps its first value (idempotent)."""
        ...

    async def kept_verdicts(self, job_id: str, first_row: int, rows: int) -> dict[int, bytes]:
        """The kept verdicts of rows [first_row, first_row + rows)."""
        ...

    async def drop_verdicts(self, job_id: str, first_row: int, rows: int) -> None:
        """Forget the rows [first_row, first_row + rows) (their chunk's result is stored)."""
        ...
