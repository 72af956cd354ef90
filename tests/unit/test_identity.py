"""domain/identity.py: the Gravatar fallback and the refusal reasons."""

from __future__ import annotations

import pytest

from mailvet.domain.identity import REFUSALS, SignInRefused, gravatar_url

pytestmark = pytest.mark.unit

# SHA-256 of "test@example.com", as Gravatar's documentation computes it
TEST_DIGEST = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"


def test_gravatar_hashes_the_trimmed_lowercased_address_with_sha256() -> None:
    url = gravatar_url("test@example.com")
    assert url == f"https://www.gravatar.com/avatar/{TEST_DIGEST}?s=80&d=identicon"
    assert gravatar_url("  Test@Example.COM \n") == url
    assert gravatar_url("test@example.com", size=256, default="mp").endswith("?s=256&d=mp")


def test_a_refusal_carries_its_reason() -> None:
    refused = SignInRefused("no_email")
    assert refused.reason == "no_email" and str(refused) == "no_email"
    assert str(SignInRefused("provider_error", "503")) == "provider_error: 503"
    assert len(set(REFUSALS)) == len(REFUSALS) and "state_mismatch" in REFUSALS
