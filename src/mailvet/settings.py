"""Settings: msgspec.Struct groups, read once from MAILVET_* variables (and an optional TOML file).

This is the only module that reads the environment. `load_settings()` is called once per
command by the CLI (`cli._load`, for `mailvet run` too) and the result is passed down:
to `bootstrap.build_deps`, which builds the ports the web app factory and the roles take.

Precedence: defaults < TOML file (`MAILVET_CONFIG`, else ./config/mailvet.toml if present)
< environment. Every field has its environment variable, derived from the structs: the
group's `ENV_PREFIX` and the field name (`smtp.timeout` is MAILVET_SMTP_TIMEOUT), unless
the field names its own (`smtp.mail_from` is MAILVET_MAIL_FROM, the names in use before the
rule). `variables()` walks the structs; `python -m mailvet.settings --markdown` prints the
table kept in docs/settings.md (a test checks that they agree).

Each field's limits are msgspec constraints (`Meta(ge=1)`): a value that makes no sense is
refused at start with one line naming the variable, the allowed values and what was given.
"""

import enum
import functools
import os
import sys
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, cast
from urllib.parse import urlsplit

import msgspec
import msgspec.inspect as mi

from mailvet.domain.throttle import Rate, parse_rates
from mailvet.domain.verdict import Check


class SettingsError(Exception):
    """A setting has a bad value: the message names the variable."""


