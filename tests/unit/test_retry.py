"""The one retry policy (adapters/retry.py) and S3Storage, which retries through it: a
transient failure is tried again, a permanent one is not, and time runs out. No test sleeps
nor reads the real time: the policy's pauses go to a recording `sleep` that returns at once,
and its clock is one that only those pauses (and a try that says it took time) move."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import urllib3
from minio.error import S3Error
from structlog.testing import capture_logs

from mailvet.adapters.retry import RetriesExhausted, RetryPolicy
from mailvet.adapters.storage.s3 import S3Storage, StorageUnavailable
from mailvet.bootstrap import build_deps, build_retry_policy
from mailvet.settings import Settings, load_settings

pytestmark = pytest.mark.unit


class Pauses:
    """A `sleep` that records each pause and returns at once, and the clock it moves."""

    def __init__(self) -> None:
        self.taken: list[float] = []
        self.now = 1000.0

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


class Flaky:
    """A call that fails with the given errors, one per try, then answers `result`; each try
    takes `takes` seconds of the `pauses` clock."""

    def __init__(
        self,
        *errors: BaseException,
        result: object = "done",
        takes: float = 0.0,
        pauses: Pauses | None = None,
    ) -> None:
        self.errors = list(errors)
        self.result = result
        self.tries = 0
        self.takes = takes
        self.pauses = pauses
        self.started: list[float] = []  # the clock's reading at each try

    def __call__(self) -> object:
        self.tries += 1
        if self.pauses is not None:
            self.started.append(self.pauses.now - 1000.0)
            self.pauses.now += self.takes
        if self.errors:
            raise self.errors.pop(0)
        return self.result

    async def call(self) -> object:
        return self()


def transient(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError)


def policy(pauses: Pauses, **changes: Any) -> RetryPolicy:
    settings: dict[str, Any] = {"retry_for": 60.0, "jitter": False}
    return RetryPolicy(**{**settings, "sleep": pauses, "clock": pauses.clock, **changes})


# --- the policy -----------------------------------------------------------------------------


async def test_a_transient_failure_is_tried_again_with_growing_pauses() -> None:
    pauses, told = Pauses(), []
    flaky = Flaky(ConnectionResetError(), ConnectionRefusedError(), ConnectionResetError())
    result = await policy(pauses).run(
        flaky.call, transient=transient, on_retry=lambda n, e, p: told.append((n, type(e), p))
    )
    assert result == "done" and flaky.tries == 4
    assert pauses.taken == [0.2, 0.4, 0.8]
    assert told == [
        (1, ConnectionResetError, 0.2),
        (2, ConnectionRefusedError, 0.4),
        (3, ConnectionResetError, 0.8),
    ]


async def test_a_permanent_failure_is_raised_at_once() -> None:
    pauses = Pauses()
    flaky = Flaky(ValueError("no such thing"))
    with pytest.raises(ValueError, match="no such thing"):
        await policy(pauses).run(flaky.call, transient=transient)
    assert flaky.tries == 1 and pauses.taken == []


async def test_it_gives_up_from_the_last_error() -> None:
    pauses = Pauses()
    last = ConnectionRefusedError("third")
    flaky = Flaky(ConnectionResetError(), ConnectionResetError(), last)
    with pytest.raises(RetriesExhausted) as caught:
        await policy(pauses, max_attempts=3).run(flaky.call, transient=transient)
    assert caught.value.attempts == 3 and flaky.tries == 3
    assert caught.value.error is last and caught.value.__cause__ is last
    assert len(pauses.taken) == 2


async def test_no_time_to_retry_means_one_try() -> None:
    pauses = Pauses()
    flaky = Flaky(ConnectionResetError())
    with pytest.raises(RetriesExhausted) as caught:
        await policy(pauses, retry_for=0.0).run(flaky.call, transient=transient)
    assert caught.value.attempts == 1 and pauses.taken == []


async def test_pauses_stay_under_max_delay_and_the_time_left() -> None:
    pauses = Pauses()
    flaky = Flaky(*[ConnectionResetError() for _ in range(8)])
    await policy(pauses, max_delay=1.0).run(flaky.call, transient=transient)
    assert pauses.taken == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0]

    pauses = Pauses()  # the last pause ends at the deadline, not after it
    await policy(pauses, retry_for=5.0, first_delay=30.0).run(
        Flaky(ConnectionResetError()).call, transient=transient
    )
    assert pauses.taken == [5.0]


async def test_the_last_try_starts_at_the_deadline() -> None:
    """Tries take time too: each pause is cut to what is left, and no try starts after
    `retry_for`; the try that ends past it is the last."""
    pauses = Pauses()
    errors = [ConnectionResetError() for _ in range(5)]
    flaky = Flaky(*errors, takes=1.5, pauses=pauses)
    with pytest.raises(RetriesExhausted) as caught:
        await policy(pauses, retry_for=5.0, first_delay=1.0).run(flaky.call, transient=transient)
    assert flaky.started == [0.0, 2.5, 5.0]  # tries of 1.5 s, pauses of 1.0 then 1.0 (cut)
    assert pauses.taken == [1.0, 1.0]
    assert caught.value.attempts == 3 and caught.value.elapsed == 6.5


async def test_jittered_pauses_are_drawn_below_the_backoff() -> None:
    pauses = Pauses()
    flaky = Flaky(*[ConnectionResetError() for _ in range(6)])
    await policy(pauses, jitter=True).run(flaky.call, transient=transient)
    ceilings = [0.2, 0.4, 0.8, 1.6, 3.2, 5.0]
    assert all(0 <= p <= c for p, c in zip(pauses.taken, ceilings, strict=True))


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(retry_for=-1)
    with pytest.raises(ValueError):
        RetryPolicy(retry_for=1, first_delay=-0.1)


# --- S3Storage --------------------------------------------------------------------------------


def s3_error(code: str, status: int) -> S3Error:
    response = urllib3.HTTPResponse(status=status)
    return S3Error(response, code, "message", "/bucket/key", "req", "host")


def storage(pauses: Pauses, **changes: Any) -> S3Storage:
    """No request leaves: each test hands `_run` its own blocking call."""
    return S3Storage("127.0.0.1:9", "a", "b", "some-bucket", retry=policy(pauses, **changes))


async def test_s3_retries_a_connection_lost_and_logs_a_warning_per_pause() -> None:
    pauses = Pauses()
    flaky = Flaky(
        urllib3.exceptions.ProtocolError("Connection aborted"),
        s3_error("SlowDown", 503),
        result=b"contents",
    )
    with capture_logs() as logs:
        assert await storage(pauses)._run("get_bytes", flaky, "k") == b"contents"
    assert flaky.tries == 3 and pauses.taken == [0.2, 0.4]
    warnings = [e for e in logs if e["event"] == "s3_retry"]
    assert [(w["op"], w["attempt"], w["retry_in"], w["log_level"]) for w in warnings] == [
        ("get_bytes", 1, 0.2, "warning"),
        ("get_bytes", 2, 0.4, "warning"),
    ]
    assert "SlowDown" in warnings[1]["error"]


@pytest.mark.parametrize(
    "error",
    [s3_error("AccessDenied", 403), s3_error("NoSuchKey", 404), FileNotFoundError("no/such/file")],
)
async def test_s3_does_not_retry_what_retrying_cannot_change(error: BaseException) -> None:
    pauses = Pauses()
    flaky = Flaky(error)
    with pytest.raises(type(error)):
        await storage(pauses)._run("get_bytes", flaky, "k")
    assert flaky.tries == 1 and pauses.taken == []


async def test_s3_gives_up_as_storage_unavailable() -> None:
    pauses = Pauses()
    refused = ConnectionRefusedError("Connection refused")
    flaky = Flaky(ConnectionResetError(), refused)
    with pytest.raises(StorageUnavailable) as caught:
        await storage(pauses, max_attempts=2)._run("put_bytes", flaky, "k")
    assert caught.value.op == "put_bytes" and caught.value.attempts == 2
    assert "Connection refused" in str(caught.value) and caught.value.__cause__ is refused


async def test_s3_a_vanished_bucket_is_made_again_by_the_next_operation() -> None:
    s3 = storage(Pauses())
    s3._bucket_ready = True
    with pytest.raises(S3Error):
        await s3._run("get_bytes", Flaky(s3_error("NoSuchBucket", 404)), "k")
    assert s3._bucket_ready is False


def test_s3_retries_through_the_policy_it_is_given() -> None:
    given = RetryPolicy(retry_for=7.0)
    assert S3Storage("127.0.0.1:9", "a", "b", "some-bucket", retry=given).retry is given
    assert S3Storage("127.0.0.1:9", "a", "b", "some-bucket").retry == RetryPolicy()


# --- one policy per process (bootstrap) -------------------------------------------------------


def s3_settings(tmp_path: Path, **env: str) -> Settings:
    """S3 storage (nothing is sent: the storage connects on first use), embedded SQLite."""
    return load_settings({"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_STORAGE": "s3", **env})


def test_the_policy_comes_from_the_settings(tmp_path: Path) -> None:
    assert build_retry_policy(s3_settings(tmp_path, MAILVET_S3_RETRY_FOR="7.5")).retry_for == 7.5
    # an adapter built without a policy (a test, a tool) waits as long as the default setting
    assert RetryPolicy().retry_for == Settings().storage.s3_retry_for


async def test_build_deps_hands_its_one_policy_to_the_storage(tmp_path: Path) -> None:
    deps = await build_deps(s3_settings(tmp_path, MAILVET_S3_RETRY_FOR="7.5"), syntax_pool=None)
    try:
        assert isinstance(deps.storage, S3Storage)
        assert deps.storage.retry == RetryPolicy(retry_for=7.5)
    finally:
        await deps.close()

    given = RetryPolicy(retry_for=3.0)  # overridable, like every adapter
    deps = await build_deps(s3_settings(tmp_path), syntax_pool=None, retry=given)
    try:
        assert isinstance(deps.storage, S3Storage) and deps.storage.retry is given
    finally:
        await deps.close()
