"""MessageBus on RabbitMQ: FastStream's RabbitBroker for consuming and publishing, aio-pika
where FastStream has no API (basic.get, queue.delete, the dead-letter topology).

Topology, for a `prefix` (default "mailvet"):

- every port queue `name` is the RabbitMQ queue `<prefix>.<name>`: durable, quorum,
  `x-delivery-limit = delivery_limit`, dead-lettering to the fanout exchange `<prefix>.dlx`;
- `<prefix>.dlx` (durable, fanout) is bound to `<prefix>.dead` (durable quorum queue), where
  undecodable messages and messages whose handler kept failing end up.

A queue is declared the first time this process publishes to it, subscribes to it or pulls
from it (idempotent; cached until a reconnection, when it is declared again on next use).

Delivery is at least once: a subscription acks a message after its handler returned, nacks
it with requeue when the handler raised (the quorum queue dead-letters it once it has been
returned `delivery_limit` times, i.e. after `delivery_limit + 1` deliveries) and rejects an
undecodable body at once (dead-lettered). Publishes are persistent and wait for the
broker's confirm; an unroutable publish (queue gone) raises instead of vanishing.

A lost connection (broker restart, network cut) is one warning line, `bus_connection_lost`,
and one info line, `bus_reconnected`, when aio-pika has reconnected (it tries every
`reconnect_interval`, 0.3 s by default, so work resumes within about that of the broker
answering again). aio-pika's and aiormq's own account of it (a dozen lines, tracebacks,
"Callback ... error" at error level) is demoted to debug, and handlers that the lost channel
interrupted run on to their end (what they publish goes out once the connection is back;
their messages are redelivered, and meet idempotent handlers), and are not errors. A
publish, pull or transfer that meets the lost connection waits for `bus_reconnected` before
it touches a channel again (touching them while the connection was still closing held the
reconnection back for as long as the caller waited). Six roles through a cut proxy
(bench/broker_cut_bench.py): back 0.28-0.38 s (median) after the broker answers, the job
moving again after 0.45 s.

Message bodies are never logged: they hold email addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import aio_pika
import aiormq
import msgspec
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, QueueType, RabbitBroker, RabbitQueue
from faststream.rabbit.subscriber import RabbitSubscriber
from faststream.specification import AsyncAPI
from pamqp import commands as spec

from mailvet import metrics
from mailvet.domain.messages import AnyMessage, Message
from mailvet.domain.ports import GiveUp, Handler
from mailvet.logs import LibraryChatter

_log = structlog.get_logger(__name__)

CONTENT_TYPE = "application/msgpack"
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)
# the connection (or the channel with it) is gone: aio-pika is reconnecting
_DISCONNECTED = (aiormq.exceptions.ChannelInvalidStateError, ConnectionError)
_T = TypeVar("_T")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def quiet_library_chatter() -> None:
    """Put LibraryChatter on every handler of the root logger (idempotent). On the handler,
    not on the libraries' loggers: a handler sees the records of every aio_pika.* and
    aiormq.* logger, those created later included. mailvet's own RootHandler has it from
    the start (mailvet.logs)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, LibraryChatter) for f in handler.filters):
            handler.addFilter(LibraryChatter(floor=handler.level))


@dataclass(eq=False)
class _Subscription:
    queue: str
    handler: Handler
    concurrency: int
    subscriber: RabbitSubscriber | None = field(default=None, repr=False)