def _m(
    doc: str,
    *,
    env: str | tuple[str, ...] = (),
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> msgspec.Meta:
    """A field's description, limits and (when it breaks the rule) environment variable(s);
    with several names the first one set wins."""
    names = (env,) if isinstance(env, str) else env
    meta: Any = msgspec.Meta  # its stubs take ge and gt only one at a time
    return cast(
        msgspec.Meta,
        meta(description=doc, ge=ge, gt=gt, le=le, extra={"env": names} if names else None),
    )


PORT = 65_535
IMPLICIT_TLS_PORT = 465  # SMTP with TLS from the first byte (RFC 8314)
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class DnsSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ENV_PREFIX: ClassVar[str] = "MAILVET_DNS_"

    servers: Annotated[tuple[str, ...], _m("resolvers, `host[:port]`; empty: the system's")] = ()
    timeout: Annotated[float, _m("seconds for one whole lookup (all tries)", gt=0)] = 5.0
    cache_size: Annotated[int, _m("lookups remembered", ge=1)] = 100_000
    failure_ttl: Annotated[float, _m("seconds a SERVFAIL/timeout answer is remembered", ge=0)] = 5.0
    max_ttl: Annotated[
        float, _m("no answer is remembered longer (nor longer than its own TTL)", ge=0)
    ] = 3600.0
    max_in_flight: Annotated[
        int, _m("queries outstanding at once (a burst of thousands gets dropped)", ge=1)
    ] = 100


class SmtpSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ENV_PREFIX: ClassVar[str] = "MAILVET_SMTP_"

    mail_from: Annotated[
        str,
        _m(
            "MAIL FROM address; empty: the null reverse-path `<>` (accepted everywhere)",
            env="MAILVET_MAIL_FROM",
        ),
    ] = ""
    helo_name: Annotated[
        str, _m("EHLO name; should match the outbound IP's reverse DNS", env="MAILVET_HELO_NAME")
    ] = "localhost"
    port: Annotated[int, _m("port of the MX hosts", ge=1, le=PORT)] = 25
    timeout: Annotated[float, _m("seconds for every socket operation", gt=0)] = 10.0
    retries: Annotated[int, _m("tries again after a temporary (4xx) reply", ge=0)] = 2
    retry_delay: Annotated[float, _m("seconds before each retry", ge=0)] = 300.0
    per_host_connections: Annotated[int, _m("sessions at once to one MX address", ge=1)] = 3
    max_connections: Annotated[int, _m("sessions at once across all MX hosts", ge=1)] = 100
    recipients_per_transaction: Annotated[
        int, _m("first batch size; grows while the server keeps up", ge=1)
    ] = 20
    max_recipients_per_transaction: Annotated[
        int, _m("largest batch (RFC 5321 4.5.3.1.8: servers take at least 100)", ge=1)
    ] = 100
    catch_all_check: Annotated[
        bool,
        _m(
            "ask each domain whether it accepts any address (catch-all); off: mailvet_catch_all"
            " stays empty and accepted mailboxes are deliverable"
        ),
    ] = True
    address_deadline: Annotated[
        float, _m("seconds one address may take, all MX hosts and retries", gt=0)
    ] = 120.0
    max_mx_hosts: Annotated[int, _m("MX hosts tried per domain (RFC 5321 5.1)", ge=1)] = 5
    allow_private: Annotated[
        bool, _m("connect to loopback/private MX addresses (test worlds only)")
    ] = False
    starttls: Annotated[bool, _m("opportunistic STARTTLS when offered")] = True
    tls_verify: Annotated[bool, _m("verify the server certificate after STARTTLS")] = False


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ENV_PREFIX: ClassVar[str] = "MAILVET_"

    checks: Annotated[Check, _m("how far to go by default")] = Check.SMTP
    chunk_size: Annotated[int, _m("rows per message (DNS/SMTP checks)", ge=1)] = 1000
    syntax_chunk_size: Annotated[
        int, _m("rows per message for syntax-only jobs (cheap rows)", ge=1)
    ] = 10_000
    syntax_processes: Annotated[
        int, _m("processes for syntax-only chunks; -1: one per CPU, 0: none", ge=-1)
    ] = -1
    worker_concurrency: Annotated[
        int,
        _m(
            "syntax-only chunks in progress at once per worker (CPU slots); network chunks:"
            " 8 times as many",
            ge=1,
        ),
    ] = 16
    dispatch_backlog: Annotated[
        int, _m("chunks the orchestrator keeps waiting in each work queue", ge=1)
    ] = 8
    verdict_cache_size: Annotated[int, _m("addresses remembered per worker (dedupe)", ge=1)] = (
        200_000
    )
    verdict_ttl: Annotated[
        float, _m("seconds a verdict is remembered by a long-running worker", ge=0)
    ] = 3600.0
    unknown_ttl: Annotated[float, _m("seconds an `unknown` verdict is remembered", ge=0)] = 10.0
    max_cell_bytes: Annotated[
        int, _m("longest cell of a list; a file with a longer one is refused", ge=1)
    ] = 131_072
    max_xlsx_expanded_bytes: Annotated[
        int, _m("bytes an XLSX workbook may inflate to (all its parts); larger: refused", ge=1)
    ] = 1 << 30


class StorageSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ENV_PREFIX: ClassVar[str] = "MAILVET_"

    backend: Annotated[
        Literal["local", "memory", "s3"], _m("where files are kept", env="MAILVET_STORAGE")
    ] = "local"
    root: Annotated[
        str, _m("local folder; empty: `<data_dir>/storage`", env="MAILVET_STORAGE_ROOT")
    ] = ""
    s3_endpoint: Annotated[str, _m("`host:port`, or an `http(s)://` URL")] = "127.0.0.1:9000"
    s3_public_endpoint: Annotated[
        str, _m("what download links name, if browsers reach S3 elsewhere")
    ] = ""
    s3_access_key: Annotated[str, _m("S3 access key")] = ""
    s3_secret_key: Annotated[str, _m("S3 secret key")] = ""
    s3_bucket: Annotated[str, _m("bucket (created on first use)")] = "mailvet"
    s3_secure: Annotated[bool, _m("TLS to S3 (an `https://` endpoint implies it)")] = False
    s3_ca_file: Annotated[
        str,
        _m(
            "CA bundle for TLS to S3; empty: certifi's",
            env=("MAILVET_S3_CA_FILE", "SSL_CERT_FILE"),
        ),
    ] = ""
    s3_retry_for: Annotated[
        float, _m("seconds a call keeps retrying while S3 or PostgreSQL is unreachable", ge=0)
    ] = 120.0
    link_seconds: Annotated[
        int,
        _m(
            "validity of pre-signed download links (SigV4: at most 7 days)",
            env="MAILVET_STORAGE_LINK_SECONDS",
            ge=1,
            le=7 * 24 * 3600,
        ),
    ] = 60


class BusSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ENV_PREFIX: ClassVar[str] = "MAILVET_RABBITMQ_"

    rabbitmq_url: Annotated[str, _m("AMQP URL of RabbitMQ", env="MAILVET_RABBITMQ_URL")] = (
        "amqp://guest:guest@127.0.0.1:5672/"
    )
    prefix: Annotated[str, _m("queue and exchange names start with it")] = "mailvet"
    delivery_limit: Annotated[int, _m("deliveries before a message is dead-lettered", ge=1)] = 5


class WebSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The SaaS in the browser: accounts, sessions, credits, security."""

    ENV_PREFIX: ClassVar[str] = "MAILVET_"

    secret_key: Annotated[
        str,
        _m(
            "signs sessions and CSRF tokens, encrypts TOTP secrets; required outside the"
            " embedded default (empty there: one is made and kept in the data folder)"
        ),
    ] = ""
    public_url: Annotated[
        str, _m("where users reach the web app (links in mail; https: HSTS, Secure cookies)")
    ] = "http://127.0.0.1:8000"
    credits: Annotated[
        Literal["on", "off"], _m("charge credits for validation (off: everything is free)")
    ] = "on"
    free_credits: Annotated[int, _m("credits granted at sign-up", ge=0)] = 100
    retention_days: Annotated[
        float, _m("uploaded lists and results are deleted after this many days", gt=0)
    ] = 30.0
    web_rate_limit: Annotated[
        str, _m("app-wide limit per IP for pages and forms, `N/unit` comma-separated")
    ] = "200/minute,400/hour"
    api_rate_limit: Annotated[
        str,
        _m(
            "limit per API key (/api/v1 and the compatibility endpoints, across all web"
            " processes), `N/unit` comma-separated; empty: no limit"
        ),
    ] = "100/second"
    cors_origins: Annotated[
        tuple[str, ...], _m("origins allowed to call /api/* from a browser (CORS)")
    ] = ()
    session_max_age: Annotated[int, _m("seconds a sign-in lasts", ge=60)] = 14 * 24 * 3600
    recaptcha_site_key: Annotated[str, _m("reCAPTCHA v2 site key; empty: no captcha")] = ""
    recaptcha_secret_key: Annotated[str, _m("reCAPTCHA v2 secret key")] = ""
    recaptcha_verify_url: Annotated[str, _m("reCAPTCHA siteverify endpoint")] = (
        "https://www.google.com/recaptcha/api/siteverify"
    )
    google_discovery_url: Annotated[str, _m("OpenID discovery document of Google sign-in")] = (
        "https://accounts.google.com/.well-known/openid-configuration"
    )
    google_client_id: Annotated[str, _m("OAuth client id; empty: no Google sign-in")] = ""
    google_client_secret: Annotated[str, _m("OAuth client secret")] = ""
    privacy_text: Annotated[str, _m("text of the privacy page (Markdown-free plain text)")] = ""
    terms_text: Annotated[str, _m("text of the terms page (plain text)")] = ""

    def __post_init__(self) -> None:
        try:
            parse_rates(self.web_rate_limit)
        except ValueError as exc:
            raise ValueError(f"web_rate_limit: {exc}") from None
        try:
            parse_rates(self.api_rate_limit)
        except ValueError as exc:
            raise ValueError(f"api_rate_limit: {exc}") from None

    @property
    def rates(self) -> tuple[Rate, ...]:
        """MAILVET_WEB_RATE_LIMIT as rates (checked when the settings were made)."""
        return parse_rates(self.web_rate_limit)

    @property
    def api_rates(self) -> tuple[Rate, ...]:
        """MAILVET_API_RATE_LIMIT as rates (checked when the settings were made)."""
        return parse_rates(self.api_rate_limit)

    @property
    def https(self) -> bool:
        """Users reach the app over https: Secure cookies and HSTS."""
        return self.public_url.lower().startswith("https://")

    @property
    def charging(self) -> bool:
        """Does validation cost credits? (MAILVET_CREDITS: on unless off)"""
        return self.credits == "on"

    @property
    def base_url(self) -> str:
        """MAILVET_PUBLIC_URL without its trailing `/`: links are `base_url + "/path"`."""
        return self.public_url.rstrip("/")

    @property
    def host(self) -> str:
        """The host name of MAILVET_PUBLIC_URL ("" when it has none)."""
        return urlsplit(self.public_url).hostname or ""


class MailerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Outgoing mail of the SaaS (codes, resets, notices), sent from a durable outbox."""

    ENV_PREFIX: ClassVar[str] = "MAILVET_MAILER_"

    backend: Annotated[
        Literal["smtp", "log", "memory"],
        _m("smtp: a mail server; log: the message goes to the log", env="MAILVET_MAILER"),
    ] = "log"
    host: Annotated[str, _m("SMTP server")] = "127.0.0.1"
    port: Annotated[int, _m("SMTP port", ge=1, le=PORT)] = 587
    username: Annotated[
        str, _m("SMTP user; empty: no AUTH (a user needs STARTTLS on, or port 465)")
    ] = ""
    password: Annotated[str, _m("SMTP password")] = ""
    starttls: Annotated[bool, _m("STARTTLS required (else used only when offered)")] = False
    sender: Annotated[str, _m("From: of the mail", env="MAILVET_MAILER_FROM")] = (
        "mailvet <no-reply@localhost>"
    )
    timeout: Annotated[float, _m("seconds for one delivery attempt", gt=0)] = 30.0

    def __post_init__(self) -> None:
        if self.username and not (self.starttls or self.port == IMPLICIT_TLS_PORT):
            raise ValueError(
                "username: a user name needs MAILVET_MAILER_STARTTLS on: the password would"
                " go over unverified (or stripped) TLS. Turn STARTTLS on, use port"
                f" {IMPLICIT_TLS_PORT} (TLS from the first byte), or set no user name"
            )


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Completion webhooks: POSTed by the web role (services/webhooks.py)."""

    ENV_PREFIX: ClassVar[str] = "MAILVET_WEBHOOK_"

    allow_private: Annotated[
        bool,
        _m("call webhook URLs on loopback/private/reserved addresses (tests only: SSRF)"),
    ] = False
    timeout: Annotated[float, _m("seconds one delivery attempt may take", gt=0)] = 10.0


class BillingSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Billing (issue 10): off, or Stripe (Checkout, the Billing Portal, webhooks)."""

    ENV_PREFIX: ClassVar[str] = "MAILVET_STRIPE_"

    backend: Annotated[
        Literal["off", "stripe"],
        _m(
            "off: no Stripe calls, credits granted by an admin (or MAILVET_CREDITS=off);"
            " stripe: sold through Stripe",
            env="MAILVET_BILLING",
        ),
    ] = "off"
    api_key: Annotated[str, _m("Stripe secret key (`sk_...`); required with stripe")] = ""
    api_base: Annotated[str, _m("Stripe API address (tests point it at a local server)")] = (
        "https://api.stripe.com"
    )
    webhook_secret: Annotated[
        str, _m("signing secret of the webhook endpoint (`whsec_...`); required with stripe")
    ] = ""
    credits_product: Annotated[
        tuple[str, ...],
        _m("Stripe product(s) whose prices are the tiers (`mailvet billing sync`), `prod_...`"),
    ] = ()
    max_network_retries: Annotated[
        int, _m("retries of a Stripe call that failed on the network or a 409/5xx", ge=0)
    ] = 2
    timeout: Annotated[
        float, _m("seconds one Stripe call may wait for its answer (each retry as long)", gt=0)
    ] = 10.0
    credit_unit_price_cents: Annotated[
        int,
        _m(
            "price of 1,000 credits in a pack, in cents (10,000,000 credits stay under"
            " Stripe's largest amount)",
            env="MAILVET_CREDIT_UNIT_PRICE_CENTS",
            ge=1,
            le=9_999,
        ),
    ] = 1000
    credit_currency: Annotated[
        str,
        _m(
            "currency of the packs, as Stripe writes it (ISO 4217, lower case)",
            env="MAILVET_CREDIT_CURRENCY",
        ),
    ] = "usd"

    def missing(self) -> tuple[str, ...]:
        """The variables MAILVET_BILLING=stripe needs and lacks (the composition root refuses
        to build the Stripe gateway without them: a value here alone is not wrong)."""
        if not self.stripe:
            return ()
        needed = (
            ("MAILVET_STRIPE_API_KEY", self.api_key),
            ("MAILVET_STRIPE_WEBHOOK_SECRET", self.webhook_secret),
        )
        return tuple(name for name, value in needed if not value)

    @property
    def stripe(self) -> bool:
        """Is billing through Stripe? (MAILVET_BILLING=stripe)"""
        return self.backend == "stripe"


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    ENV_PREFIX: ClassVar[str] = "MAILVET_"

    data_dir: Annotated[str, _m("SQLite file and local storage folder")] = ".mailvet"
    database_url: Annotated[
        str, _m("SQLAlchemy URL; empty: `sqlite+aiosqlite:///<data_dir>/mailvet.db`")
    ] = ""
    bus: Annotated[Literal["memory", "rabbit"], _m("message bus between the roles")] = "memory"
    health_port: Annotated[
        int,
        _m("`mailvet run <role>` serves GET /health and /metrics here (0: off)", ge=0, le=PORT),
    ] = 9464
    health_host: Annotated[str, _m("address /health and /metrics listen on")] = "127.0.0.1"
    web_host: Annotated[str, _m("address the web role listens on")] = "127.0.0.1"
    web_port: Annotated[int, _m("port of the web role", ge=0, le=PORT)] = 8000
    web_upload_idle_seconds: Annotated[
        float, _m("an upload that sends nothing this long is cut off (408)", gt=0)
    ] = 30.0
    log_level: Annotated[
        LogLevel | None, _m("unset: `warning` for commands, `info` for `mailvet run`")
    ] = None
    log_json: Annotated[
        bool | None, _m("JSON log lines; unset: text for commands, JSON for `mailvet run`")
    ] = None
    dns: DnsSettings = DnsSettings()
    smtp: SmtpSettings = SmtpSettings()
    engine: EngineSettings = EngineSettings()
    storage: StorageSettings = StorageSettings()
    rabbit: BusSettings = BusSettings()
    web: WebSettings = WebSettings()
    mailer: MailerSettings = MailerSettings()
    webhooks: WebhookSettings = WebhookSettings()
    billing: BillingSettings = BillingSettings()

    @property
    def database(self) -> str:
        return (
            self.database_url or f"sqlite+aiosqlite:///{Path(self.data_dir).resolve()}/mailvet.db"
        )

    @property
    def scratch_dir(self) -> Path:
        """Where files in transit are kept (uploads, a job's local copies, the growing
        result): under the data folder, never the system temp folder."""
        return (Path(self.data_dir) / "tmp").resolve()

    @property
    def storage_root(self) -> Path:
        return Path(self.storage.root or Path(self.data_dir) / "storage").resolve()


# --- the variables, walked from the structs ------------------------------------------------


class Variable(msgspec.Struct, frozen=True):
    """One setting: its environment variable(s), where it sits, its type and default."""

    names: tuple[str, ...]  # the first is the one documented; any of them sets the field
    group: str  # "" for the top-level fields
    field: str
    annotation: Any  # the field's own, Annotated[...] with its limits when it has some
    default: Any
    doc: str

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def type(self) -> mi.Type:
        """msgspec's account of the type and its limits (for messages and the docs table)."""
        kind = mi.type_info(self.annotation)
        return kind.type if isinstance(kind, mi.Metadata) else kind

    @property
    def key(self) -> str:
        """The TOML key: `field` or `group.field`."""
        return f"{self.group}.{self.field}" if self.group else self.field


def variables() -> tuple[Variable, ...]:
    """Every field of Settings and its groups, in declaration order."""
    return _variables()


@functools.cache  # walked once per process, on first use
def _variables() -> tuple[Variable, ...]:
    # read from the class annotations (real objects: this module has no `from __future__
    # import annotations`), which costs far less at start-up than msgspec.inspect
    found: list[Variable] = []
    defaults = Settings()
    for name in Settings.__struct_fields__:
        annotation = Settings.__annotations__[name]
        if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
            group = getattr(defaults, name)
            fields = group.__struct_fields__
            found.extend(_variable(annotation, name, inner, group) for inner in fields)
        else:
            found.append(_variable(Settings, "", name, defaults))
    return tuple(found)


def _variable(cls: type[Any], group: str, name: str, defaults: object) -> Variable:
    annotation = cls.__annotations__[name]
    meta = _meta_of(annotation)
    names: tuple[str, ...] = tuple((meta.extra or {}).get("env", ())) if meta else ()
    prefix: str = cls.ENV_PREFIX
    return Variable(
        names=names or (prefix + name.upper(),),
        group=group,
        field=name,
        annotation=annotation,
        default=getattr(defaults, name),
        doc=(meta.description or "") if meta else "",
    )


def _meta_of(annotation: Any) -> msgspec.Meta | None:
    if typing.get_origin(annotation) is Annotated:
        return next((m for m in annotation.__metadata__ if isinstance(m, msgspec.Meta)), None)
    return None


def _base(annotation: Any) -> Any:
    return typing.get_args(annotation)[0] if _meta_of(annotation) is not None else annotation


# --- loading -------------------------------------------------------------------------------


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Build Settings from defaults, the TOML file and the environment (strings are converted)."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    path = config_file or (Path(env["MAILVET_CONFIG"]) if env.get("MAILVET_CONFIG") else None)
    if path is None and Path("config/mailvet.toml").is_file():
        path = Path("config/mailvet.toml")
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
    given: dict[str, tuple[str, object]] = {}  # key -> (where it was set, as given)
    if path is not None:
        for key, value in _flatten(data):
            group, _, field = key.rpartition(".")
            given[key] = (f"[{group}] {field} in {path}" if group else f"{field} in {path}", value)
    for var in variables():
        name = next((n for n in var.names if n in env), None)
        if name is None:
            continue
        raw = env[name]
        target = data.setdefault(var.group, {}) if var.group else data
        if not isinstance(target, dict):  # the file gave a value where a table belongs
            raise SettingsError(f"[{var.group}] in {path} must be a table")
        target[var.field] = _from_env(var.annotation, raw)
        given[var.key] = (name, raw)
    _fold_case(data)
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(str(exc), given, path)) from exc


