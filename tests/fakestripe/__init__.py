"""A local Stripe for the tests: a localstripe process (customers, products, plans, payment
methods and intents, subscriptions, invoices, charges, refunds) behind the in-repo fake of
server.py (Prices, Checkout Sessions and their pay page, Billing Portal sessions), reached by
the real `stripe` client at `StripeWorld.api_base`.

`stripe_world` (a session fixture: import it into the test module) starts
`localstripe --port P --from-scratch`, waits for it by polling GET /v1/customers, serves the
fake in front of it and stops both after the session; `world.reset()` between tests forgets
the fake's state and flushes localstripe's (DELETE /_config/data).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakestripe.server import FakeStripe
from tests.local_http import serving

API_KEY = "sk_test_mailvet"
STARTUP_SECONDS = 30.0


class StripeWorld:
    def __init__(self, fake: FakeStripe, api_base: str) -> None:
        self.fake = fake
        self.api_base = api_base  # MAILVET_STRIPE_API_BASE
        self.localstripe_url = fake.localstripe_url

    def reset(self) -> None:
        self.fake.reset()
        httpx.delete(f"{self.localstripe_url}/_config/data", timeout=10).raise_for_status()


def _free_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:  # localstripe binds ::
        sock.bind(("::", 0))
        port: int = sock.getsockname()[1]
        return port


def _localstripe_command() -> str:
    beside = Path(sys.executable).parent / "localstripe"
    found = str(beside) if beside.exists() else shutil.which("localstripe")
    if found is None:
        pytest.fail("localstripe is not installed (pip install -e '.[test]')")
    return found


@contextlib.contextmanager
def localstripe(log: Path) -> Iterator[str]:
    """`localstripe --port P --from-scratch` until the block ends; yields its base URL once it
    answers GET /v1/customers."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [_localstripe_command(), "--port", str(port), "--from-scratch"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                if process.poll() is not None:
                    pytest.fail(f"localstripe exited ({process.returncode}): {log.read_text()}")
                try:
                    got = httpx.get(
                        f"{url}/v1/customers",
                        headers={"Authorization": f"Bearer {API_KEY}"},
                        timeout=1,
                    )
                    if got.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"localstripe did not answer within {STARTUP_SECONDS} s")
                time.sleep(0.05)  # a process starting: nothing to wait on but its port
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def stripe_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeWorld]:
    log = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    with localstripe(log) as upstream:
        fake = FakeStripe(upstream)

        def app(base_url: str) -> object:
            fake.base_url = base_url
            return fake

        with serving(app) as base_url:
            yield StripeWorld(fake, base_url)


@pytest.fixture
def stripe_api(stripe_world: StripeWorld) -> StripeWorld:
    """The world with nothing in it: each test starts from scratch."""
    stripe_world.reset()
    return stripe_world
