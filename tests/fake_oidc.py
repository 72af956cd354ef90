"""A local OpenID provider standing in for Google sign-in in the tests: a Litestar app served
by uvicorn on 127.0.0.1 (an ephemeral port) from a thread with its own event loop
(tests/local_http.py), so any test's loop, a browser or a web process can reach it.

It serves the discovery document, the JWKS (one RSA key, `rotate_key()` for a new one),
`/authorize` (approves at once: a 302 back to `redirect_uri` with `code` and `state`, or
`error=access_denied` when `knobs.deny`) and `/token` (client_secret_basic, one-time codes
bound to their client and redirect_uri, PKCE S256 checked), which signs an ID token for
`provider.user`. `provider.knobs` makes the next tokens wrong in one way each: another
nonce, audience or issuer, expired, an unverified address, a signature by a key it never
published, no ID token at all, an error answer without an "error" key, a token answer
that is not JSON; `knobs.down` makes discovery and JWKS answer 503.

One provider serves the whole test session from a thread of its own (fixture
`fake_oidc_server`); the fixture `fake_oidc` hands it to a test reset to its first state.
Use them by importing both into a test module (pytest registers them by their names):
    from tests.fake_oidc import FakeOidcProvider, fake_oidc_fixture, fake_oidc_server  # noqa: F401
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from litestar import Litestar, Request, get, post
from litestar.response import Redirect, Response

from tests.local_http import serving

CLIENT_ID = "mailvet-test-client.apps.example"
CLIENT_SECRET = "fake-oidc-secret"


@dataclass
class FakeUser:
    """Whom the provider signs in: the claims of the next ID token."""

    sub: str = "108234567890123456789"
    email: str = "ann.lee@example.com"
    email_verified: bool = True
    given_name: str = "Ann"
    family_name: str = "Lee"
    picture: str = "https://lh3.googleusercontent.com/a/fake-ann"


@dataclass
class Knobs:
    """Ways to make the next ID tokens (or answers) wrong; all off by default."""

    nonce: str | None = None  # put this nonce in instead of the one the client sent
    audience: str | list[str] | None = None  # this `aud` instead of the client id
    issuer: str | None = None  # this `iss` instead of the provider's own
    expired: bool = False  # exp (and iat) an hour or two in the past
    bad_signature: bool = False  # signed by a key it never published (same kid)
    omit_id_token: bool = False  # a token response without id_token
    error_without_error_key: bool = False  # /token answers 400 {"status_code", "detail"}
    token_not_json: bool = False  # /token answers 200 with an HTML page
    deny: bool = False  # /authorize sends the user back with error=access_denied
    down: bool = False  # discovery and JWKS answer 503
    extra_claims: dict[str, Any] = field(default_factory=dict)  # merged in last
    drop_claims: tuple[str, ...] = ()  # removed from the ID token


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str
    user: FakeUser


@dataclass
class TokenRequest:
    """What /token was asked, for the tests to look at."""

    client_id: str | None
    grant_type: str
    redirect_uri: str
    had_verifier: bool
    answered: int


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})


@functools.cache
def _first_key(kid: str, purpose: str) -> RSAKey:
    """The provider's first key and its rogue twin: made once per test session (RSA key
    generation is the slow part of starting the provider), on first use."""
    return _new_key(kid)


class FakeOidcProvider:
    """The provider's state; `app()` is its Litestar application."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.reset()

    def reset(self) -> None:
        """Back to the state of a new provider (the fixture does it before each test)."""
        self.user = FakeUser()
        self.knobs = Knobs()
        self.key = _first_key("key-1", "published")
        self._rogue = _first_key("key-1", "rogue")  # the same kid, never published
        self._generation = 1
        self._codes: dict[str, _Grant] = {}
        self.token_requests: list[TokenRequest] = []
        self.authorize_requests: list[dict[str, str]] = []
        self.discovery_hits = 0
        self.jwks_hits = 0

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def rotate_key(self) -> None:
        """Sign with a new key (new kid) and publish only that one from now on."""
        self._generation += 1
        self.key = _new_key(f"key-{self._generation}")

    def issue_code(self, grant: _Grant) -> str:
        code = secrets.token_urlsafe(24)
        self._codes[code] = grant
        return code

    # -- the endpoints ----------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        self.discovery_hits += 1
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        self.jwks_hits += 1
        return {"keys": [self.key.as_dict(private=False)]}

    def authorize(self, params: dict[str, str]) -> Response[Any]:
        self.authorize_requests.append(params)
        redirect_uri = params.get("redirect_uri", "")
        problems = [
            params.get("client_id") != self.client_id and "client_id",
            params.get("response_type") != "code" and "response_type",
            "openid" not in params.get("scope", "").split() and "scope",
            params.get("code_challenge_method") != "S256" and "code_challenge_method",
            not params.get("code_challenge") and "code_challenge",
            not redirect_uri.startswith(("http://", "https://")) and "redirect_uri",
        ]
        if any(problems):
            bad = ", ".join(p for p in problems if p)
            return Response({"error": "invalid_request", "bad": bad}, status_code=400)
        answer: dict[str, str] = {"state": params.get("state", "")}
        if self.knobs.deny:
            answer["error"] = "access_denied"
        else:
            answer["code"] = self.issue_code(
                _Grant(
                    client_id=self.client_id,
                    redirect_uri=redirect_uri,
                    code_challenge=params["code_challenge"],
                    nonce=params.get("nonce", ""),
                    user=FakeUser(**vars(self.user)),
                )
            )
        separator = "&" if "?" in redirect_uri else "?"
        return Redirect(redirect_uri + separator + urlencode(answer), status_code=302)

    def token(self, authorization: str | None, form: dict[str, str]) -> Response[Any]:
        client_id = self._basic_client(authorization)
        status, body = self._token_answer(client_id, form)
        self.token_requests.append(
            TokenRequest(
                client_id=client_id,
                grant_type=form.get("grant_type", ""),
                redirect_uri=form.get("redirect_uri", ""),
                had_verifier=bool(form.get("code_verifier")),
                answered=status,
            )
        )
        media_type = "text/html" if isinstance(body, str) else "application/json"
        return Response(
            body, status_code=status, media_type=media_type, headers={"Cache-Control": "no-store"}
        )

    def _basic_client(self, authorization: str | None) -> str | None:
        if not authorization or not authorization.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except ValueError:
            return None
        ok = hmac.compare_digest(password, self.client_secret)
        return user if user == self.client_id and ok else None

    def _token_answer(self, client_id: str | None, form: dict[str, str]) -> tuple[int, Any]:
        if self.knobs.error_without_error_key:
            return 400, {"status_code": 400, "detail": "Bad Request"}
        if self.knobs.token_not_json:
            return 200, "<html><body>Sign-in is down</body></html>"
        if client_id is None:
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        grant = self._codes.pop(form.get("code", ""), None)  # one use only
        if grant is None or grant.client_id != client_id:
            return 400, {"error": "invalid_grant", "error_description": "unknown code"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}
        verifier = form.get("code_verifier", "")
        if not verifier or not hmac.compare_digest(_s256(verifier), grant.code_challenge):
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        answer: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": 3599,
            "scope": "openid email profile",
        }
        if not self.knobs.omit_id_token:
            answer["id_token"] = self.id_token(grant)
        return 200, answer

    def id_token(self, grant: _Grant) -> str:
        knobs, user = self.knobs, grant.user
        now = int(time.time())
        if knobs.expired:
            now -= 7200
        claims: dict[str, Any] = {
            "iss": knobs.issuer or self.issuer,
            "aud": knobs.audience if knobs.audience is not None else grant.client_id,
            "azp": grant.client_id,
            "sub": user.sub,
            "email": user.email,
            "email_verified": user.email_verified,
            "given_name": user.given_name,
            "family_name": user.family_name,
            "name": f"{user.given_name} {user.family_name}".strip(),
            "picture": user.picture,
            "nonce": knobs.nonce if knobs.nonce is not None else grant.nonce,
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(knobs.extra_claims)
        for name in knobs.drop_claims:
            claims.pop(name, None)
        key = self._rogue if knobs.bad_signature else self.key
        return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims, key)

    # -- the application ------------------------------------------------------------------

    def app(self) -> Litestar:
        provider = self

        def unless_down(document: Callable[[], dict[str, Any]]) -> Response[Any]:
            if provider.knobs.down:
                return Response({"detail": "down for maintenance"}, status_code=503)
            return Response(document())

        @get("/.well-known/openid-configuration", sync_to_thread=False)
        def discovery() -> Response[Any]:
            return unless_down(provider.discovery)

        @get("/jwks", sync_to_thread=False)
        def jwks() -> Response[Any]:
            return unless_down(provider.jwks)

        # the query is read as it is: `state` and `scope` are names Litestar would inject
        # itself as handler parameters (LIBRARIES-SAAS.md §1.11)
        @get("/authorize", sync_to_thread=False)
        def authorize(request: Request[Any, Any, Any]) -> Response[Any]:
            return provider.authorize(dict(request.query_params))

        @post("/token")
        async def token(request: Request[Any, Any, Any]) -> Response[Any]:
            form = await request.form()
            fields = {name: str(value) for name, value in form.items()}
            return provider.token(request.headers.get("authorization"), fields)

        return Litestar(
            route_handlers=[discovery, jwks, authorize, token],
            logging_config=None,
            openapi_config=None,
        )


@contextlib.contextmanager
def running_fake_oidc() -> Iterator[FakeOidcProvider]:
    """The provider, listening on 127.0.0.1 until the block ends."""
    providers: list[FakeOidcProvider] = []

    def make_app(base_url: str) -> Litestar:
        providers.append(FakeOidcProvider(base_url))
        return providers[0].app()

    with serving(make_app):
        yield providers[0]


@pytest.fixture(scope="session")
def fake_oidc_server() -> Iterator[FakeOidcProvider]:
    with running_fake_oidc() as provider:
        yield provider


@pytest.fixture(name="fake_oidc")
def fake_oidc_fixture(fake_oidc_server: FakeOidcProvider) -> FakeOidcProvider:
    """The session's provider, as new: default user and knobs, first key, nothing recorded."""
    fake_oidc_server.reset()
    return fake_oidc_server
