"""Trying a call again while the service behind it is unreachable: one policy, on tenacity.

S3Storage and SqlJobRepository retry through a `RetryPolicy` (the RabbitMQ bus keeps
aio-pika's reconnect wait). A call that fails with an error the caller calls transient is
tried again after an exponential, jittered pause (`first_delay`, doubled each time up to
`max_delay`) until `retry_for` seconds have passed since the first try: the last pause is cut
so that the last try starts at that deadline, never after it. Then `RetriesExhausted` is
raised from the last error. Any other error is raised at once, untouched.

Time is read from `clock` and the pause goes through `sleep`, so a test passes a clock that
only its sleep moves forward: the pauses are recorded, return at once, and the deadline is
met in that clock's time (`jitter=False` makes the pauses exact). The default, 120 s, is
MAILVET_S3_RETRY_FOR's; `bootstrap.build_retry_policy` builds the one policy of a process
from the settings, and build_deps hands it to both adapters. tenacity is imported by the
first call made through a policy, not when one is built.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, TypeVar

if TYPE_CHECKING:
    import tenacity

T = TypeVar("T")

OnRetry = Callable[[int, BaseException, float], None]
"""Told (attempt number, its error, seconds until the next try) before each pause."""


class RetriesExhausted(Exception):
    """A call kept failing with transient errors for the policy's whole `retry_for`."""

    def __init__(self, attempts: int, elapsed: float, error: BaseException) -> None:
        self.attempts = attempts
        self.elapsed = elapsed
        self.error = error
        super().__init__(f"failed {attempts} time(s) over {elapsed:.1f} s: {error!r}")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    retry_for: float = 120.0  # seconds after the first try that a new try may start
    first_delay: float = 0.2  # seconds of the first pause (before jitter)...
    max_delay: float = 5.0  # ...doubled each time up to this
    jitter: bool = True  # each pause drawn between 0 and its value (AWS's "full jitter")
    max_attempts: int | None = None  # also stop after this many tries
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic  # seconds, for the deadline

    def __post_init__(self) -> None:
        if self.retry_for < 0:
            raise ValueError("retry_for must be >= 0")
        if self.first_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        transient: Callable[[BaseException], bool],
        on_retry: OnRetry | None = None,
    ) -> T:
        """`await call()`, tried again after each transient error while time is left."""
        import tenacity  # here, not at the top: building a policy (bootstrap) imports nothing

        started = self.clock()

        def elapsed() -> float:
            return self.clock() - started

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(transient),
            stop=self._stop(elapsed),
            wait=self._wait(elapsed),
            sleep=self.sleep,
            before_sleep=_tell(on_retry) if on_retry is not None else None,
            retry_error_callback=_give_up(elapsed),
        )

        async def attempt() -> T:  # tenacity awaits only what a coroutine function returns
            return await call()

        result: T = await retrying(attempt)
        return result

    def _stop(self, elapsed: Callable[[], float]) -> Callable[[tenacity.RetryCallState], bool]:
        def stop(state: tenacity.RetryCallState) -> bool:
            if self.max_attempts is not None and state.attempt_number >= self.max_attempts:
                return True
            return elapsed() >= self.retry_for

        return stop

    def _wait(self, elapsed: Callable[[], float]) -> Callable[[tenacity.RetryCallState], float]:
        import tenacity

        backoff: tenacity.wait.wait_base = (
            tenacity.wait_random_exponential(multiplier=self.first_delay, max=self.max_delay)
            if self.jitter
            else tenacity.wait_exponential(multiplier=self.first_delay, max=self.max_delay)
        )

        def wait(state: tenacity.RetryCallState) -> float:
            return max(0.0, min(backoff(state), self.retry_for - elapsed()))

        return wait


def _tell(on_retry: OnRetry) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        pause = state.next_action.sleep if state.next_action is not None else 0.0
        if error is not None:
            on_retry(state.attempt_number, error, pause)

    return before_sleep


def _give_up(elapsed: Callable[[], float]) -> Callable[[tenacity.RetryCallState], NoReturn]:
    def give_up(state: tenacity.RetryCallState) -> NoReturn:
        error = state.outcome.exception() if state.outcome is not None else None
        if error is None:  # never: only failed tries are retried
            raise RuntimeError("retries ran out without a failed try")
        raise RetriesExhausted(state.attempt_number, elapsed(), error) from error

    return give_up
