"""RabbitBus against the real RabbitMQ (127.0.0.1:5672, or MAILVET_TEST_AMQP_URL).

Every test runs under its own prefix `mvtest.<uuid8>` and deletes its queues and exchange
at the end. Skipped when RabbitMQ is unreachable, unless MAILVET_TEST_SERVICES=required.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiormq
import msgspec
import msgspec.inspect as mi
import pytest
from structlog.testing import capture_logs

from mailvet.adapters.bus.rabbit import RabbitBus
from mailvet.domain.messages import AnyMessage, JobSubmitted, Message
from tests.services import AMQP_URL, rabbit_problem, require
from tests.waiting import until

pytestmark = pytest.mark.integration

# every port queue name the tests use: deleted (if present) after each test
QUEUES = ("intake", "work", "src", "dst", "other", "blocked")
SECRET = "secret.person@example.com"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    require(rabbit_problem(AMQP_URL))
    return AMQP_URL


class Rabbit:
    """A test's own prefix, its buses and a plain (non-robust) aio-pika connection."""

    def __init__(self, url: str, connection: aio_pika.abc.AbstractConnection) -> None:
        self.url = url
        self.prefix = f"mvtest.{uuid.uuid4().hex[:8]}"
        self.connection = connection
        self.buses: list[RabbitBus] = []

    def bus(self, **kwargs: Any) -> RabbitBus:
        kwargs.setdefault("prefix", self.prefix)
        kwargs.setdefault("graceful_timeout", 5.0)
        sep = "&" if "?" in self.url else "?"
        bus = RabbitBus(f"{self.url}{sep}name={self.prefix}", **kwargs)
        self.buses.append(bus)
        return bus

    def name(self, queue: str) -> str:
        return f"{self.prefix}.{queue}"

    async def count(self, queue: str) -> int:
        """Ready messages in `<prefix>.<queue>` (passive declare on a fresh channel)."""
        async with await self.connection.channel() as channel:
            declared = await channel.declare_queue(self.name(queue), passive=True)
            assert declared.declaration_result.message_count is not None
            return declared.declaration_result.message_count

    async def wait_count(self, queue: str, expected: int, within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            # the broker's queue length is seen only by asking for it
            while (n := await self.count(queue)) != expected:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert n == expected

    async def exists(self, queue: str) -> bool:
        try:
            await self.count(queue)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True

    async def publish_raw(self, queue: str, body: bytes) -> None:
        async with await self.connection.channel() as channel:  # confirms on by default
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=self.name(queue),
                mandatory=True,
            )

    async def get_raw(self, queue: str) -> aio_pika.abc.AbstractIncomingMessage | None:
        async with await self.connection.channel() as channel:
            declared = await channel.declare_queue(self.name(queue), passive=True)
            return await declared.get(no_ack=True, fail=False)

    async def cleanup(self) -> None:
        for bus in self.buses:
            await bus.stop()
        async with await self.connection.channel() as channel:
            for queue in (*QUEUES, "dead"):
                await channel.queue_delete(self.name(queue))
            await channel.exchange_delete(f"{self.prefix}.dlx")


@pytest.fixture
async def rabbit(amqp_url: str) -> AsyncIterator[Rabbit]:
    connection = await aio_pika.connect(amqp_url, timeout=5)
    env = Rabbit(amqp_url, connection)
    try:
        yield env
    finally:
        try:
            await env.cleanup()
        finally:
            await connection.close()


# --- helpers -----------------------------------------------------------------------------


def _value(t: mi.Type, name: str) -> Any:
    """A non-default value of a msgspec type (enough for the message structs)."""
    if isinstance(t, mi.StrType):
        return f"{name}:{SECRET}"
    if isinstance(t, mi.BoolType):
        return True
    if isinstance(t, mi.IntType):
        return 7
    if isinstance(t, mi.FloatType):
        return 2.5
    if isinstance(t, mi.BytesType):
        return b"\x00\xffbytes"
    if isinstance(t, mi.EnumType):
        return list(t.cls)[-1]
    if isinstance(t, (mi.ListType, mi.TupleType, mi.VarTupleType)):
        item = t.item_type if hasattr(t, "item_type") else t.item_types[0]
        return [_value(item, name), _value(item, name + "2")]
    if isinstance(t, mi.DictType):
        return {_value(t.key_type, name): _value(t.value_type, name)}
    if isinstance(t, mi.UnionType):
        return _value(next(x for x in t.types if not isinstance(x, mi.NoneType)), name)
    raise NotImplementedError(f"no sample for {t!r}")


