"""Google sign-in: OpenID Connect's authorization code flow with PKCE (S256), `state` and
`nonce`, over authlib's AsyncOAuth2Client, the ID token checked with joserfc.

authlib's httpx client has no discovery, JWKS or ID-token helpers (those live in its
framework integrations), so this module fetches the discovery document and the JWKS itself
(through the same client, cached for `cache_ttl` seconds; the JWKS again at once when a
token names a key it does not hold: Google rotates its keys) and checks the ID token:
signature (RS256 only), `iss` (the discovery document's issuer, and Google's historical
`accounts.google.com`), `aud` (our client id; `azp` too when there are several audiences),
`exp`, `iat`, `nbf`, `nonce`, `sub`. Google's `email_verified` and `picture` are passed on
as given: what they allow is the accounts service's rule.

Two of authlib's habits are guarded against (LIBRARIES-SAAS.md §3): `fetch_token` raises only
for a JSON body with an "error" key, so a non-2xx answer of any other shape is refused here
(a compliance hook), and a token response without `id_token` is refused, never taken as a
sign-in. A failure is `SignInRefused(reason)`; the reason is logged, never an address.

The settings are `settings.web.google_*`; `build_oidc` returns None when no client id is set.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from joserfc import errors as jose_errors
from joserfc import jwt
from joserfc.jwk import KeySet

from mailvet.adapters.tls import client_tls, secure_url
from mailvet.domain.identity import AuthorizationRequest, GoogleIdentity, Refusal, SignInRefused

if TYPE_CHECKING:
    from mailvet.settings import WebSettings

log = structlog.get_logger(__name__)

SCOPE = "openid email profile"
GOOGLE_ISSUER = "https://accounts.google.com"
# Google's ID tokens may carry the issuer without its scheme (its OpenID documentation says to
# accept both)
ISSUER_ALIASES: Mapping[str, tuple[str, ...]] = {GOOGLE_ISSUER: ("accounts.google.com",)}
# a token naming an unknown key makes the JWKS be fetched again, at most this often
JWKS_REFETCH_SECONDS = 10.0


class _ProviderRefused(Exception):
    """Raised by the token response hook; carries the refusal out of authlib."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.reason: Refusal = reason
        self.detail = detail


@dataclass
class _Cached:
    value: dict[str, Any]
    fetched_at: float


def _refusal(reason: Refusal, detail: str = "") -> SignInRefused:
    # provider trouble is the operator's business; the rest is a user's failed attempt
    level = "warning" if reason in ("provider_unreachable", "provider_error") else "info"
    getattr(log, level)("oidc.sign_in_refused", reason=reason, detail=detail[:200])
    return SignInRefused(reason, detail)


