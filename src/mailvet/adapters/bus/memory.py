"""MessageBus in one process: an asyncio.Queue per queue name and consumer tasks.

Nothing is retried: a handler that raises is logged and its message dropped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import msgspec
import structlog

from mailvet.domain.messages import AnyMessage, Message
from mailvet.domain.ports import GiveUp, Handler

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Subscription:
    queue: str
    handler: Handler
    concurrency: int


class MemoryBus:
    def __init__(self, maxsize: int = 0, *, roundtrip: bool = False) -> None:
        """`maxsize` bounds every queue (0: unbounded); `roundtrip` sends each message
        through msgpack and back, as the real bus would."""
        self._maxsize = maxsize
        self._bounds: dict[str, int] = {}
        self._queues: dict[str, asyncio.Queue[Message]] = {}
        self._subscriptions: list[_Subscription] = []
        self._consumers: dict[str, list[asyncio.Task[None]]] = {}
        self._running = False
        self._unfinished = 0  # published and not yet handled, pulled or dropped
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_give_up: GiveUp | None = None
        self._encoder = msgspec.msgpack.Encoder() if roundtrip else None
        self._decoder = msgspec.msgpack.Decoder(AnyMessage) if roundtrip else None

    def set_bound(self, queue: str, maxsize: int) -> None:
        """Bound a queue before its first use: publish then waits while it is full."""
        if queue in self._queues:
            raise RuntimeError(f"queue {queue!r} is already in use")
        self._bounds[queue] = maxsize

    async def publish(self, queue: str, message: Message) -> None:
        if self._encoder is not None and self._decoder is not None:
            message = self._decoder.decode(self._encoder.encode(message))
        self._unfinished += 1
        self._idle.clear()
        try:
            await self._queue(queue).put(message)
        except BaseException:
            self._finished()
            raise

    def subscribe(self, queue: str, handler: Handler, *, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        subscription = _Subscription(queue, handler, concurrency)
        self._subscriptions.append(subscription)
        if self._running:
            self._spawn(subscription)

    async def pull(self, queue: str) -> Message | None:
        q = self._queues.get(queue)
        if q is None or q.empty():
            return None
        message = q.get_nowait()
        q.task_done()
        self._finished()
        return message

    async def depth(self, queue: str) -> int:
        q = self._queues.get(queue)
        return 0 if q is None else q.qsize()

    async def queue_depths(self) -> dict[str, int]:
        """Messages waiting in every queue used so far."""
        return {name: q.qsize() for name, q in self._queues.items()}

    async def ping(self) -> bool:
        """The queues live in this process: they always answer."""
        return True

    async def transfer(self, src: str, dst: str) -> Message | None:
        """Move one message from `src` to `dst` (waits while `dst` is full)."""
        message = await self.pull(src)
        if message is not None:
            await self.publish(dst, message)
        return message

    async def delete_queue(self, queue: str) -> None:
        """Drop the queue, its messages and its subscriptions (consumers are cancelled)."""
        self._subscriptions = [s for s in self._subscriptions if s.queue != queue]
        await _cancel(self._consumers.pop(queue, []))
        q = self._queues.pop(queue, None)
        while q is not None and not q.empty():
            q.get_nowait()
            q.task_done()
            self._finished()

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        for subscription in self._subscriptions:
            self._spawn(subscription)

    async def stop(self) -> None:
        self._running = False
        consumers = [task for tasks in self._consumers.values() for task in tasks]
        self._consumers.clear()
        await _cancel(consumers)

    async def join(self, queue: str) -> None:
        """Wait until every message put on `queue` has been handled or pulled."""
        await self._queue(queue).join()

    async def idle(self) -> None:
        """Wait until every queue is empty and no handler is running."""
        await self._idle.wait()

    def _queue(self, name: str) -> asyncio.Queue[Message]:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = asyncio.Queue(self._bounds.get(name, self._maxsize))
        return q

    def _finished(self) -> None:
        self._unfinished -= 1
        if self._unfinished == 0:
            self._idle.set()

    def _spawn(self, subscription: _Subscription) -> None:
        tasks = self._consumers.setdefault(subscription.queue, [])
        for n in range(subscription.concurrency):
            name = f"bus:{subscription.queue}:{n}"
            tasks.append(asyncio.create_task(self._consume(subscription), name=name))

    async def _consume(self, subscription: _Subscription) -> None:
        q = self._queue(subscription.queue)
        while True:
            message = await q.get()
            try:
                await subscription.handler(message)
            except Exception as exc:
                log.exception(
                    "handler_failed",
                    queue=subscription.queue,
                    message_type=type(message).__name__,
                )
                if self.on_give_up is not None:  # nothing is redelivered in memory
                    try:
                        await self.on_give_up(message, exc)
                    except Exception:
                        log.exception("give_up_hook_failed", message_type=type(message).__name__)
            finally:
                q.task_done()
                self._finished()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