def _flatten(data: Mapping[str, Any], group: str = "") -> Iterator[tuple[str, object]]:
    for key, value in data.items():
        if not group and isinstance(value, dict):
            yield from _flatten(value, key)
        else:
            yield (f"{group}.{key}" if group else key), value


def _from_env(annotation: Any, raw: str) -> object:
    """An environment string as msgspec's lax conversion takes it (lists are comma-separated)."""
    if typing.get_origin(_base(annotation)) in (tuple, list):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _fold_case(data: dict[str, Any]) -> None:
    """Choices (bus, backend, log level, checks) in any case: `MAILVET_BUS=Rabbit` works."""
    for var in variables():
        if not _is_choice(_base(var.annotation)):
            continue
        target = data.get(var.group) if var.group else data
        if isinstance(target, dict) and isinstance(target.get(var.field), str):
            target[var.field] = target[var.field].lower()


def _explain(message: str, given: Mapping[str, tuple[str, object]], path: Path | None) -> str:
    """msgspec's `Expected `int` >= 1 - at `$.engine.chunk_size`` as one line that names the
    variable (or the file's key), what it must be and what it got."""
    text, _, where = message.partition(" - at ")
    key = where.strip("`").removeprefix("$").lstrip(".")
    var = next((v for v in variables() if v.key == key), None)
    if "unknown field" in text:  # only a file can name a field that does not exist
        unknown = text.split("`")[1] if text.count("`") >= 2 else text
        table = f"[{key}] " if key else ""
        return f"unknown setting {table}{unknown} in {path}"
    field, colon, reason = text.partition(": ")
    checked = next((v for v in variables() if colon and v.key == f"{key}.{field}"), None)
    if checked is not None:  # a group's own check (__post_init__): "field: why"
        source = given[checked.key][0] if checked.key in given else checked.name
        return f"{source}: {reason}"
    if var is None or key not in given:
        return f"bad setting: {message}"
    source, value = given[key]
    if isinstance(value, str):
        shown = value if value and value.strip() == value and " " not in value else repr(value)
    else:
        shown = repr(value)
    return f"{source} must be {describe(var.type, article=True)}, got {shown}"


