"""Who is signing in, and is it a person: the ports of Google sign-in and the captcha.

`OidcClient` is Google sign-in seen from the accounts service: it hands out the URL to send
the browser to (with the `state`, `nonce` and PKCE `code_verifier` the caller keeps in the
server-side session) and, on the way back, turns the authorization code into a checked
`GoogleIdentity`, or raises `SignInRefused` with a reason from `REFUSALS`. The real adapter
is mailvet.adapters.oidc (authlib + joserfc); tests run it against tests/fake_oidc.py.

`Captcha` is reCAPTCHA v2 (mailvet.adapters.captcha): `verify` is True only when the
provider said yes; not configured (`site_key` empty) means no captcha at all.

`gravatar_url` is the last fallback of an account's picture (after the uploaded avatar and
the Google picture): Gravatar's SHA-256 form of the trimmed, lowercased address.
"""

from __future__ import annotations

import hashlib
from typing import Literal, NamedTuple, Protocol, get_args
from urllib.parse import urlencode

import msgspec

# Why a Google sign-in was refused. The page tells the user only that it failed; the reason
# goes to the log (it names no address).
Refusal = Literal[
    "not_configured",  # no client id: Google sign-in is off
    "state_mismatch",  # the callback's state is not the one this session sent (CSRF)
    "no_code",  # the callback carries no authorization code
    "provider_unreachable",  # discovery, JWKS or token endpoint could not be reached
    "provider_error",  # the provider answered something that is not usable (bad JSON, 5xx)
    "token_refused",  # the token endpoint refused the code (invalid_grant, bad PKCE, ...)
    "no_id_token",  # the token response has no ID token
    "bad_signature",  # the ID token's signature does not verify with the provider's keys
    "wrong_issuer",
    "wrong_audience",
    "expired",
    "nonce_mismatch",
    "bad_claims",  # a claim is missing or malformed (sub, iat, nbf in the future, ...)
    "no_email",
]
REFUSALS: tuple[Refusal, ...] = get_args(Refusal)


class SignInRefused(Exception):
    """Google sign-in failed; `reason` is one of REFUSALS."""

    def __init__(self, reason: Refusal, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: Refusal = reason
        self.detail = detail


class GoogleIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """The checked claims of a Google ID token, as Google gave them: `email` (the accounts
    service casefolds it), `email_verified` (False also when the claim is missing) and
    `picture` (any URL: the accounts service keeps only an https one). What an unverified
    address may do is the accounts service's rule: an account already linked to `sub`
    signs in, nothing is created or linked on it."""

    sub: str
    email: str
    email_verified: bool
    given_name: str = ""
    family_name: str = ""
    picture: str = ""


class AuthorizationRequest(NamedTuple):
    """Where to send the browser, and the three secrets to keep in the server-side session
    until the callback (`state` to compare, `nonce` and `code_verifier` to pass back)."""

    url: str
    state: str
    nonce: str
    code_verifier: str


class OidcClient(Protocol):
    """Google sign-in (OpenID Connect authorization code flow with PKCE S256)."""

    async def authorization_url(self, redirect_uri: str) -> AuthorizationRequest:
        """A fresh state, nonce and code verifier, and the provider's authorization URL
        asking for `openid email profile` with them (async: the URL comes from the
        provider's discovery document, fetched and cached)."""
        ...

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
        """Exchange the code and check the ID token; SignInRefused(reason) otherwise."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP client (once, at shutdown)."""
        ...


class Captcha(Protocol):
    """reCAPTCHA v2. `site_key` goes into the page's widget ("" when not configured: no
    widget is shown and `verify` passes)."""

    @property
    def site_key(self) -> str: ...

    async def verify(self, token: str, remote_ip: str | None) -> bool:
        """True only when the provider confirmed this token (for this client address)."""
        ...

    async def aclose(self) -> None: ...


def gravatar_url(email: str, *, size: int = 80, default: str = "identicon") -> str:
    """Gravatar's picture for `email` (SHA-256 of the trimmed, lowercased address, as
    Gravatar's documentation asks), `size` pixels square, `default` when it has none."""
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()
    return f"https://www.gravatar.com/avatar/{digest}?" + urlencode({"s": size, "d": default})
