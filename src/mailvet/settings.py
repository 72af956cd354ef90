"""Settings: msgspec.Struct groups, read once from MAILVET_* variables (and an optional TOML file).

This is the only module that reads the environment. `load_settings()` is called by the
entry points (CLI, web app factory) and the result is passed down.

Precedence: defaults < TOML file (`MAILVET_CONFIG`, else ./config/mailvet.toml if present)
< environment. Each environment variable maps to one field, e.g. MAILVET_SMTP_TIMEOUT to
`smtp.timeout`; the table `ENV` below lists them all.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from mailvet.domain.verdict import Check


class SettingsError(Exception):
    """A setting has a bad value: the message names the variable."""


class DnsSettings(msgspec.Struct, frozen=True, kw_only=True):
    servers: tuple[str, ...] = ()  # host[:port]; empty = the system resolver
    timeout: float = 5.0  # seconds for one whole lookup (all tries)
    cache_size: int = 100_000
    failure_ttl: float = 5.0  # seconds a SERVFAIL/timeout answer is remembered
    max_ttl: float = 3600.0  # no answer is remembered longer (nor longer than its own TTL)
    max_in_flight: int = 100  # queries outstanding at once (a burst of thousands gets dropped)


class SmtpSettings(msgspec.Struct, frozen=True, kw_only=True):
    mail_from: str = ""  # empty: the null reverse-path MAIL FROM:<> (accepted everywhere)
    helo_name: str = "localhost"
    port: int = 25
    timeout: float = 10.0  # every socket operation
    retries: int = 2  # after a temporary (4xx) reply
    retry_delay: float = 300.0  # seconds before each retry
    per_host_connections: int = 3
    max_connections: int = 100  # across all MX hosts
    recipients_per_transaction: int = 20  # first batch size; grows while the server keeps up
    max_recipients_per_transaction: int = 100  # RFC 5321 4.5.3.1.8: servers take at least 100
    catch_all_check: bool = True
    address_deadline: float = 120.0  # seconds one address may take, all MX hosts and retries
    max_mx_hosts: int = 5  # MX hosts tried per domain (RFC 5321 5.1)
    allow_private: bool = False  # connect to loopback/private MX addresses (test worlds only)
    starttls: bool = True  # opportunistic STARTTLS when offered
    tls_verify: bool = False  # verify the server certificate after STARTTLS


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True):
    checks: Check = Check.SMTP
    chunk_size: int = 1000  # rows per message (DNS/SMTP checks)
    syntax_chunk_size: int = 10_000  # rows per message for syntax-only jobs (cheap rows)
    syntax_processes: int = -1  # processes for syntax-only chunks; -1 = one per CPU, 0 = none
    worker_concurrency: int = 16  # chunks in progress at once per worker
    dispatch_backlog: int = 8  # chunks the orchestrator keeps waiting in the work queue
    verdict_cache_size: int = 200_000  # addresses remembered per worker (dedupe)
    verdict_ttl: float = 3600.0  # seconds a verdict is remembered by a long-running worker
    unknown_ttl: float = 10.0  # seconds an `unknown` verdict is remembered


class StorageSettings(msgspec.Struct, frozen=True, kw_only=True):
    backend: str = "local"  # local | memory | s3
    root: str = ""  # local folder; default <data_dir>/storage
    s3_endpoint: str = "127.0.0.1:9000"  # host:port, or an http(s):// URL
    s3_public_endpoint: str = ""  # what download links name, if browsers reach S3 elsewhere
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "mailvet"
    s3_secure: bool = False
    s3_retry_for: float = 120.0  # seconds an operation keeps retrying while S3 is unreachable
    link_seconds: int = 60  # validity of pre-signed download links


class BusSettings(msgspec.Struct, frozen=True, kw_only=True):
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    prefix: str = "mailvet"  # queue and exchange names start with it
    delivery_limit: int = 5  # deliveries before a message is dead-lettered


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: str = ".mailvet"
    database_url: str = ""  # default sqlite+aiosqlite:///<data_dir>/mailvet.db
    bus: str = "memory"  # memory | rabbit
    health_port: int = 0  # `mailvet run <role>` answers GET /health here (0: off)
    health_host: str = "127.0.0.1"  # address of /health and /metrics on health_port
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    log_level: str = "warning"
    log_json: bool = False
    dns: DnsSettings = DnsSettings()
    smtp: SmtpSettings = SmtpSettings()
    engine: EngineSettings = EngineSettings()
    storage: StorageSettings = StorageSettings()
    rabbit: BusSettings = BusSettings()

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{Path(self.data_dir).resolve()}/mailvet.db"

    @property
    def storage_root(self) -> Path:
        return Path(self.storage.root or Path(self.data_dir) / "storage").resolve()


# environment variable -> (group or "", field)
ENV: dict[str, tuple[str, str]] = {
    "MAILVET_DATA_DIR": ("", "data_dir"),
    "MAILVET_DATABASE_URL": ("", "database_url"),
    "MAILVET_BUS": ("", "bus"),
    "MAILVET_LOG_LEVEL": ("", "log_level"),
    "MAILVET_LOG_JSON": ("", "log_json"),
    "MAILVET_DNS_SERVERS": ("dns", "servers"),
    "MAILVET_DNS_TIMEOUT": ("dns", "timeout"),
    "MAILVET_DNS_FAILURE_TTL": ("dns", "failure_ttl"),
    "MAILVET_DNS_MAX_TTL": ("dns", "max_ttl"),
    "MAILVET_DNS_MAX_IN_FLIGHT": ("dns", "max_in_flight"),
    "MAILVET_MAIL_FROM": ("smtp", "mail_from"),
    "MAILVET_HELO_NAME": ("smtp", "helo_name"),
    "MAILVET_SMTP_PORT": ("smtp", "port"),
    "MAILVET_SMTP_TIMEOUT": ("smtp", "timeout"),
    "MAILVET_SMTP_RETRIES": ("smtp", "retries"),
    "MAILVET_SMTP_RETRY_DELAY": ("smtp", "retry_delay"),
    "MAILVET_SMTP_PER_HOST_CONNECTIONS": ("smtp", "per_host_connections"),
    "MAILVET_SMTP_MAX_CONNECTIONS": ("smtp", "max_connections"),
    "MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION": ("smtp", "recipients_per_transaction"),
    "MAILVET_SMTP_MAX_RECIPIENTS_PER_TRANSACTION": ("smtp", "max_recipients_per_transaction"),
    "MAILVET_SMTP_ADDRESS_DEADLINE": ("smtp", "address_deadline"),
    "MAILVET_SMTP_MAX_MX_HOSTS": ("smtp", "max_mx_hosts"),
    "MAILVET_SMTP_ALLOW_PRIVATE": ("smtp", "allow_private"),
    "MAILVET_SMTP_STARTTLS": ("smtp", "starttls"),
    "MAILVET_SMTP_TLS_VERIFY": ("smtp", "tls_verify"),
    "MAILVET_CHECKS": ("engine", "checks"),
    "MAILVET_CHUNK_SIZE": ("engine", "chunk_size"),
    "MAILVET_SYNTAX_CHUNK_SIZE": ("engine", "syntax_chunk_size"),
    "MAILVET_SYNTAX_PROCESSES": ("engine", "syntax_processes"),
    "MAILVET_WORKER_CONCURRENCY": ("engine", "worker_concurrency"),
    "MAILVET_DISPATCH_BACKLOG": ("engine", "dispatch_backlog"),
    "MAILVET_VERDICT_TTL": ("engine", "verdict_ttl"),
    "MAILVET_UNKNOWN_TTL": ("engine", "unknown_ttl"),
    "MAILVET_STORAGE": ("storage", "backend"),
    "MAILVET_STORAGE_ROOT": ("storage", "root"),
    "MAILVET_S3_ENDPOINT": ("storage", "s3_endpoint"),
    "MAILVET_S3_PUBLIC_ENDPOINT": ("storage", "s3_public_endpoint"),
    "MAILVET_S3_ACCESS_KEY": ("storage", "s3_access_key"),
    "MAILVET_S3_SECRET_KEY": ("storage", "s3_secret_key"),
    "MAILVET_S3_BUCKET": ("storage", "s3_bucket"),
    "MAILVET_S3_SECURE": ("storage", "s3_secure"),
    "MAILVET_S3_RETRY_FOR": ("storage", "s3_retry_for"),
    "MAILVET_RABBITMQ_URL": ("rabbit", "rabbitmq_url"),
    "MAILVET_RABBITMQ_PREFIX": ("rabbit", "prefix"),
    "MAILVET_RABBITMQ_DELIVERY_LIMIT": ("rabbit", "delivery_limit"),
    "MAILVET_HEALTH_PORT": ("", "health_port"),
    "MAILVET_HEALTH_HOST": ("", "health_host"),
    "MAILVET_WEB_HOST": ("", "web_host"),
    "MAILVET_WEB_PORT": ("", "web_port"),
}


def _env_value(name: str, raw: str) -> Any:
    if name == "MAILVET_DNS_SERVERS":
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


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
    for name, (group, field) in ENV.items():
        if name not in env:
            continue
        target = data.setdefault(group, {}) if group else data
        target[field] = _env_value(name, env[name])
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"bad setting: {_name_for(str(exc))}") from exc


def _name_for(message: str) -> str:
    """Turn msgspec's `$.smtp.timeout` path into the environment variable name."""
    for name, (group, field) in ENV.items():
        path = f"$.{group}.{field}" if group else f"$.{field}"
        if message.endswith(path) or f"`{path}`" in message:
            return f"{name}: {message}"
    return message