def _check_token_response(response: httpx.Response) -> httpx.Response:
    """authlib's access_token_response hook: a non-2xx answer is a refusal whatever its body
    says (authlib raises only for a JSON object with an "error" key, and would return any
    other 4xx body as the token), and a 2xx answer must be a JSON object."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        if not isinstance(body, dict):  # authlib would fail on it with a TypeError
            raise _ProviderRefused("provider_error", "the token answer is not a JSON object")
        return response
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return response  # a proper OAuth error: authlib raises OAuthError with it
    reason: Refusal = "provider_error" if response.status_code >= 500 else "token_refused"
    raise _ProviderRefused(reason, f"token endpoint answered {response.status_code}")


class GoogleOidc:
    """`OidcClient` on a real OpenID provider (Google, or the tests' fake one).

    One AsyncOAuth2Client (an httpx.AsyncClient) serves every sign-in, made at first use and
    closed by `aclose()`. `clock` gives aware UTC time (tests move it); `monotonic` times the
    caches."""

    def __init__(
        self,
        *,
        discovery_url: str,
        client_id: str,
        client_secret: str,
        timeout: float = 10.0,
        cache_ttl: float = 3600.0,
        leeway: int = 60,
        algorithms: tuple[str, ...] = ("RS256",),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not client_id:
            raise ValueError("GoogleOidc needs a client id")
        if not secure_url(discovery_url):
            raise ValueError("the discovery URL must be https (or http to this machine)")
        self.discovery_url = discovery_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._leeway = leeway
        self._algorithms = algorithms
        self._clock = clock
        self._monotonic = monotonic
        self._client: Any = None  # authlib's AsyncOAuth2Client, untyped
        self._metadata: _Cached | None = None
        self._jwks: _Cached | None = None
        self._lock = asyncio.Lock()

    # -- the port -------------------------------------------------------------------------

    async def authorization_url(self, redirect_uri: str) -> AuthorizationRequest:
        from authlib.common.security import generate_token

        metadata = await self._provider_metadata()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        url, _ = self._oauth().create_authorization_url(
            metadata["authorization_endpoint"],
            state=state,
            code_verifier=verifier,
            nonce=nonce,
            redirect_uri=redirect_uri,
        )
        return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)

    async def complete(
        self,
        code: str,
        *,
        redirect_uri: str,
        state_sent: str,
        state_received: str,
        nonce: str,
        code_verifier: str,
    ) -> GoogleIdentity:
        if not state_sent or not hmac.compare_digest(
            state_sent.encode("utf-8"), state_received.encode("utf-8")
        ):
            raise _refusal("state_mismatch")
        if not code:
            raise _refusal("no_code")
        if not nonce or not code_verifier:
            raise _refusal("state_mismatch", "the session holds no nonce or code verifier")
        metadata = await self._provider_metadata()
        token = await self._fetch_token(metadata, code, redirect_uri, code_verifier)
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise _refusal("no_id_token")
        claims = await self._verified_claims(id_token, metadata, nonce)
        return self._identity(claims)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- the token ------------------------------------------------------------------------

    def _oauth(self) -> Any:
        if self._client is None:
            from authlib.integrations.httpx_client import AsyncOAuth2Client

            client = AsyncOAuth2Client(
                client_id=self.client_id,
                client_secret=self._client_secret,
                token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method's name)
                scope=SCOPE,
                code_challenge_method="S256",
                timeout=self._timeout,
                follow_redirects=False,
                verify=client_tls(),
            )
            client.register_compliance_hook("access_token_response", _check_token_response)
            self._client = client
        return self._client

    async def _fetch_token(
        self, metadata: dict[str, Any], code: str, redirect_uri: str, verifier: str
    ) -> dict[str, Any]:
        from authlib.integrations.base_client.errors import OAuthError

        try:
            token = await self._oauth().fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=verifier,
            )
        except _ProviderRefused as refused:
            raise _refusal(refused.reason, refused.detail) from None
        except OAuthError as error:
            raise _refusal("token_refused", str(error.error)) from None
        except httpx.HTTPStatusError as error:  # authlib: a 5xx, or a body that is not JSON
            raise _refusal("provider_error", f"{error.response.status_code}") from None
        except httpx.HTTPError as error:
            raise _refusal("provider_unreachable", type(error).__name__) from None
        return dict(token)

    async def _verified_claims(
        self, id_token: str, metadata: dict[str, Any], nonce: str
    ) -> dict[str, Any]:
        keys = await self._keys(metadata, refresh=False)
        try:
            try:
                decoded = jwt.decode(id_token, keys, algorithms=list(self._algorithms))
            except jose_errors.InvalidKeyIdError:
                keys = await self._keys(metadata, refresh=True)  # the provider rotated its keys
                decoded = jwt.decode(id_token, keys, algorithms=list(self._algorithms))
        except jose_errors.JoseError as error:
            raise _refusal("bad_signature", type(error).__name__) from None
        except ValueError as error:  # a token that is not even JWS compact serialisation
            raise _refusal("bad_signature", type(error).__name__) from None
        claims = decoded.claims
        issuer = metadata["issuer"]
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock().timestamp()),
            leeway=self._leeway,
            iss={"essential": True, "values": [issuer, *ISSUER_ALIASES.get(issuer, ())]},
            aud={"essential": True, "value": self.client_id},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except jose_errors.ExpiredTokenError:
            raise _refusal("expired") from None
        except jose_errors.ClaimError as error:
            raise _refusal(_claim_refusal(error), str(error)) from None
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise _refusal("wrong_audience", "several audiences and azp is not ours")
        return claims

    def _identity(self, claims: dict[str, Any]) -> GoogleIdentity:
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise _refusal("no_email")
        verified = claims.get("email_verified")

        def text(name: str) -> str:
            value = claims.get(name)
            return value if isinstance(value, str) else ""

        # the claims as Google gave them: what an unverified address or a picture URL may
        # do is the accounts service's rule (services/accounts.py, sign_in_with_google)
        return GoogleIdentity(
            sub=claims["sub"],
            email=email,
            # Google sends a JSON boolean; some of its older tokens carried the string "true"
            email_verified=verified is True or verified == "true",
            given_name=text("given_name"),
            family_name=text("family_name"),
            picture=text("picture"),
        )

    # -- discovery and keys -----------------------------------------------------------------

    async def _provider_metadata(self) -> dict[str, Any]:
        cached = self._metadata
        if cached is not None and self._monotonic() - cached.fetched_at < self._cache_ttl:
            return cached.value
        async with self._lock:
            current = self._metadata
            if current is not None and current is not cached:  # fetched by another sign-in
                return current.value
            try:
                value = _checked_metadata(await self._get_json(self.discovery_url), self)
            except SignInRefused:
                if cached is None:
                    raise
                log.warning("oidc.discovery_stale", url=self.discovery_url)
                return cached.value  # the provider is down: keep signing in on what we had
            self._metadata = _Cached(value, self._monotonic())
            return value

    async def _keys(self, metadata: dict[str, Any], *, refresh: bool) -> KeySet:
        cached = self._jwks
        now = self._monotonic()
        if cached is not None:
            age = now - cached.fetched_at
            if (not refresh and age < self._cache_ttl) or (refresh and age < JWKS_REFETCH_SECONDS):
                return _key_set(cached.value)
        async with self._lock:
            if self._jwks is not cached and self._jwks is not None:
                return _key_set(self._jwks.value)
            try:
                value = await self._get_json(metadata["jwks_uri"])
                keys = _key_set(value)
            except SignInRefused:
                if cached is None:
                    raise
                log.warning("oidc.jwks_stale", url=metadata["jwks_uri"])
                return _key_set(cached.value)
            self._jwks = _Cached(value, self._monotonic())
            return keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._oauth().request("GET", url, withhold_token=True)
        except httpx.HTTPError as error:
            raise _refusal("provider_unreachable", f"{url}: {type(error).__name__}") from None
        if response.status_code != httpx.codes.OK:
            raise _refusal("provider_error", f"{url} answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _refusal("provider_error", f"{url} sent no JSON object")
        return body


def _checked_metadata(document: dict[str, Any], oidc: GoogleOidc) -> dict[str, Any]:
    """The discovery document, if it is one we may trust: its issuer is the discovery URL's
    prefix (OpenID Connect Discovery §4.3: no provider mix-up), its endpoints are https."""
    names = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
    if not all(isinstance(document.get(name), str) and document[name] for name in names):
        raise _refusal("provider_error", "the discovery document lacks an endpoint")
    issuer = document["issuer"]
    if issuer.rstrip("/") + "/.well-known/openid-configuration" != oidc.discovery_url:
        raise _refusal("provider_error", "the discovery document names another issuer")
    if not all(secure_url(document[name]) for name in names):
        raise _refusal("provider_error", "the provider's endpoints are not https")
    return document


def _key_set(document: dict[str, Any]) -> KeySet:
    try:
        return KeySet.import_key_set(document)  # type: ignore[arg-type]
    except (jose_errors.JoseError, ValueError, TypeError, KeyError) as error:
        raise _refusal("provider_error", f"unusable JWKS: {type(error).__name__}") from None


def _claim_refusal(error: jose_errors.ClaimError) -> Refusal:
    names = set(error.claim.split(","))
    order: tuple[tuple[str, Refusal], ...] = (
        ("iss", "wrong_issuer"),
        ("aud", "wrong_audience"),
        ("nonce", "nonce_mismatch"),
    )
    return next((reason for claim, reason in order if claim in names), "bad_claims")


def build_oidc(web: WebSettings) -> GoogleOidc | None:
    """The Google sign-in client of these settings; None when no client id is set."""
    if not web.google_client_id:
        return None
    return GoogleOidc(
        discovery_url=web.google_discovery_url,
        client_id=web.google_client_id,
        client_secret=web.google_client_secret,
    )