class RabbitBus:
    """The MessageBus port on RabbitMQ (see the module docstring for the topology)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "mailvet",
        delivery_limit: int = 5,
        prefetch: int | None = None,
        logger: Any = None,
        graceful_timeout: float = 30.0,
        reconnect_interval: float = 0.3,
        reconnect_timeout: float = 60.0,
    ) -> None:
        """`prefetch`: unacknowledged messages per subscription (default and minimum: its
        concurrency); `graceful_timeout`: how long `stop()` waits for running handlers;
        `reconnect_interval`: pause between reconnection attempts; `reconnect_timeout`: how
        long publish/pull/transfer/delete_queue wait for a lost connection to come back
        before they raise."""
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        if prefetch is not None and prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._url = url
        self._prefix = prefix
        self._delivery_limit = delivery_limit
        self._prefetch = prefetch
        self._log = logger if logger is not None else _log
        self._graceful_timeout = graceful_timeout
        self._reconnect_interval = reconnect_interval
        self._reconnect_timeout = reconnect_timeout

        self.dlx = f"{prefix}.dlx"
        self.dead_queue = f"{prefix}.dead"

        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(AnyMessage)
        self._subscriptions: dict[str, _Subscription] = {}
        self._broker: RabbitBroker | None = None
        self._running = False
        self._stopped = False  # after stop(): no lazy reconnection until start()
        self.on_give_up: GiveUp | None = None
        self._connect_lock = asyncio.Lock()
        self._declare_lock = asyncio.Lock()
        self._admin: AbstractRobustChannel | None = None
        self._declared: dict[str, AbstractQueue] = {}
        self._topology_ready = False
        self._watched: aio_pika.RobustConnection | None = None  # has our close callback
        self._lost_at: float | None = None  # when the connection was lost, until restored
        self._detached: set[asyncio.Future[None]] = set()  # handlers a lost channel left
        self._stopping = False
        self._lost_event = asyncio.Event()  # set while the connection is lost
        self._back_event = asyncio.Event()  # set while it is not
        self._back_event.set()
        quiet_library_chatter()

    # --- naming and declarations ---------------------------------------------------------

    def queue_name(self, queue: str) -> str:
        """The RabbitMQ name of a port queue."""
        return f"{self._prefix}.{queue}"

    def _queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": QueueType.QUORUM.value,
            "x-delivery-limit": self._delivery_limit,
            "x-dead-letter-exchange": self.dlx,
        }

    def _rabbit_queue(self, queue: str) -> RabbitQueue:
        # the same name and arguments as _declare(): a mismatch would be PRECONDITION_FAILED
        return RabbitQueue(
            self.queue_name(queue),
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={
                "x-delivery-limit": self._delivery_limit,
                "x-dead-letter-exchange": self.dlx,
            },
        )

    async def _declare(self, queue: str) -> AbstractQueue:
        """Declare `<prefix>.<queue>` (and the dead-letter topology) once; the returned
        queue object lives on the bus's own channel (used for basic.get)."""
        name = self.queue_name(queue)
        declared = self._declared.get(name)
        if declared is not None:
            return declared
        async with self._declare_lock:
            declared = self._declared.get(name)
            if declared is not None:
                return declared
            channel = await self._channel()
            await self._ensure_topology(channel)
            # robust=False: aio-pika must not re-declare it after a reconnection (a queue
            # deleted meanwhile, e.g. a finished job's, would come back); the cache is
            # cleared on reconnection instead, so the next use declares it again.
            declared = await channel.declare_queue(
                name, durable=True, arguments=self._queue_arguments(), robust=False
            )
            self._declared[name] = declared
            return declared

    async def _ensure_topology(self, channel: AbstractRobustChannel) -> None:
        if self._topology_ready:
            return
        exchange = await channel.declare_exchange(
            self.dlx, aio_pika.ExchangeType.FANOUT, durable=True, robust=False
        )
        dead = await channel.declare_queue(
            self.dead_queue,
            durable=True,
            arguments={"x-queue-type": QueueType.QUORUM.value},
            robust=False,
        )
        await dead.bind(exchange, routing_key="", robust=False)
        self._topology_ready = True

    # --- connection ------------------------------------------------------------------------

    def _new_broker(self) -> RabbitBroker:
        return RabbitBroker(
            self._url,
            # confirms on FastStream's own publishing channel (the default, made explicit),
            # and an unroutable (mandatory) publish raises instead of being dropped
            default_channel=Channel(publisher_confirms=True, on_return_raises=True),
            graceful_timeout=self._graceful_timeout,
            reconnect_interval=self._reconnect_interval,
            on_reconnected=[self._on_reconnected],
            ack_policy=AckPolicy.MANUAL,
            apply_types=False,  # handlers get the RabbitMessage itself (see _raw_decoder)
            logger=self._log,
            log_level=logging.DEBUG,  # FastStream's per-message "Received"/"Processed"
            description="mailvet pipeline bus: msgpack-encoded mailvet.domain.messages",
        )

    def _broker_or_new(self) -> RabbitBroker:
        if self._broker is None:
            if self._stopped:
                raise RuntimeError("the bus is stopped")
            self._broker = self._new_broker()
        return self._broker

    async def _connection(self) -> aio_pika.RobustConnection:
        async with self._connect_lock:
            connection = await self._broker_or_new().connect()
        if connection is not self._watched:
            self._watched = connection
            connection.close_callbacks.add(self._on_connection_closed)
        return connection

    def _on_connection_closed(self, connection: Any, exc: BaseException | None = None) -> None:
        """Called on every close of the underlying connection, ours too (stop())."""
        if self._stopped or self._lost_at is not None or getattr(connection, "close_called", False):
            return
        self._lost_at = asyncio.get_running_loop().time()
        self._back_event.clear()
        self._lost_event.set()
        self._log.warning(
            "bus_connection_lost",
            prefix=self._prefix,
            error=type(exc).__name__ if exc is not None else "closed",
            reason=str(exc)[:200] if exc is not None else "",  # e.g. the broker's reply text
            retry_every=self._reconnect_interval,
        )

    async def _channel(self) -> AbstractRobustChannel:
        """The bus's own channel (declarations, basic.get, deletions)."""
        connection = await self._connection()
        if self._admin is None:
            # robust: aio-pika reopens it after a channel error or a reconnection
            self._admin = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return self._admin

    async def _retrying(self, operation: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run `call`; while the connection is lost (and aio-pika reconnects in the
        background), wait for the channels to be restored and run it again, up to
        `reconnect_timeout`; a publish the broker nacked is sent again too, after a short
        pause. A retried publish may duplicate a message (at least once)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._reconnect_timeout
        while True:
            try:
                return await call()
            except aiormq.exceptions.PublishError:
                raise  # returned (no route): the caller's to handle, not a broker's refusal
            except aiormq.exceptions.DeliveryError:
                # a Basic.Nack: the broker did not take the message (a quorum queue just
                # declared, whose leader is not up yet, does that): publish it again after a
                # pause, until the deadline, as RabbitMQ asks of publishers
                if self._broker is None or loop.time() >= deadline:
                    raise
                self._log.info("bus_publish_nacked", operation=operation)
                await asyncio.sleep(min(self._reconnect_interval, 0.5))
            except _DISCONNECTED as exc:
                if self._broker is None or loop.time() >= deadline:
                    raise
                # the one warning is bus_connection_lost (_on_connection_closed)
                self._log.debug(
                    "bus_waiting_for_connection", operation=operation, error=type(exc).__name__
                )
                try:
                    async with asyncio.timeout(max(0.0, deadline - loop.time())):
                        await self._back_again()
                except TimeoutError:
                    raise exc from None

    async def _back_again(self) -> None:
        """After a disconnected error: wait for aio-pika to report the loss (a channel can
        fail before the connection's close is reported), then for its reconnection, and only
        then ask the channels (asking them while the connection is still closing kept the
        close, and so the reconnection, waiting for as long as the asker waited)."""
        if self._lost_at is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(self._reconnect_interval, 0.5)):
                    await self._lost_event.wait()
        if self._lost_at is not None:
            await self._back_event.wait()
        await self._ready()

    async def _ready(self) -> None:
        """Wait until the connection, the bus channel and FastStream's publishing channel
        are (re)open."""
        broker = self._broker
        if broker is None:
            raise RuntimeError("the bus is stopped")
        channels = [await self._channel(), await broker.config.channel_manager.get_channel()]
        for channel in channels:
            await channel.ready()

    def _on_reconnected(self, connection: Any) -> None:
        # the broker may have lost its definitions: declare again on next use
        self._declared.clear()
        self._topology_ready = False
        lost_at, self._lost_at = self._lost_at, None
        self._lost_event.clear()
        self._back_event.set()
        down = 0.0 if lost_at is None else asyncio.get_running_loop().time() - lost_at
        metrics.bus_reconnected()
        self._log.info("bus_reconnected", prefix=self._prefix, down_seconds=round(down, 3))

    # --- MessageBus ------------------------------------------------------------------------

    async def publish(self, queue: str, message: Message) -> None:
        body, tag = self._encoder.encode(message), _tag(message)

        async def publish() -> None:
            await self._declare(queue)
            await self._publish_body(queue, body, tag)

        await self._retrying("publish", publish)

    async def _publish_body(self, queue: str, body: bytes, tag: str) -> None:
        await self._connection()
        if self._broker is None:  # stopped meanwhile
            raise RuntimeError("the bus is stopped")
        name = self.queue_name(queue)
        try:
            confirm = await self._broker.publish(
                body,
                queue=name,
                persist=True,
                mandatory=True,
                content_type=CONTENT_TYPE,
                message_type=tag,
                message_id=uuid.uuid4().hex,  # aiormq matches a Basic.Return by message id
            )
        except aiormq.exceptions.PublishError:
            # returned (NO_ROUTE): the queue is gone; declare it again next time
            self._declared.pop(name, None)
            raise
        if not isinstance(confirm, spec.Basic.Ack):
            raise aiormq.exceptions.DeliveryError(None, confirm)  # type: ignore[arg-type]

    def subscribe(self, queue: str, handler: Handler, *, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self._running:
            raise RuntimeError("subscribe() must be called before start()")
        if queue in self._subscriptions:
            raise ValueError(f"queue {queue!r} already has a subscription")
        self._subscriptions[queue] = _Subscription(queue, handler, concurrency)

    async def pull(self, queue: str) -> Message | None:
        """basic.get one message, decode it, ack it. An undecodable message is rejected
        (dead-lettered) and the next one is tried: None means the queue is empty."""

        async def pull() -> Message | None:
            q = await self._declare(queue)
            while True:
                incoming = await q.get(no_ack=False, fail=False)
                if incoming is None:
                    return None
                message = await self._decode_or_reject(queue, incoming)
                if message is not None:
                    await incoming.ack()
                    return message

        return await self._retrying("pull", pull)

    async def transfer(self, src: str, dst: str) -> Message | None:
        """basic.get from `src` (unacked), publish to `dst` (persistent, confirmed), then ack
        on `src`. If the publish fails the `src` message is requeued and the error raised.

        Note: a requeue counts as a delivery on the quorum queue `src`; after a lost
        connection the whole move is tried again (`dst` may then get a duplicate)."""
        return await self._retrying("transfer", lambda: self._transfer(src, dst))

    async def _transfer(self, src: str, dst: str) -> Message | None:
        source = await self._declare(src)
        await self._declare(dst)
        while True:
            incoming = await source.get(no_ack=False, fail=False)
            if incoming is None:
                return None
            message = await self._decode_or_reject(src, incoming)
            if message is None:
                continue
            try:
                await self._publish_body(dst, incoming.body, _tag(message))
            except BaseException as exc:
                with contextlib.suppress(Exception):  # channel gone: the broker requeues it
                    await incoming.nack(requeue=True)
                # a lost connection has its one warning (bus_connection_lost), and the move is
                # tried again once it is back (_retrying): only another failure warns here
                lost = isinstance(exc, _DISCONNECTED)
                (self._log.debug if lost else self._log.warning)(
                    "transfer_failed",
                    src=self.queue_name(src),
                    dst=self.queue_name(dst),
                    error=type(exc).__name__,
                )
                raise
            await incoming.ack()
            return message

    async def depth(self, queue: str) -> int:
        """Messages ready in the queue (a passive declare's message count)."""

        async def depth() -> int:
            await self._declare(queue)
            channel = await self._channel()
            declared = await channel.declare_queue(
                self.queue_name(queue), passive=True, robust=False
            )
            return int(declared.declaration_result.message_count or 0)

        return await self._retrying("depth", depth)

    async def queue_depths(self) -> dict[str, int]:
        """Messages ready in every queue this process has declared (by port name), from
        passive declares on a throw-away channel: a queue deleted meanwhile is forgotten,
        never declared again."""
        if self._broker is None:
            return {}
        connection = await self._connection()
        depths: dict[str, int] = {}
        cut = len(self._prefix) + 1
        channel: AbstractRobustChannel | None = None
        try:
            for name in list(self._declared):
                if channel is None or channel.is_closed:  # a missing queue closes it
                    channel = await connection.channel(publisher_confirms=False)
                try:
                    declared = await channel.declare_queue(name, passive=True, robust=False)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    self._declared.pop(name, None)
                    continue
                depths[name[cut:]] = int(declared.declaration_result.message_count or 0)
        finally:
            if channel is not None and not channel.is_closed:
                await channel.close()
        return depths

    async def delete_queue(self, queue: str) -> None:
        """Delete `<prefix>.<queue>` with its messages (no error if it does not exist). A
        subscription on it is stopped and forgotten."""
        subscription = self._subscriptions.pop(queue, None)
        await self._retrying("delete_queue", lambda: self._delete_queue(queue, subscription))

    async def _delete_queue(self, queue: str, subscription: _Subscription | None) -> None:
        name = self.queue_name(queue)
        channel = await self._channel()
        if subscription is not None and subscription.subscriber is not None:
            subscriber = subscription.subscriber
            if subscriber.running:
                await subscriber.stop()  # cancels the consumer
            if self._broker is not None:
                # delete through the subscriber's robust channel too, so that aio-pika
                # forgets the queue and does not re-declare it after a reconnection
                channel = await self._broker.config.channel_manager.get_channel(subscriber.channel)
        self._declared.pop(name, None)
        with contextlib.suppress(aiormq.exceptions.ChannelNotFoundEntity):
            await channel.queue_delete(name)

    async def start(self) -> None:
        if self._running:
            return
        self._stopped = False
        broker = self._broker_or_new()
        for subscription in self._subscriptions.values():
            if subscription.subscriber is None:
                subscription.subscriber = self._register(broker, subscription)
        await self._ensure_topology(await self._channel())  # connects
        for subscription in self._subscriptions.values():
            await self._declare(subscription.queue)
        await broker.start()
        self._running = True
        self._log.info(
            "bus_started",
            prefix=self._prefix,
            subscriptions=sorted(self._subscriptions),
        )

    async def stop(self) -> None:
        """Stop consuming, wait (up to graceful_timeout) for running handlers, close.

        Handlers still running may publish while they finish: the broker stays usable
        until FastStream has drained them."""
        broker = self._broker
        self._running = False
        self._stopping = True  # the channels we close now are not lost ones
        if self._detached:  # handlers that outlived their channel: same grace
            _, late = await asyncio.wait(set(self._detached), timeout=self._graceful_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if broker is not None:
            await broker.stop()
        self._broker = None
        self._stopped = True
        self._admin = None
        self._declared.clear()
        self._topology_ready = False
        for subscription in self._subscriptions.values():
            subscription.subscriber = None
        self._stopping = False
        if broker is not None:
            self._log.info("bus_stopped", prefix=self._prefix)

    # --- extras ----------------------------------------------------------------------------

    async def ping(self, within: float = 5.0) -> bool:
        """Health: the connection is open and a passive declare of the dead-letter queue
        succeeds (on a throw-away channel, so a failure cannot disturb the others)."""
        broker = self._broker
        if broker is None:
            return False
        try:
            async with asyncio.timeout(within):
                if not await broker.ping(within):  # False until connected
                    return False
                connection = await self._connection()
                channel = await connection.channel(publisher_confirms=False)
                try:
                    await channel.declare_queue(self.dead_queue, passive=True, robust=False)
                finally:
                    await channel.close()
        except Exception as exc:
            # the answer is the report (a lost connection has its own warning)
            self._log.debug("bus_ping_failed", error=type(exc).__name__)
            return False
        return True

    def asyncapi_json(self) -> str:
        """AsyncAPI 3.0 document of the subscribed queues, payloads as msgspec schemas."""
        broker = self._new_broker()
        subscriptions = list(self._subscriptions.values())
        for subscription in subscriptions:
            self._register(broker, subscription)
        document = json.loads(AsyncAPI(broker, title="mailvet").to_specification().to_json())
        payload, schemas = msgspec.json.schema_components(
            (AnyMessage,), ref_template="#/components/schemas/{name}"
        )
        components = document.setdefault("components", {})
        components.setdefault("schemas", {}).update(schemas)
        for message in components.get("messages", {}).values():
            ref = message.get("payload", {}).get("$ref", "")
            components["schemas"].pop(ref.rpartition("/")[2], None)
            message["payload"] = payload[0]
            message["contentType"] = CONTENT_TYPE
        document["defaultContentType"] = CONTENT_TYPE
        return json.dumps(document)

    # --- consuming -------------------------------------------------------------------------

    def _register(self, broker: RabbitBroker, subscription: _Subscription) -> RabbitSubscriber:
        prefetch = max(self._prefetch or 0, subscription.concurrency)
        name = self.queue_name(subscription.queue)
        subscriber = broker.subscriber(
            self._rabbit_queue(subscription.queue),
            # its own channel: prefetch is per channel in FastStream, and aio-pika runs
            # every delivery in its own task, so prefetch also bounds the handlers
            # running at once; the semaphore in _consumer() enforces `concurrency`
            channel=Channel(prefetch_count=prefetch),
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_decoder,
            title=name,
            description=f"msgpack mailvet.domain.messages.AnyMessage, up to "
            f"{subscription.concurrency} handled at once",
        )
        subscriber(self._consumer(subscription))
        return subscriber

    def _consumer(self, subscription: _Subscription) -> Any:
        semaphore = asyncio.Semaphore(subscription.concurrency)
        queue = subscription.queue
        handler = subscription.handler
        log = self._log

        async def consume(message: Any) -> None:  # a faststream RabbitMessage
            # the handler runs in a task of ours: aio-pika cancels the deliveries of a
            # channel that goes away, and a handler cut short there is work lost
            work = asyncio.ensure_future(settle(message))
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                if not self._lost(message.raw_message):
                    work.cancel()  # a stop, not a lost channel
                    raise
                # Lost channel: let the handler finish (what it publishes goes out once the
                # connection is back; its ack fails, and the broker's redelivery of the
                # message meets an idempotent handler). Nothing failed: FastStream would log
                # the cancellation as an error.
                self._detached.add(work)
                work.add_done_callback(self._detached_done)
                log.debug("handler_detached", queue=self.queue_name(queue))

        async def handle(message: Any) -> None:
            decoded = await self._decode_or_reject(queue, message.raw_message)
            if decoded is None:
                return
            async with semaphore:
                try:
                    await handler(decoded)
                except Exception as exc:
                    deliveries = _delivery_count(message.raw_message) + 1
                    last = deliveries > self._delivery_limit
                    log.exception(
                        "handler_failed",
                        queue=self.queue_name(queue),
                        message_type=type(decoded).__name__,
                        delivery=deliveries,
                        dead_letter=last,
                    )
                    await message.nack(requeue=True)
                    if last:
                        log.warning(
                            "message_dead_lettered",
                            queue=self.queue_name(queue),
                            reason="delivery_limit",
                            message_type=type(decoded).__name__,
                        )
                        await self._give_up(decoded, exc)
                    return
            await message.ack()

        async def settle(message: Any) -> None:
            try:
                await handle(message)
            except _DISCONNECTED as exc:  # ack/nack on a channel that went away
                log.debug("settle_failed", queue=self.queue_name(queue), error=type(exc).__name__)

        consume.__name__ = f"handle_{queue}"
        return consume

    def _detached_done(self, work: asyncio.Future[None]) -> None:
        self._detached.discard(work)
        if not work.cancelled() and (exc := work.exception()) is not None:
            self._log.error("handler_failed", error=type(exc).__name__, detached=True)

    def _lost(self, incoming: AbstractIncomingMessage) -> bool:
        """Is the connection, or the channel `incoming` came on, gone (not closed by
        stop())?"""
        if self._stopping:
            return False
        if self._lost_at is not None:
            return True
        try:
            incoming.channel  # noqa: B018 (raises when the channel is closed)
        except aiormq.exceptions.ChannelInvalidStateError:
            return True
        return False

    async def _give_up(self, message: Message, exc: Exception) -> None:
        if self.on_give_up is not None:
            try:
                await self.on_give_up(message, exc)
            except Exception:
                self._log.exception("give_up_hook_failed", message_type=type(message).__name__)

    async def _decode_or_reject(
        self, queue: str, incoming: AbstractIncomingMessage
    ) -> Message | None:
        try:
            return cast(Message, self._decoder.decode(incoming.body))
        except _DECODE_ERRORS as exc:
            await incoming.reject(requeue=False)
            self._log.warning(
                "message_dead_lettered",
                queue=self.queue_name(queue),
                reason="undecodable",
                error=_scrub(exc),
                size=len(incoming.body),
            )
            return None


async def _raw_decoder(message: Any) -> Any:
    """FastStream decoder returning the RabbitMessage itself: the handler decodes the body
    (msgpack) and acks, nacks or rejects it (AckPolicy.MANUAL)."""
    return message


def _tag(message: Message) -> str:
    return str(type(message).__struct_config__.tag)


def _delivery_count(incoming: AbstractIncomingMessage) -> int:
    """Times the quorum queue has had this message returned before this delivery."""
    count = (incoming.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0


def _scrub(exc: Exception) -> str:
    """The decode error without quoted values (they could be parts of an address)."""
    return _QUOTED.sub("'…'", str(exc))[:200]
