from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from mailvet.adapters.bus.memory import MemoryBus
from mailvet.domain.messages import ChunkDone, JobSubmitted, Message, RowChunk
from mailvet.domain.verdict import Check, Reason, Status

pytestmark = pytest.mark.unit


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus()
    yield bus
    await bus.stop()


async def test_publish_then_subscribe(bus: MemoryBus) -> None:
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    bus.subscribe("intake", handle)
    first, second = JobSubmitted(job_id="j1"), JobSubmitted(job_id="j2")
    await bus.publish("intake", first)  # queued before start
    await bus.start()
    await bus.publish("intake", second)
    await asyncio.wait_for(bus.idle(), 2)

    assert seen == [first, second]
    assert seen[0] is first  # same object without roundtrip


async def test_handlers_can_publish_and_idle_waits_for_the_chain(bus: MemoryBus) -> None:
    done: list[str] = []

    async def intake(message: Message) -> None:
        assert isinstance(message, JobSubmitted)
        await asyncio.sleep(0.01)  # a handler that takes a while (the behaviour under test)
        await bus.publish("publisher", message)

    async def publisher(message: Message) -> None:
        assert isinstance(message, JobSubmitted)
        done.append(message.job_id)

    bus.subscribe("intake", intake)
    bus.subscribe("publisher", publisher)
    await bus.start()
    for n in range(3):
        await bus.publish("intake", JobSubmitted(job_id=f"j{n}"))
    await asyncio.wait_for(bus.idle(), 2)

    assert done == ["j0", "j1", "j2"]


async def test_concurrency(bus: MemoryBus) -> None:
    running, most = 0, 0
    gate = asyncio.Event()

    async def handle(message: Message) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1

    bus.subscribe("work", handle, concurrency=3)
    await bus.start()
    for n in range(7):
        await bus.publish("work", JobSubmitted(job_id=str(n)))
    await asyncio.sleep(0.05)  # a negative check: give a 4th handler the chance to start
    assert (running, most) == (3, 3)

    gate.set()
    await asyncio.wait_for(bus.join("work"), 2)
    assert (running, most) == (0, 3)


async def test_back_pressure_with_a_bound(bus: MemoryBus) -> None:
    bus.set_bound("work", 2)
    await bus.publish("work", JobSubmitted(job_id="1"))
    await bus.publish("work", JobSubmitted(job_id="2"))
    third = asyncio.create_task(bus.publish("work", JobSubmitted(job_id="3")))
    await asyncio.sleep(0.02)  # a negative check: the 3rd publish had its chance to finish
    assert not third.done()  # the queue is full: the publisher waits

    assert await bus.pull("work") == JobSubmitted(job_id="1")
    await asyncio.wait_for(third, 1)
    assert [await bus.pull("work") for _ in range(3)] == [
        JobSubmitted(job_id="2"),
        JobSubmitted(job_id="3"),
        None,
    ]
    with pytest.raises(RuntimeError):
        bus.set_bound("work", 5)  # only before first use