def _is_choice(kind: Any) -> bool:
    """A Literal, an Enum, or either or None."""
    if typing.get_origin(kind) is Literal:
        return True
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return any(_is_choice(k) for k in typing.get_args(kind))
    return isinstance(kind, type) and issubclass(kind, enum.Enum)


def _choices(kind: mi.Type) -> tuple[str, ...]:
    if isinstance(kind, mi.LiteralType):
        return tuple(str(v) for v in kind.values)
    if isinstance(kind, mi.EnumType):
        return tuple(str(m.value) for m in kind.cls)
    if isinstance(kind, mi.UnionType):
        return tuple(c for t in kind.types for c in _choices(t))
    return ()


def describe(kind: mi.Type, *, article: bool = False) -> str:
    """What a value of this type may be: `an integer >= 1`, `one of memory, rabbit`..."""
    if isinstance(kind, mi.UnionType):
        kinds = [t for t in kind.types if not isinstance(t, mi.NoneType)]
        return " or ".join(describe(t, article=article) for t in kinds)
    choices = _choices(kind)
    if choices:
        return ("one of " if article else "") + ", ".join(choices)
    if isinstance(kind, mi.BoolType):
        return "true or false"
    if isinstance(kind, mi.IntType | mi.FloatType):
        noun = "integer" if isinstance(kind, mi.IntType) else "number"
        limits = _limits(kind)
        said = f"{'an' if noun == 'integer' else 'a'} {noun}" if article else noun
        return said + (f" {limits}" if limits else "")
    if isinstance(kind, mi.VarTupleType | mi.ListType):
        return "comma-separated list"
    return "text"


