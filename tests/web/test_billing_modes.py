"""MAILVET_BILLING (issue 10 §3): off by default (no Payments port, so no Stripe call can be
made and the webhook is not there); stripe builds the gateway of the settings, and refuses to
start without its key and webhook secret, before anything is opened."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailvet.adapters.payments.stripe_gateway import StripeGateway
from mailvet.domain.payments import PaymentsError
from mailvet.settings import SettingsError, load_settings
from mailvet.web.context import SECRET_KEY_FILE, build_web_context
from tests.local_http import silent_port
from tests.web.shell_helpers import cheap_hasher

pytestmark = pytest.mark.unit

# the site as `mailvet run web` builds it, with billing off, in a fresh interpreter (this
# test process has imported stripe already): the modules it loaded
SITE_WITH_BILLING_OFF = """
import asyncio, json, sys
from mailvet.adapters.bus.memory import MemoryBus
from mailvet.adapters.storage.memory import MemoryStorage
from mailvet.bootstrap import build_deps
from mailvet.settings import load_settings
from mailvet.web.context import build_web_context
from mailvet.web.site import build_site

async def main() -> None:
    settings = load_settings({"MAILVET_DATA_DIR": sys.argv[1], "MAILVET_MAILER": "memory"})
    deps = await build_deps(settings, storage=MemoryStorage(), bus=MemoryBus(), syntax_pool=None)
    web = await build_web_context(settings)
    site = await build_site(deps, web=web)
    assert web.payments is None
    await site.close()
    await web.close()
    await deps.close()

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "MAILVET_STRIPE_API_KEY, MAILVET_STRIPE_WEBHOOK_SECRET"),
        ({"MAILVET_STRIPE_API_KEY": "sk_test_x"}, "MAILVET_STRIPE_WEBHOOK_SECRET"),
        ({"MAILVET_STRIPE_WEBHOOK_SECRET": "whsec_x"}, "MAILVET_STRIPE_API_KEY"),
    ],
    ids=["neither", "no-secret", "no-key"],
)
async def test_stripe_billing_refuses_to_start_without_its_key_and_secret(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    settings = load_settings(
        {"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_BILLING": "stripe", **env}
    )
    with pytest.raises(SettingsError, match=f"MAILVET_BILLING=stripe needs {named}$"):
        await build_web_context(settings, hasher=cheap_hasher())
    assert not (tmp_path / SECRET_KEY_FILE).exists()  # refused before anything was made


async def test_billing_is_off_by_default(tmp_path: Path) -> None:
    settings = load_settings({"MAILVET_DATA_DIR": str(tmp_path)})
    assert settings.billing.backend == "off" and settings.billing.missing() == ()
    web = await build_web_context(settings, hasher=cheap_hasher())
    try:
        assert web.payments is None
    finally:
        await web.close()


async def test_stripe_billing_builds_the_gateway_and_closes_it(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "MAILVET_DATA_DIR": str(tmp_path),
            "MAILVET_BILLING": "stripe",
            "MAILVET_STRIPE_API_KEY": "sk_test_x",
            "MAILVET_STRIPE_WEBHOOK_SECRET": "whsec_x",
            "MAILVET_STRIPE_API_BASE": "http://127.0.0.1:9",
        }
    )
    web = await build_web_context(settings, hasher=cheap_hasher())
    gateway = web.payments
    assert isinstance(gateway, StripeGateway)
    connections = gateway._http._client_async  # the pool of its HTTP connections
    assert not connections.is_closed
    await web.close()
    assert connections.is_closed  # closed with the context, as the database is


def test_a_site_with_billing_off_does_not_import_stripe(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILVET_")}
    done = subprocess.run(
        [sys.executable, "-c", SITE_WITH_BILLING_OFF, str(tmp_path)],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "mailvet.web.billing.webhook" in modules  # the area is there, with its webhook
    assert "stripe" not in modules
    assert "mailvet.adapters.payments.stripe_gateway" not in modules


def stripe_env(tmp_path: Path, api_base: str) -> dict[str, str]:
    """Billing through a Stripe at `api_base` that never answers: one try of 0.2 s."""
    return {
        "MAILVET_DATA_DIR": str(tmp_path),
        "MAILVET_BILLING": "stripe",
        "MAILVET_STRIPE_API_KEY": "sk_test_x",
        "MAILVET_STRIPE_WEBHOOK_SECRET": "whsec_x",
        "MAILVET_STRIPE_CREDITS_PRODUCT": "prod_x",
        "MAILVET_STRIPE_API_BASE": api_base,
        "MAILVET_STRIPE_TIMEOUT": "0.2",
        "MAILVET_STRIPE_MAX_NETWORK_RETRIES": "0",
    }


def test_the_stripe_timeout_is_a_positive_number_of_seconds_10_by_default() -> None:
    assert load_settings({}).billing.timeout == 10
    assert load_settings({"MAILVET_STRIPE_TIMEOUT": "2.5"}).billing.timeout == 2.5
    for wrong in ("0", "-1", "soon"):
        with pytest.raises(SettingsError, match="MAILVET_STRIPE_TIMEOUT"):
            load_settings({"MAILVET_STRIPE_TIMEOUT": wrong})


async def test_the_sites_gateway_gives_up_on_a_silent_stripe_after_its_timeout(
    tmp_path: Path,
) -> None:
    with silent_port() as api_base:
        web = await build_web_context(
            load_settings(stripe_env(tmp_path, api_base)), hasher=cheap_hasher()
        )
        try:
            assert web.payments is not None
            # 5 s: far more than 0.2, far less than the 30 s a try waited before
            with pytest.raises(PaymentsError) as failed:
                await asyncio.wait_for(web.payments.invoices("cus_x"), timeout=5)
            assert failed.value.status is None  # no answer
        finally:
            await web.close()


def test_billing_sync_gives_up_on_a_silent_stripe_after_its_timeout(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILVET_")}
    with silent_port() as api_base:
        # 8 s: far more than 0.2 and a fresh interpreter, less than the default 10 s
        done = subprocess.run(
            [sys.executable, "-m", "mailvet", "billing", "sync"],
            env={**clean, **stripe_env(tmp_path, api_base)},
            capture_output=True,
            text=True,
            timeout=8,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Stripe:" in done.stdout + done.stderr