async def test_default_bound_applies_to_every_queue() -> None:
    bus = MemoryBus(maxsize=1)
    await bus.publish("any", JobSubmitted(job_id="1"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(bus.publish("any", JobSubmitted(job_id="2")), 0.02)


async def test_handler_failure_is_logged_and_consumer_goes_on(bus: MemoryBus) -> None:
    seen: list[str] = []

    async def handle(message: Message) -> None:
        assert isinstance(message, JobSubmitted)
        if message.job_id == "bad":
            raise RuntimeError("boom")
        seen.append(message.job_id)

    bus.subscribe("intake", handle)
    await bus.start()
    with capture_logs() as logs:
        for job_id in ["a", "bad", "b"]:
            await bus.publish("intake", JobSubmitted(job_id=job_id))
        await asyncio.wait_for(bus.idle(), 2)

    assert seen == ["a", "b"]  # not retried
    failures = [entry for entry in logs if entry["event"] == "handler_failed"]
    assert len(failures) == 1
    assert failures[0]["queue"] == "intake"
    assert failures[0]["message_type"] == "JobSubmitted"
    assert failures[0]["log_level"] == "error"
    assert await bus.pull("intake") is None


async def test_pull(bus: MemoryBus) -> None:
    assert await bus.pull("job:j1") is None  # unknown queue
    chunks = [
        RowChunk(job_id="j1", chunk_id=n, first_row=n * 10, rows=1, emails=["a@b.c"])
        for n in range(3)
    ]
    for chunk in chunks:
        await bus.publish("job:j1", chunk)

    assert [await bus.pull("job:j1") for _ in range(4)] == [*chunks, None]
    await asyncio.wait_for(bus.idle(), 1)  # pulled messages count as handled


async def test_delete_queue_drops_messages_and_consumers(bus: MemoryBus) -> None:
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    await bus.publish("job:j1", JobSubmitted(job_id="j1"))
    await bus.delete_queue("job:j1")
    assert await bus.pull("job:j1") is None
    await asyncio.wait_for(bus.idle(), 1)

    bus.subscribe("temp", handle)
    await bus.start()
    await bus.delete_queue("temp")
    await bus.publish("temp", JobSubmitted(job_id="j2"))
    await asyncio.sleep(0.01)  # a negative check: a deleted queue had its chance to deliver
    assert seen == []
    assert await bus.pull("temp") == JobSubmitted(job_id="j2")
    await bus.delete_queue("never-existed")


async def test_roundtrip_mode_sends_copies_through_msgpack() -> None:
    bus = MemoryBus(roundtrip=True)
    chunk = RowChunk(
        job_id="j1", chunk_id=2, first_row=20, rows=1, emails=["a@b.c"], checks=Check.DNS
    )
    done = ChunkDone(
        job_id="j1",
        chunk_id=2,
        first_row=20,
        rows=1,
        form="text",
        data=b"a@b.c,risky,catch_all\r\n",
        statuses={Status.RISKY.value: 1},
        reasons={Reason.CATCH_ALL.value: 1},
    )
    for message in (chunk, done):
        await bus.publish("q", message)

    got = [await bus.pull("q"), await bus.pull("q")]

    assert got == [chunk, done]
    assert got[0] is not chunk and type(got[0]) is RowChunk
    assert type(got[1]) is ChunkDone
    assert got[1].data == b"a@b.c,risky,catch_all\r\n" and got[1].statuses == {"risky": 1}


async def test_stop_is_clean_and_start_resumes() -> None:
    bus = MemoryBus()
    seen: list[Message] = []
    started = asyncio.Event()

    async def slow(message: Message) -> None:
        started.set()
        await asyncio.sleep(10)

    async def handle(message: Message) -> None:
        seen.append(message)

    bus.subscribe("slow", slow, concurrency=2)
    bus.subscribe("fast", handle)
    await bus.start()
    await bus.start()  # idempotent
    await bus.publish("slow", JobSubmitted(job_id="s"))
    await asyncio.wait_for(started.wait(), 1)
    tasks_before = {t for t in asyncio.all_tasks() if t.get_name().startswith("bus:")}
    assert len(tasks_before) == 3

    await asyncio.wait_for(bus.stop(), 1)  # cancels the running handler too

    assert all(t.done() for t in tasks_before)
    await bus.publish("fast", JobSubmitted(job_id="later"))
    await asyncio.sleep(0.01)  # a negative check: a stopped bus had its chance to deliver
    assert seen == []  # nobody consumes while stopped
    await bus.start()
    await asyncio.wait_for(bus.join("fast"), 1)
    assert seen == [JobSubmitted(job_id="later")]
    await bus.stop()


async def test_subscribe_after_start(bus: MemoryBus) -> None:
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    await bus.start()
    bus.subscribe("late", handle)
    await bus.publish("late", JobSubmitted(job_id="x"))
    await asyncio.wait_for(bus.idle(), 1)
    assert seen == [JobSubmitted(job_id="x")]
    with pytest.raises(ValueError):
        bus.subscribe("late", handle, concurrency=0)


async def test_queue_depths_and_ping(bus: MemoryBus) -> None:
    await bus.publish("work", JobSubmitted(job_id="j1"))
    await bus.publish("work", JobSubmitted(job_id="j2"))
    await bus.publish("rows.abc", JobSubmitted(job_id="j3"))
    assert await bus.queue_depths() == {"work": 2, "rows.abc": 1}
    assert await bus.ping() is True


def _record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    ("record", "kept_level"),
    [
        # aio-pika's reconnection narrative: demoted
        (_record("aio_pika.robust_connection", logging.INFO, "Connection to %s closed.", "x"), 10),
        (_record("aiormq.connection", logging.WARNING, "Cancelling cause reader exited"), 10),
        (_record("aiormq.connection", logging.ERROR, "error when creating transport: %r", 1), 10),
        (
            _record(
                "aio_pika.tools",
                logging.ERROR,
                "Callback %r error: %s: %s",
                "cb",
                "RuntimeError",
                RuntimeError('<Connection: "amqp://x"> closed'),
            ),
            10,
        ),
        (
            _record(
                "aiormq.connection",
                logging.ERROR,
                'Unexpected connection close from remote "%s", '
                "Connection.Close(reply_code=%r, reply_text=%r)",
                "amqp://x",
                320,
                "CONNECTION_FORCED",
            ),
            10,
        ),
        (
            _record(
                "aio_pika.tools",
                logging.ERROR,
                "Callback %r error: %s: %s",
                "<OneShotCallback: cb=<bound method RobustChannel._on_close of <...>>>",
                "ChannelInvalidStateError",
                "No active transport in channel",
            ),
            10,
        ),
        # real errors and the broker's flow control: kept
        (
            _record("aio_pika.tools", logging.ERROR, "Callback %r error: %s: %s", "cb", "E", "x"),
            40,
        ),
        (_record("aiormq.channel", logging.ERROR, "Consumer callback failed"), 40),
        (_record("aiormq.connection", logging.WARNING, "Connection %r was blocked by: %r"), 30),
    ],
)
def test_library_chatter_of_a_reconnection_is_debug(
    record: logging.LogRecord, kept_level: int
) -> None:
    from mailvet.logs import LibraryChatter

    assert LibraryChatter().filter(record) is True
    assert record.levelno == kept_level
    assert record.levelname == logging.getLevelName(kept_level)


def test_the_chatter_of_library_loggers_made_later_is_demoted_too(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The filter is on the handler, so loggers created after the bus (or after logging was
    configured) are covered; another handler gets it from quiet_library_chatter()."""
    from mailvet.adapters.bus.rabbit import RabbitBus
    from mailvet.logs import LibraryChatter

    other = logging.StreamHandler()
    logging.getLogger().addHandler(other)
    try:
        RabbitBus("amqp://guest:guest@127.0.0.1:1/")  # no connection yet
        RabbitBus("amqp://guest:guest@127.0.0.1:1/")
        assert [type(f) for f in other.filters] == [LibraryChatter]  # once
        later = logging.getLogger(f"aiormq.made_later_{uuid.uuid4().hex}")
        later.error("error when creating transport: %r", ConnectionRefusedError())
        later.error("Consumer callback failed")  # a real error: kept
        logging.getLogger(f"aio_pika.later_{uuid.uuid4().hex}").info("Connection made")
    finally:
        logging.getLogger().removeHandler(other)
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert [(x["level"], x["event"]) for x in lines] == [("error", "Consumer callback failed")]