def _limits(kind: mi.IntType | mi.FloatType) -> str:
    low = f">= {kind.ge}" if kind.ge is not None else f"> {kind.gt}" if kind.gt is not None else ""
    if kind.le is not None:
        return f"{kind.ge} to {kind.le}" if kind.ge is not None else f"<= {kind.le}"
    return low


# --- the table -----------------------------------------------------------------------------


def _shown_default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value in ("", ()):
        return "empty"
    if isinstance(value, tuple):
        value = ",".join(map(str, value))
    return f"`{value}`"


def markdown() -> str:
    """docs/settings.md: every variable, its TOML key, default, allowed values and meaning."""
    lines = [
        "# Settings",
        "",
        "<!-- generated by `python -m mailvet.settings --markdown`; a test checks it -->",
        "",
        "Every setting is read from its `MAILVET_*` environment variable, over an optional TOML",
        "file (`MAILVET_CONFIG`, else `config/mailvet.toml` in the working directory; keys as in",
        "the second column, `group.field` being `field` under `[group]`). A value outside its",
        "allowed range is refused at start with one line that names the variable.",
        "",
        "| Variable | TOML key | Default | Allowed | Meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for var in variables():
        names = " or ".join(f"`{n}`" for n in var.names)
        allowed = describe(var.type).replace("|", "\\|")
        doc = var.doc.replace("|", "\\|")
        lines.append(
            f"| {names} | `{var.key}` | {_shown_default(var.default)} | {allowed} | {doc} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["--markdown"]:
        print("usage: python -m mailvet.settings --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
