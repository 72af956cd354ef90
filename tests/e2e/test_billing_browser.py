"""Buying credits in a real browser (issue 10 §4): the site of `mailvet run all` with
MAILVET_BILLING=stripe on the test Stripe (tests/fakestripe: localstripe behind the in-repo
fake's Checkout), Chromium through Playwright. The customer buys a pack on the billing page,
pays on the fake Checkout page, which sends the signed checkout.session.completed to the
site's webhook and returns to the success page; the billing page then shows the balance, the
purchase in the history and the invoice with its receipt link."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests import fakestripe
from tests.browser import NEEDS_CHROMIUM
from tests.e2e.harness import Harness, running_site
from tests.e2e.test_saas_browser import sign_in
from tests.fake_oidc import running_fake_oidc
from tests.fakestripe import API_KEY, StripeWorld

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio(loop_scope="module"),
    NEEDS_CHROMIUM,
]

stripe_world = fakestripe.stripe_world  # the session's localstripe and fake
WHSEC = "whsec_e2e_billing"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(
    tmp_path_factory: pytest.TempPathFactory, stripe_world: StripeWorld
) -> AsyncIterator[Harness]:
    stripe_world.reset()
    env = {
        "MAILVET_BILLING": "stripe",
        "MAILVET_STRIPE_API_KEY": API_KEY,
        "MAILVET_STRIPE_API_BASE": stripe_world.api_base,
        "MAILVET_STRIPE_WEBHOOK_SECRET": WHSEC,
        "MAILVET_STRIPE_MAX_NETWORK_RETRIES": "0",
    }
    checkout = urlsplit(stripe_world.api_base).netloc
    with running_fake_oidc() as provider:
        async with running_site(
            tmp_path_factory.mktemp("e2e-billing"), provider, env, local_hosts=(checkout,)
        ) as running:
            stripe_world.fake.webhook_url = f"{running.base}/billing/stripe/webhook"
            stripe_world.fake.webhook_secret = WHSEC
            yield running


async def test_buy_a_pack_through_checkout_and_see_it_on_the_billing_page(
    harness: Harness, stripe_world: StripeWorld
) -> None:
    watched = await harness.page()
    page = watched.page
    await harness.account("payer@example.com", credits=0)
    await sign_in(page, "payer@example.com")
    await page.goto("/app/billing")
    await expect(page.locator("#billing-balance")).to_have_text("0")
    await expect(page.locator("#no-invoices")).to_be_visible()

    await page.get_by_label("Credits").fill("999")  # under a pack: refused on the form
    await page.get_by_role("button", name="Buy with Stripe").click()
    await expect(page.locator("#pack-credits-error")).to_contain_text("1,000")
    assert not stripe_world.fake.sessions  # no Checkout asked for

    await page.get_by_label("Credits").fill("2500")
    await harness.shot(page, "billing-buy")
    await page.get_by_role("button", name="Buy with Stripe").click()
    await expect(page).to_have_url(re.compile(r"/pay/cs_"))
    await expect(page.locator("#amount")).to_have_text("25.00 USD")  # $10 per 1,000
    await page.locator("#pay").click()

    await expect(page).to_have_url(re.compile(r"/app/billing/success\?session_id=cs_"))
    await expect(page.locator("#checkout-outcome")).to_contain_text("2,500 credits")
    await harness.shot(page, "billing-paid")
    [sent] = stripe_world.fake.webhooks_sent
    assert sent["type"] == "checkout.session.completed"

    await page.get_by_role("link", name="Back to billing").click()
    await expect(page.locator("#billing-balance")).to_have_text("2500")
    history = page.locator("table.entries tbody tr").first
    await expect(history).to_contain_text("Credits bought")
    await expect(history).to_contain_text("+2500")
    invoice = page.locator("table.invoices tbody tr")
    await expect(invoice).to_have_count(1)
    await expect(invoice).to_contain_text("$25")
    await expect(invoice).to_contain_text("paid")
    receipt = invoice.get_by_role("link", name="Receipt")
    assert (await receipt.get_attribute("href") or "").startswith(stripe_world.api_base)
    await harness.shot(page, "billing-after", full=True)

    # the same payment told again under another event id (send_event makes a new one, so
    # this is no replay of a stored event, as Stripe's retry would be): the pack's ledger
    # key holds, nothing more is added
    session_id = sent["data"]["object"]["id"]
    await stripe_world.fake.send_event("checkout.session.completed", sent["data"]["object"])
    await page.reload()
    await expect(page.locator("#billing-balance")).to_have_text("2500")
    assert session_id in stripe_world.fake.sessions
    assert watched.dialogs == [] and watched.errors == []
    assert watched.unexpected(urlsplit(stripe_world.api_base).netloc) == []  # Checkout only
