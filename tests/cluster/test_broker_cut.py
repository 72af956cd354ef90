"""Six roles on RabbitMQ, reached through a TCP proxy that is cut in the middle of a job and
restored (the broker "goes away" for this cluster only, not for everyone on the machine):
each role writes one warning line for it, in JSON, no traceback and no error; work resumes
right after the broker answers again; the result is byte for byte the undisturbed one."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from tests.cluster.harness import AMQP_URL, BACK_END, Cluster
from tests.cluster.test_reliability import busy, finish_and_compare
from tests.integration.test_rabbit_bus import CutProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

T = TypeVar("T")


class ProxyThread:
    """CutProxy on an event loop of its own (the roles are other processes)."""

    def __init__(self) -> None:
        parts = urlsplit(AMQP_URL)
        self.proxy = CutProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run(self.proxy.start())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        parts = urlsplit(AMQP_URL)
        return parts._replace(netloc=f"guest:guest@127.0.0.1:{self.proxy.port}").geturl()

    def cut(self) -> None:
        self.loop.call_soon_threadsafe(self.proxy.cut_off)

    def restore(self) -> None:
        self.loop.call_soon_threadsafe(self.proxy.restore)

    def wait_refused(self, attempts: int) -> None:
        async def refused() -> None:
            while self.proxy.refused < attempts:
                self.proxy.attempted.clear()
                await self.proxy.attempted.wait()

        self.run(refused())

    def close(self) -> None:
        self.run(self.proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        # a loop left open leaks its self-pipe: the ResourceWarning of its sockets then fails
        # whichever later test the garbage collector happens to run in
        self.loop.close()


@pytest.fixture
def proxy() -> Iterator[ProxyThread]:
    thread = ProxyThread()
    try:
        yield thread
    finally:
        thread.close()


def test_a_broker_cut_mid_job_is_one_warning_per_role_and_work_resumes_at_once(
    cluster: Cluster, proxy: ProxyThread, job_file: Path, undisturbed: bytes, tmp_path: Path
) -> None:
    cluster.extra_env = {**cluster.extra_env, "MAILVET_RABBITMQ_URL": proxy.url}
    roles = (*BACK_END, "web")
    cluster.start_all(roles)
    job_id = cluster.submit(job_file)
    cluster.wait_for(job_id, busy)

    proxy.cut()
    proxy.wait_refused(2 * len(roles))  # the roles keep trying while the broker is away
    stalled = int(cluster.job(job_id)["rows_done"])  # type: ignore[call-overload]
    proxy.restore()
    restored, restored_at = time.monotonic(), datetime.now(UTC)
    cluster.wait_for(job_id, lambda j: int(j["rows_done"]) > stalled)
    progressed = time.monotonic() - restored  # a chunk cut short is validated again first
    finish_and_compare(cluster, job_id, undisturbed, tmp_path)
    cluster.stop()

    loud: dict[str, list[str]] = {}
    back: dict[str, float] = {}  # seconds from the restore to the role's bus_reconnected
    for role in roles:
        lines = [json.loads(line) for line in cluster.log(role).splitlines() if line.strip()]
        assert all("exception" not in line for line in lines), role  # no traceback anywhere
        loud[role] = [
            line["event"] for line in lines if line["level"] in ("warning", "error", "critical")
        ]
        (reconnected,) = [line for line in lines if line["event"] == "bus_reconnected"]
        at = datetime.fromisoformat(reconnected["timestamp"].replace("Z", "+00:00"))
        back[role] = round((at - restored_at).total_seconds(), 3)
    print(
        f"\nreconnected after the restore (s): {back}; rows_done moved again after "
        f"{progressed:.3f} s; warning-or-worse lines: {loud}"
    )
    # the S3 adapter may warn of a slow moto on a busy machine: not the broker's doing
    assert {role: [e for e in events if e != "s3_retry"] for role, events in loud.items()} == {
        role: ["bus_connection_lost"] for role in roles
    }
    # generous (bench/broker_cut_bench.py measures it): the roles try every 0.3 s; a worker
    # whose handlers asked the channels while the connection was closing was back only after
    # 60-120 s (the publish retry's deadline)
    assert max(back.values()) < 5.0
    assert progressed < 5.0