def sample(cls: type[Message]) -> Message:
    """A real message struct with every field (but `version`) set to a non-default value."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    fields = {f.name: _value(f.type, f.name) for f in info.fields if f.name != "version"}
    return msgspec.convert(fields, cls, strict=False)


def collector() -> tuple[list[Message], Callable[[Message], Awaitable[None]]]:
    seen: list[Message] = []

    async def handle(message: Message) -> None:
        seen.append(message)

    return seen, handle


# --- publish / subscribe -------------------------------------------------------------------


async def test_round_trip_of_every_message_type(rabbit: Rabbit) -> None:
    messages = [sample(cls) for cls in typing.get_args(AnyMessage)]
    assert len(messages) >= 6
    seen, handle = collector()
    bus = rabbit.bus()
    bus.subscribe("intake", handle)
    await bus.start()
    for message in messages:
        await bus.publish("intake", message)

    await until(lambda: len(seen) == len(messages))
    assert seen == messages  # concurrency 1: in order, equal after msgpack both ways
    await rabbit.wait_count("intake", 0)


async def test_queues_are_durable_quorum_with_delivery_limit_and_dead_lettering(
    rabbit: Rabbit,
) -> None:
    bus = rabbit.bus(delivery_limit=3)
    await bus.publish("work", JobSubmitted(job_id="j1"))

    raw = await rabbit.get_raw("work")
    assert raw is not None
    assert raw.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert raw.content_type == "application/msgpack"
    assert raw.type == "job_submitted"
    assert msgspec.msgpack.decode(raw.body, type=AnyMessage) == JobSubmitted(job_id="j1")

    async with await rabbit.connection.channel() as channel:
        # re-declaring with exactly these arguments succeeds only if they are the queue's
        await channel.declare_queue(
            rabbit.name("work"),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": 3,
                "x-dead-letter-exchange": f"{rabbit.prefix}.dlx",
            },
        )
        await channel.declare_exchange(
            f"{rabbit.prefix}.dlx", aio_pika.ExchangeType.FANOUT, durable=True, passive=True
        )
        await channel.declare_queue(
            rabbit.name("dead"), durable=True, arguments={"x-queue-type": "quorum"}
        )
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        async with await rabbit.connection.channel() as channel:
            await channel.declare_queue(rabbit.name("work"), durable=True)  # classic


async def test_publish_raises_when_the_queue_vanished(rabbit: Rabbit) -> None:
    """Confirms + mandatory: an unroutable publish is an error, not a silent loss."""
    bus = rabbit.bus()
    await bus.publish("other", JobSubmitted(job_id="j1"))
    async with await rabbit.connection.channel() as channel:
        await channel.queue_delete(rabbit.name("other"))  # behind the bus's back

    with pytest.raises(aiormq.exceptions.PublishError):
        await bus.publish("other", JobSubmitted(job_id="j2"))
    await bus.publish("other", JobSubmitted(job_id="j3"))  # declared again
    assert await bus.pull("other") == JobSubmitted(job_id="j3")


@pytest.mark.parametrize("prefetch", [None, 10])
async def test_runs_up_to_concurrency_handlers_at_once(
    rabbit: Rabbit, prefetch: int | None
) -> None:
    concurrency, total = 4, 10
    active = peak = done = 0
    all_in = asyncio.Event()

    async def handle(message: Message) -> None:
        nonlocal active, peak, done
        active += 1
        peak = max(peak, active)
        if active == concurrency:
            all_in.set()
        try:
            await asyncio.wait_for(all_in.wait(), 5)
            await asyncio.sleep(0.05)
        finally:
            active -= 1
            done += 1

    bus = rabbit.bus(prefetch=prefetch)
    bus.subscribe("work", handle, concurrency=concurrency)
    for n in range(total):
        await bus.publish("work", JobSubmitted(job_id=f"j{n}"))
    await bus.start()

    await until(lambda: done == total)
    assert peak == concurrency


async def test_messages_survive_a_consumer_stop_and_start(rabbit: Rabbit) -> None:
    total = 10
    handled: list[str] = []
    finished_in_stop = False
    in_handler = asyncio.Event()

    async def slow(message: Message) -> None:
        nonlocal finished_in_stop
        assert isinstance(message, JobSubmitted)
        in_handler.set()
        await asyncio.sleep(0.1)
        handled.append(message.job_id)
        finished_in_stop = True

    publisher = rabbit.bus()
    for n in range(total):
        await publisher.publish("work", JobSubmitted(job_id=f"j{n}"))

    consumer = rabbit.bus()
    consumer.subscribe("work", slow)
    await consumer.start()
    await until(lambda: len(handled) >= 3)
    in_handler.clear()
    await in_handler.wait()  # a handler is running right now
    finished_in_stop = False
    await consumer.stop()
    assert finished_in_stop  # stop() let the running handler finish (and ack)

    stopped_at = len(handled)
    await rabbit.wait_count("work", total - stopped_at)  # the rest is still queued

    await consumer.start()  # the same bus again
    await until(lambda: len(handled) >= total)
    assert sorted(handled) == sorted(f"j{n}" for n in range(total))
    assert len(handled) == total  # acked ones are not delivered again
    await rabbit.wait_count("work", 0)


async def test_stop_waits_for_a_stuck_handler_only_so_long(rabbit: Rabbit) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(message: Message) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    bus = rabbit.bus(graceful_timeout=0.3)
    bus.subscribe("work", stuck)
    await bus.start()
    await bus.publish("work", JobSubmitted(job_id="j1"))
    await asyncio.wait_for(started.wait(), 5)

    async with asyncio.timeout(3):
        await bus.stop()
    # closing the channel cancelled the handler (aio-pika); the unacked message is requeued
    await asyncio.wait_for(cancelled.wait(), 1)
    await rabbit.wait_count("work", 1)
    with pytest.raises(RuntimeError):
        await bus.publish("work", JobSubmitted(job_id="j2"))  # stopped: no lazy reconnect


# --- failures ------------------------------------------------------------------------------


async def test_failing_handler_is_redelivered_then_dead_lettered(rabbit: Rabbit) -> None:
    limit = 2
    attempts: list[str] = []

    async def handle(message: Message) -> None:
        assert isinstance(message, JobSubmitted)
        attempts.append(message.job_id)
        if message.job_id == "poison":
            raise RuntimeError("handler failure")

    given_up: list[tuple[Message, str]] = []

    async def give_up(message: Message, exc: Exception) -> None:
        given_up.append((message, str(exc)))

    bus = rabbit.bus(delivery_limit=limit)
    bus.on_give_up = give_up
    bus.subscribe("work", handle)
    await bus.start()
    with capture_logs() as logs:
        await bus.publish("work", JobSubmitted(job_id="poison"))
        await bus.publish("work", JobSubmitted(job_id="fine"))
        await rabbit.wait_count("dead", 1)
        await until(lambda: "fine" in attempts)

    # x-delivery-limit counts returns: first delivery + `limit` redeliveries
    assert attempts.count("poison") == limit + 1
    assert attempts.count("fine") == 1
    await rabbit.wait_count("work", 0)
    dead = await rabbit.get_raw("dead")
    assert dead is not None
    assert msgspec.msgpack.decode(dead.body, type=AnyMessage) == JobSubmitted(job_id="poison")

    failures = [e for e in logs if e["event"] == "handler_failed"]
    assert [e["delivery"] for e in failures] == list(range(1, limit + 2))
    lettered = [e for e in logs if e["event"] == "message_dead_lettered"]
    assert [e["reason"] for e in lettered] == ["delivery_limit"]
    assert given_up == [(JobSubmitted(job_id="poison"), "handler failure")]  # only at the end


async def test_malformed_bodies_are_dead_lettered_and_consuming_goes_on(rabbit: Rabbit) -> None:
    seen, handle = collector()
    bus = rabbit.bus()
    bus.subscribe("intake", handle)
    await bus.start()

    bad_bodies = [
        b"\xc1 not msgpack " + SECRET.encode(),
        msgspec.msgpack.encode({"type": SECRET, "job_id": "j"}),  # unknown tag
        msgspec.msgpack.encode({"type": "row_chunk", "job_id": SECRET}),  # missing fields
        msgspec.json.encode(JobSubmitted(job_id=SECRET)),  # JSON, not msgpack
    ]
    with capture_logs() as logs:
        for body in bad_bodies:
            await rabbit.publish_raw("intake", body)
        await bus.publish("intake", JobSubmitted(job_id="after"))
        await until(lambda: len(seen) == 1)
        await rabbit.wait_count("dead", len(bad_bodies))

    assert seen == [JobSubmitted(job_id="after")]
    lettered = [e for e in logs if e["event"] == "message_dead_lettered"]
    assert len(lettered) == len(bad_bodies)
    assert all(e["reason"] == "undecodable" for e in lettered)
    assert all(e["queue"] == rabbit.name("intake") for e in lettered)
    assert all(e["log_level"] == "warning" for e in lettered)
    assert SECRET not in repr(logs)  # bodies are never logged


# --- pull, transfer, delete ------------------------------------------------------------------


async def test_pull(rabbit: Rabbit) -> None:
    bus = rabbit.bus()
    assert await bus.pull("src") is None  # declares it, empty
    first, second = JobSubmitted(job_id="j1"), sample(typing.get_args(AnyMessage)[-1])
    await bus.publish("src", first)
    await rabbit.publish_raw("src", b"\xc1garbage")
    await bus.publish("src", second)

    with capture_logs() as logs:
        assert await bus.pull("src") == first
        assert await bus.pull("src") == second  # the garbage was dead-lettered on the way
        assert await bus.pull("src") is None
    assert [e["reason"] for e in logs if e["event"] == "message_dead_lettered"] == ["undecodable"]
    await rabbit.wait_count("dead", 1)
    assert await rabbit.count("src") == 0


async def test_transfer_moves_exactly_one_message(rabbit: Rabbit) -> None:
    bus = rabbit.bus()
    assert await bus.transfer("src", "dst") is None  # empty source
    chunks = [JobSubmitted(job_id=f"j{n}") for n in range(3)]
    for chunk in chunks:
        await bus.publish("src", chunk)

    assert await bus.transfer("src", "dst") == chunks[0]
    assert await rabbit.count("src") == 2
    assert await rabbit.count("dst") == 1
    raw = await rabbit.get_raw("dst")
    assert raw is not None and raw.delivery_mode == aio_pika.DeliveryMode.PERSISTENT

    assert await bus.transfer("src", "dst") == chunks[1]
    assert await bus.transfer("src", "dst") == chunks[2]
    assert await bus.transfer("src", "dst") is None
    assert [await bus.pull("dst"), await bus.pull("dst")] == chunks[1:]


async def test_transfer_loses_nothing_when_the_destination_fails(rabbit: Rabbit) -> None:
    bus = rabbit.bus()
    chunk = JobSubmitted(job_id="j1")
    await bus.publish("src", chunk)

    # 1. the destination cannot be declared (a classic queue of that name exists)
    async with await rabbit.connection.channel() as channel:
        await channel.declare_queue(rabbit.name("blocked"), durable=True)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await bus.transfer("src", "blocked")
    assert await rabbit.count("src") == 1

    # 2. the publish itself fails after the basic.get: the destination vanished
    await bus.publish("dst", JobSubmitted(job_id="other"))  # declared (and cached) by the bus
    async with await rabbit.connection.channel() as channel:
        await channel.queue_delete(rabbit.name("dst"))
    with capture_logs() as logs, pytest.raises(aiormq.exceptions.PublishError):
        await bus.transfer("src", "dst")
    # not a lost connection (that has its one warning, bus_connection_lost): this one warns
    failed = [entry for entry in logs if entry["event"] == "transfer_failed"]
    assert [entry["log_level"] for entry in failed] == ["warning"]
    await rabbit.wait_count("src", 1)  # requeued, not lost
    assert not await rabbit.exists("dst")

    # and the bus recovers: the next transfer declares dst again
    assert await bus.transfer("src", "dst") == chunk
    assert await rabbit.count("src") == 0
    assert await bus.pull("dst") == chunk


async def test_delete_queue(rabbit: Rabbit) -> None:
    bus = rabbit.bus()
    seen, handle = collector()
    bus.subscribe("intake", handle)
    await bus.start()
    await bus.publish("other", JobSubmitted(job_id="j1"))
    assert await rabbit.exists("other")

    await bus.delete_queue("other")
    assert not await rabbit.exists("other")
    await bus.delete_queue("other")  # missing: no error
    await bus.publish("other", JobSubmitted(job_id="j2"))  # declared again
    assert await bus.pull("other") == JobSubmitted(job_id="j2")

    await bus.delete_queue("intake")  # subscribed: its consumer stops first
    assert not await rabbit.exists("intake")
    assert await bus.ping()
    await bus.publish("work", JobSubmitted(job_id="j3"))
    assert seen == []


# --- lifecycle -----------------------------------------------------------------------------


async def test_ping(rabbit: Rabbit) -> None:
    bus = rabbit.bus()
    assert not await bus.ping()  # not started
    await bus.start()
    assert await bus.ping()
    await bus.stop()
    assert not await bus.ping()


async def test_subscribe_rules(rabbit: Rabbit) -> None:
    _, handle = collector()
    bus = rabbit.bus()
    with pytest.raises(ValueError):
        bus.subscribe("work", handle, concurrency=0)
    bus.subscribe("work", handle)
    with pytest.raises(ValueError):
        bus.subscribe("work", handle)  # one subscription per queue
    await bus.start()
    with pytest.raises(RuntimeError):
        bus.subscribe("intake", handle)


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
async def test_reconnects_after_the_broker_closes_the_connection(
    rabbit: Rabbit, json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    seen, handle = collector()
    bus = rabbit.bus(reconnect_interval=0.2)
    bus.subscribe("intake", handle)
    await bus.start()
    await bus.publish("intake", JobSubmitted(job_id="before"))
    await until(lambda: len(seen) == 1)
    capsys.readouterr()

    # CONNECTION_FORCED, as a broker restart sends it
    closed = await asyncio.to_thread(_close_connections_named, rabbit.prefix)
    assert closed >= 1

    await bus.publish("intake", JobSubmitted(job_id="after"))  # waits for the reconnection
    await until(lambda: len(seen) == 2, timeout=10)  # the consumer came back by itself
    assert seen[1] == JobSubmitted(job_id="after")
    assert await bus.ping()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    loud = [line for line in lines if line["level"] in ("warning", "error", "critical")]
    assert [line["event"] for line in loud] == ["bus_connection_lost"], loud
    assert "CONNECTION_FORCED" in loud[0]["reason"]


class CutProxy:
    """A TCP proxy between a bus and RabbitMQ that can be cut (the broker "goes away" for
    this bus only: open connections are dropped and new ones closed at once, counted) and
    restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.cut = False
        self.refused = 0
        self.attempted = asyncio.Event()  # a connection was refused while cut
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut_off()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut_off(self) -> None:
        self.cut = True
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def restore(self) -> None:
        self.cut = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            self.refused += 1
            self.attempted.set()
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_lost_broker_is_one_warning_and_work_resumes_at_once(
    rabbit: Rabbit, json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = urlsplit(rabbit.url)
    proxy = CutProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    await proxy.start()
    seen: list[str] = []
    arrived = asyncio.Event()
    started: list[str] = []
    both_started = asyncio.Event()
    release = asyncio.Event()
    interrupted = 0
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/?name={rabbit.prefix}"
    bus = RabbitBus(url, prefix=rabbit.prefix, graceful_timeout=5.0)
    rabbit.buses.append(bus)

    async def handle(message: Message) -> None:
        nonlocal interrupted
        assert isinstance(message, JobSubmitted)
        if message.job_id.startswith("slow") and message.job_id not in started:
            started.append(message.job_id)  # the first delivery runs across the cut
            if len(started) == 2:
                both_started.set()
            try:
                await release.wait()
            except asyncio.CancelledError:
                interrupted += 1
                raise
            seen.append(message.job_id)
            arrived.set()
            # published while the broker is away: goes out once it is back
            await bus.publish("intake", JobSubmitted(job_id=f"then-{message.job_id}"))
            return
        seen.append(message.job_id)
        arrived.set()

    async def until_seen(*job_ids: str) -> None:
        async with asyncio.timeout(10):
            while not set(job_ids) <= set(seen):
                arrived.clear()
                await arrived.wait()

    bus.subscribe("intake", handle, concurrency=4)
    loop = asyncio.get_running_loop()
    try:
        await bus.start()
        for job_id in ("before", "slow1", "slow2"):
            await bus.publish("intake", JobSubmitted(job_id=job_id))
        async with asyncio.timeout(10):
            await both_started.wait()
        await until_seen("before")
        capsys.readouterr()  # from here on: the reconnection's lines only

        proxy.cut_off()
        async with asyncio.timeout(10):
            for _ in range(2):  # the bus keeps trying while the broker is away
                proxy.attempted.clear()
                await proxy.attempted.wait()
        assert not await bus.ping(within=2.0)  # health says so meanwhile
        release.set()  # the two handlers the cut caught go on
        await until_seen("slow1", "slow2")
        proxy.restore()
        restored = loop.time()
        await until_seen("then-slow1", "then-slow2")  # their publishes went out
        resumed = loop.time() - restored
        await bus.publish("intake", JobSubmitted(job_id="after"))
        # the broker redelivers the two unacknowledged messages
        async with asyncio.timeout(10):
            while seen.count("slow1") < 2 or seen.count("slow2") < 2 or "after" not in seen:
                arrived.clear()
                await arrived.wait()
        assert await bus.ping()
    finally:
        await bus.stop()
        await proxy.stop()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    print(f"\nwork resumed {resumed:.3f} s after the broker answered again; {len(lines)} lines")

    loud = [line for line in lines if line["level"] in ("warning", "error", "critical")]
    assert [line["event"] for line in loud] == ["bus_connection_lost"], loud
    assert [line["event"] for line in lines if line["event"] == "bus_reconnected"] == [
        "bus_reconnected"
    ]
    assert all("exception" not in line for line in lines)
    assert interrupted == 0  # the lost channel did not cut the handlers short
    # nothing was lost; the unacknowledged messages came again (at least once)
    assert {"before", "after", "then-slow1", "then-slow2"} <= set(seen)
    assert resumed < 3.0  # generous: aio-pika retries every 0.3 s (it waited 5 s before)


def _close_connections_named(name: str) -> int:
    """Force-close (CONNECTION_FORCED, like a broker restart) our own connections only."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if f'"{name}"' in line]
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "mailvet test"],
            capture_output=True,
            timeout=20,
            check=True,
        )
    return len(pids)


def test_asyncapi_json_names_the_subscribed_queues() -> None:
    _, handle = collector()
    bus = RabbitBus(AMQP_URL, prefix="mvdoc")
    bus.subscribe("intake", handle)
    bus.subscribe("work", handle, concurrency=8)

    document = json.loads(bus.asyncapi_json())  # no connection needed
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {"mvdoc.intake", "mvdoc.work"}
    assert document["info"]["title"] == "mailvet"
    messages = document["components"]["messages"].values()
    payloads = [m["payload"] for m in messages]
    assert payloads and all(p["discriminator"]["propertyName"] == "type" for p in payloads)
    assert {"JobSubmitted", "RowChunk", "ChunkDone"} <= set(document["components"]["schemas"])


async def test_a_publish_the_broker_nacks_is_sent_again(rabbit: Rabbit) -> None:
    """A Basic.Nack means the broker did not take the message (RabbitMQ nacked a publish to
    a quorum queue declared a moment before, in tests/cluster's broker cut): it is published
    again, once taken, so it arrives once. The nack is the broker's answer to the first
    publish, put in its place; the second goes to RabbitMQ."""
    bus = rabbit.bus()
    await bus.publish("other", JobSubmitted(job_id="j0"))  # declared, connected
    assert await bus.pull("other") == JobSubmitted(job_id="j0")
    broker = bus._broker
    assert broker is not None
    real = broker.publish
    nacked: list[object] = []

    async def nack_the_first(*args: Any, **kwargs: Any) -> Any:
        if not nacked:
            nacked.append(kwargs.get("queue"))
            return aiormq.spec.Basic.Nack(delivery_tag=1, multiple=False)
        return await real(*args, **kwargs)

    broker.publish = nack_the_first  # type: ignore[method-assign]
    await bus.publish("other", JobSubmitted(job_id="j1"))
    assert nacked == [rabbit.name("other")]
    assert await bus.pull("other") == JobSubmitted(job_id="j1")
    assert await bus.pull("other") is None  # once
