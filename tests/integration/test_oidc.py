"""Google sign-in (mailvet.adapters.oidc) against the local fake OpenID provider: the whole
round trip (discovery, authorize with PKCE, token with client_secret_basic, ID token
checked), and each way a sign-in must be refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest

from mailvet.adapters.oidc import GoogleOidc, build_oidc
from mailvet.adapters.tls import client_tls
from mailvet.domain.identity import REFUSALS, GoogleIdentity, OidcClient, SignInRefused
from mailvet.settings import WebSettings
from tests.fake_oidc import (  # noqa: F401 (fixtures)
    FakeOidcProvider,
    Knobs,
    fake_oidc_fixture,
    fake_oidc_server,
)
from tests.local_http import closed_port, silent_port

pytestmark = pytest.mark.integration

CALLBACK = "http://127.0.0.1:8000/auth/google/callback"


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
async def oidc(fake_oidc: FakeOidcProvider, ticker: Ticker) -> AsyncIterator[GoogleOidc]:
    client = GoogleOidc(
        discovery_url=fake_oidc.discovery_url,
        client_id=fake_oidc.client_id,
        client_secret=fake_oidc.client_secret,
        monotonic=ticker,
    )
    port: OidcClient = client  # the adapter is the port (checked by mypy)
    try:
        yield client
    finally:
        await port.aclose()


async def approve(url: str) -> dict[str, str]:
    """What the browser does at the provider: follow the authorization URL, come back with
    the query of the redirect."""
    async with httpx.AsyncClient(verify=client_tls()) as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def sign_in(oidc: GoogleOidc, **changes: str) -> GoogleIdentity:
    """The whole flow; `changes` replaces what the callback passes to complete()."""
    request = await oidc.authorization_url(CALLBACK)
    back = await approve(request.url)
    arguments = {
        "code": back.get("code", ""),
        "redirect_uri": CALLBACK,
        "state_sent": request.state,
        "state_received": back["state"],
        "nonce": request.nonce,
        "code_verifier": request.code_verifier,
        **changes,
    }
    code = arguments.pop("code")
    return await oidc.complete(code, **arguments)


async def test_a_sign_in_goes_round_trip_with_pkce_state_and_nonce(
    oidc: GoogleOidc, fake_oidc: FakeOidcProvider
) -> None:
    request = await oidc.authorization_url(CALLBACK)
    query = parse_qs(urlsplit(request.url).query)
    assert request.url.startswith(f"{fake_oidc.issuer}/authorize?")
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [fake_oidc.client_id]
    assert query["redirect_uri"] == [CALLBACK]
    assert set(query["scope"][0].split()) == {"openid", "email", "profile"}
    assert query["state"] == [request.state]
    assert query["nonce"] == [request.nonce]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] != [request.code_verifier]  # the hash, not the verifier
    assert 43 <= len(request.code_verifier) <= 128  # RFC 7636 §4.1
    assert len({request.state, request.nonce, request.code_verifier}) == 3

    back = await approve(request.url)
    identity = await oidc.complete(
        back["code"],
        redirect_uri=CALLBACK,
        state_sent=request.state,
        state_received=back["state"],
        nonce=request.nonce,
        code_verifier=request.code_verifier,
    )
    user = fake_oidc.user
    assert identity == GoogleIdentity(
        sub=user.sub,
        email=user.email,
        email_verified=True,
        given_name=user.given_name,
        family_name=user.family_name,
        picture=user.picture,
    )
    [token_request] = fake_oidc.token_requests
    assert token_request.client_id == fake_oidc.client_id  # client_secret_basic
    assert token_request.grant_type == "authorization_code"
    assert token_request.had_verifier
    assert token_request.answered == 200


async def test_two_authorization_urls_never_share_their_secrets(oidc: GoogleOidc) -> None:
    first, second = await oidc.authorization_url(CALLBACK), await oidc.authorization_url(CALLBACK)
    assert not {first.state, first.nonce, first.code_verifier} & {
        second.state,
        second.nonce,
        second.code_verifier,
    }


async def test_discovery_and_keys_are_cached_until_their_ttl(
    oidc: GoogleOidc, fake_oidc: FakeOidcProvider, ticker: Ticker
) -> None:
    await sign_in(oidc)
    await sign_in(oidc)
    assert (fake_oidc.discovery_hits, fake_oidc.jwks_hits) == (1, 1)
    ticker.now += 3601
    await sign_in(oidc)
    assert (fake_oidc.discovery_hits, fake_oidc.jwks_hits) == (2, 2)


async def test_concurrent_first_sign_ins_fetch_the_documents_once(
    oidc: GoogleOidc, fake_oidc: FakeOidcProvider
) -> None:
    identities = await asyncio.gather(*(sign_in(oidc) for _ in range(8)))
    assert {identity.sub for identity in identities} == {fake_oidc.user.sub}
    assert (fake_oidc.discovery_hits, fake_oidc.jwks_hits) == (1, 1)
    assert len(fake_oidc.token_requests) == 8


async def test_a_rotated_key_is_fetched_when_a_token_names_it(
    oidc: GoogleOidc, fake_oidc: FakeOidcProvider, ticker: Ticker
) -> None:
    await sign_in(oidc)
    fake_oidc.rotate_key()
    ticker.now += 11  # the JWKS is fetched again at most every 10 s
    identity = await sign_in(oidc)
    assert identity.sub == fake_oidc.user.sub
    assert fake_oidc.jwks_hits == 2


async def test_a_rotated_key_is_not_fetched_again_and_again(
    oidc: GoogleOidc, fake_oidc: FakeOidcProvider
) -> None:
    await sign_in(oidc)
    fake_oidc.rotate_key()
    with pytest.raises(SignInRefused) as refused:
        await sign_in(oidc)  # the keys were fetched a moment ago: the token is not trusted
    assert refused.value.reason == "bad_signature"
    assert fake_oidc.jwks_hits == 1


def _set(**values: object) -> Callable[[FakeOidcProvider], None]:
    def change(provider: FakeOidcProvider) -> None:
        for name, value in values.items():
            setattr(provider.knobs, name, value)

    return change


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_set(nonce="another-nonce"), "nonce_mismatch"),
        (_set(drop_claims=("nonce",)), "nonce_mismatch"),
        (_set(audience="someone-else.apps.example"), "wrong_audience"),
        (_set(audience=["someone-else.apps.example"]), "wrong_audience"),
        (_set(issuer="https://evil.example"), "wrong_issuer"),
        (_set(expired=True), "expired"),
        (_set(drop_claims=("email",)), "no_email"),
        (_set(drop_claims=("sub",)), "bad_claims"),
        (_set(extra_claims={"sub": ""}), "bad_claims"),
        (_set(drop_claims=("exp",)), "bad_claims"),
        (_set(extra_claims={"iat": 4_000_000_000}), "bad_claims"),  # issued in the future
        (_set(bad_signature=True), "bad_signature"),
        (_set(omit_id_token=True), "no_id_token"),
        (_set(error_without_error_key=True), "token_refused"),
        (_set(token_not_json=True), "provider_error"),
    ],
)
async def test_a_wrong_token_is_refused(
    oidc: GoogleOidc,
    fake_oidc: FakeOidcProvider,
    change: Callable[[FakeOidcProvider], None],
    reason: str,
) -> None:
    change(fake_oidc)
    with pytest.raises(SignInRefused) as refused:
        await sign_in(oidc)
    assert refused.value.reason == reason
    assert reason in REFUSALS


async def test_several_audiences_need_our_client_as_the_authorized_party(
    oidc: GoogleOidc, fake_oidc: FakeOidcProvider
) -> None:
    fake_oidc.knobs.audience = [fake_oidc.client_id, "another.apps.example"]
    assert (await sign_in(oidc)).sub == fake_oidc.user.sub  # azp is ours
    fake_oidc.knobs.extra_claims = {"azp": "another.apps.example"}
    with pytest.raises(SignInRefused) as refused:
        await sign_in(oidc)
    assert refused.value.reason == "wrong_audience"


async def test_the_verified_flag_and_the_picture_are_passed_through(
    oidc: GoogleOidc, fake_oidc: FakeOidcProvider
) -> None:
    """The adapter states what Google said; the accounts service decides what an
    unverified address or a non-https picture may do (tests/service/test_accounts.py)."""
    fake_oidc.user.picture = "javascript:alert(1)"
    assert (await sign_in(oidc)).picture == "javascript:alert(1)"
    fake_oidc.user.email_verified = False
    assert (await sign_in(oidc)).email_verified is False
    fake_oidc.user.email_verified = True
    either = (({"email_verified": "false"}, False), ({"email_verified": "true"}, True))
    for claims, verified in either:
        fake_oidc.knobs.extra_claims = claims
        assert (await sign_in(oidc)).email_verified is verified
    fake_oidc.knobs.extra_claims = {}
    fake_oidc.knobs.drop_claims = ("email_verified",)
    assert (await sign_in(oidc)).email_verified is False


async def test_a_token_is_expired_by_our_clock_past_the_leeway(
    fake_oidc: FakeOidcProvider,
) -> None:
    ahead = [timedelta(hours=1, seconds=30)]  # exp is an hour after now: within the 60 s leeway
    later = GoogleOidc(
        discovery_url=fake_oidc.discovery_url,
        client_id=fake_oidc.client_id,
        client_secret=fake_oidc.client_secret,
        clock=lambda: datetime.now(UTC) + ahead[0],
    )
    try:
        assert (await sign_in(later)).sub
        ahead[0] = timedelta(hours=1, minutes=2)
        with pytest.raises(SignInRefused) as refused:
            await sign_in(later)
        assert refused.value.reason == "expired"
    finally:
        await later.aclose()


async def test_a_forged_state_is_refused_before_the_code_is_spent(
    oidc: GoogleOidc, fake_oidc: FakeOidcProvider
) -> None:
    for forged in ("attacker-state", ""):
        with pytest.raises(SignInRefused) as refused:
            await sign_in(oidc, state_received=forged)
        assert refused.value.reason == "state_mismatch"
    with pytest.raises(SignInRefused) as refused:
        await sign_in(oidc, state_sent="", state_received="")  # nothing in the session
    assert refused.value.reason == "state_mismatch"
    assert fake_oidc.token_requests == []


async def test_a_code_cannot_be_used_twice(oidc: GoogleOidc, fake_oidc: FakeOidcProvider) -> None:
    request = await oidc.authorization_url(CALLBACK)
    back = await approve(request.url)
    arguments = {
        "redirect_uri": CALLBACK,
        "state_sent": request.state,
        "state_received": back["state"],
        "nonce": request.nonce,
        "code_verifier": request.code_verifier,
    }
    await oidc.complete(back["code"], **arguments)
    with pytest.raises(SignInRefused) as refused:
        await oidc.complete(back["code"], **arguments)
    assert refused.value.reason == "token_refused"
    assert [r.answered for r in fake_oidc.token_requests] == [200, 400]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"code_verifier": "x" * 64}, "token_refused"),  # not the verifier of the challenge
        ({"redirect_uri": "http://127.0.0.1:8000/elsewhere"}, "token_refused"),
        ({"code": ""}, "no_code"),
        ({"nonce": ""}, "state_mismatch"),
    ],
)
async def test_a_callback_that_does_not_match_its_request_is_refused(
    oidc: GoogleOidc, changes: dict[str, str], reason: str
) -> None:
    with pytest.raises(SignInRefused) as refused:
        await sign_in(oidc, **changes)
    assert refused.value.reason == reason


async def test_a_denied_consent_comes_back_without_a_code(
    oidc: GoogleOidc, fake_oidc: FakeOidcProvider
) -> None:
    fake_oidc.knobs = Knobs(deny=True)
    request = await oidc.authorization_url(CALLBACK)
    back = await approve(request.url)
    assert back == {"state": request.state, "error": "access_denied"}
    with pytest.raises(SignInRefused) as refused:
        await sign_in(oidc)
    assert refused.value.reason == "no_code"


async def test_a_wrong_client_secret_is_refused(fake_oidc: FakeOidcProvider) -> None:
    client = GoogleOidc(
        discovery_url=fake_oidc.discovery_url,
        client_id=fake_oidc.client_id,
        client_secret="not-the-secret",
    )
    try:
        with pytest.raises(SignInRefused) as refused:
            await sign_in(client)
        assert refused.value.reason == "token_refused"
        assert [r.answered for r in fake_oidc.token_requests] == [401]
    finally:
        await client.aclose()


async def test_a_discovery_document_of_another_issuer_is_refused(
    fake_oidc: FakeOidcProvider,
) -> None:
    # the same provider reached under another name: its document names 127.0.0.1
    port = urlsplit(fake_oidc.issuer).port
    client = GoogleOidc(
        discovery_url=f"http://localhost:{port}/.well-known/openid-configuration",
        client_id=fake_oidc.client_id,
        client_secret=fake_oidc.client_secret,
    )
    try:
        with pytest.raises(SignInRefused) as refused:
            await client.authorization_url(CALLBACK)
        assert refused.value.reason == "provider_error"
    finally:
        await client.aclose()


async def test_a_provider_down_at_the_first_sign_in_is_an_error(
    oidc: GoogleOidc, fake_oidc: FakeOidcProvider
) -> None:
    fake_oidc.knobs.down = True
    with pytest.raises(SignInRefused) as refused:
        await oidc.authorization_url(CALLBACK)
    assert refused.value.reason == "provider_error"


async def test_an_unreachable_provider_is_refused_with_its_reason() -> None:
    client = GoogleOidc(
        discovery_url=f"{closed_port()}/.well-known/openid-configuration",
        client_id="id",
        client_secret="secret",
        timeout=2.0,
    )
    try:
        with pytest.raises(SignInRefused) as refused:
            await client.authorization_url(CALLBACK)
        assert refused.value.reason == "provider_unreachable"
    finally:
        await client.aclose()


async def test_a_provider_that_never_answers_is_unreachable_after_the_timeout() -> None:
    with silent_port() as base:
        client = GoogleOidc(
            discovery_url=f"{base}/.well-known/openid-configuration",
            client_id="id",
            client_secret="secret",
            timeout=0.2,
        )
        try:
            with pytest.raises(SignInRefused) as refused:
                await client.authorization_url(CALLBACK)
            assert refused.value.reason == "provider_unreachable"
        finally:
            await client.aclose()


async def test_a_provider_down_after_a_first_sign_in_keeps_its_cached_document(
    fake_oidc: FakeOidcProvider, ticker: Ticker
) -> None:
    client = GoogleOidc(
        discovery_url=fake_oidc.discovery_url,
        client_id=fake_oidc.client_id,
        client_secret=fake_oidc.client_secret,
        monotonic=ticker,
    )
    try:
        first = await client.authorization_url(CALLBACK)
        ticker.now += 4000  # stale now
        fake_oidc.knobs.down = True
        second = await client.authorization_url(CALLBACK)
        assert urlsplit(second.url).path == urlsplit(first.url).path == "/authorize"
        assert fake_oidc.discovery_hits == 1  # the second one was answered 503
    finally:
        await client.aclose()


def test_build_oidc_follows_the_settings() -> None:
    assert build_oidc(WebSettings()) is None
    web = msgspec.structs.replace(
        WebSettings(), google_client_id="cid", google_client_secret="csecret"
    )
    client = build_oidc(web)
    assert client is not None
    assert client.client_id == "cid"
    assert client.discovery_url == "https://accounts.google.com/.well-known/openid-configuration"


def test_an_insecure_discovery_url_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="https"):
        GoogleOidc(
            discovery_url="http://accounts.example/.well-known/openid-configuration",
            client_id="cid",
            client_secret="s",
        )
