from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import msgspec.inspect as mi
import pytest

import mailvet.settings as settings_module
from mailvet.domain.verdict import Check
from mailvet.settings import Settings, SettingsError, Variable, load_settings, markdown, variables

pytestmark = pytest.mark.unit


def test_defaults_suit_the_real_internet() -> None:
    settings = load_settings({})
    assert settings.smtp.port == 25 and settings.smtp.timeout == 10.0
    assert settings.smtp.retry_delay == 300.0 and settings.smtp.retries == 2
    assert settings.smtp.per_host_connections == 3
    # the null reverse-path: a MAIL FROM domain that cannot resolve is refused by every
    # server that verifies senders; <> is accepted everywhere (RFC 5321 4.5.5)
    assert settings.smtp.mail_from == ""
    assert settings.smtp.allow_private is False  # never probe our own network by default
    assert settings.smtp.address_deadline == 120.0 and settings.smtp.max_mx_hosts == 5
    assert settings.smtp.max_recipients_per_transaction == 100
    assert settings.database.startswith("sqlite+aiosqlite:///")


def test_environment_overrides_file(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text('[smtp]\ntimeout = 3.0\nport = 2525\n[engine]\nchecks = "dns"\n')
    settings = load_settings(
        {
            "MAILVET_CONFIG": str(config),
            "MAILVET_SMTP_PORT": "2526",
            "MAILVET_DNS_SERVERS": "127.0.0.1:5353, 10.0.0.1",
        }
    )
    assert settings.smtp.timeout == 3.0 and settings.smtp.port == 2526
    assert settings.engine.checks is Check.DNS
    assert settings.dns.servers == ("127.0.0.1:5353", "10.0.0.1")


@pytest.mark.parametrize(
    ("name", "value"), [("MAILVET_SMTP_TIMEOUT", "soon"), ("MAILVET_CHECKS", "all")]
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp\n")
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings({"MAILVET_CONFIG": str(bad)})


def test_example_config_file_matches_the_defaults() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "mailvet.example.toml"
    assert load_settings({}, example) == load_settings({"MAILVET_CONFIG": str(example)})
    assert load_settings({}, example).smtp == load_settings({}).smtp


# --- every field has its variable, the docs table is the structs' -----------------------

# the variables in use before the names were derived from the structs: each still works
NAMES_IN_USE = """
MAILVET_DATA_DIR MAILVET_DATABASE_URL MAILVET_BUS MAILVET_LOG_LEVEL MAILVET_LOG_JSON
MAILVET_DNS_SERVERS MAILVET_DNS_TIMEOUT MAILVET_DNS_FAILURE_TTL MAILVET_DNS_MAX_TTL
MAILVET_DNS_MAX_IN_FLIGHT MAILVET_MAIL_FROM MAILVET_HELO_NAME MAILVET_SMTP_PORT
MAILVET_SMTP_TIMEOUT MAILVET_SMTP_RETRIES MAILVET_SMTP_RETRY_DELAY
MAILVET_SMTP_PER_HOST_CONNECTIONS MAILVET_SMTP_MAX_CONNECTIONS
MAILVET_SMTP_RECIPIENTS_PER_TRANSACTION MAILVET_SMTP_MAX_RECIPIENTS_PER_TRANSACTION
MAILVET_SMTP_ADDRESS_DEADLINE MAILVET_SMTP_MAX_MX_HOSTS MAILVET_SMTP_ALLOW_PRIVATE
MAILVET_SMTP_STARTTLS MAILVET_SMTP_TLS_VERIFY MAILVET_CHECKS MAILVET_CHUNK_SIZE
MAILVET_SYNTAX_CHUNK_SIZE MAILVET_SYNTAX_PROCESSES MAILVET_WORKER_CONCURRENCY
MAILVET_DISPATCH_BACKLOG MAILVET_VERDICT_TTL MAILVET_UNKNOWN_TTL MAILVET_STORAGE
MAILVET_STORAGE_ROOT MAILVET_S3_ENDPOINT MAILVET_S3_PUBLIC_ENDPOINT MAILVET_S3_ACCESS_KEY
MAILVET_S3_SECRET_KEY MAILVET_S3_BUCKET MAILVET_S3_SECURE MAILVET_S3_RETRY_FOR
MAILVET_RABBITMQ_URL MAILVET_RABBITMQ_PREFIX MAILVET_RABBITMQ_DELIVERY_LIMIT
MAILVET_HEALTH_PORT MAILVET_HEALTH_HOST MAILVET_WEB_HOST MAILVET_WEB_PORT
""".split()


# fields whose group checks them together (__post_init__): a value that passes, and what
# the other fields must be for it
CHECKED_VALUES: dict[str, tuple[str, object]] = {
    "web.web_rate_limit": ("7/minute", "7/minute"),
    "web.api_rate_limit": ("50/second,900/hour", "50/second,900/hour"),
}
COMPANIONS: dict[str, dict[str, str]] = {"mailer.username": {"MAILVET_MAILER_STARTTLS": "true"}}


def other_value(var: Variable) -> tuple[str, object]:
    """An environment string for `var` that is not its default, and the value it gives."""
    if var.key in CHECKED_VALUES:
        return CHECKED_VALUES[var.key]
    kind = var.type.types[0] if isinstance(var.type, mi.UnionType) else var.type
    if isinstance(kind, mi.BoolType):
        return ("false", False) if var.default is True else ("true", True)
    if isinstance(kind, mi.IntType):
        value = (kind.ge or 0) + 7 if var.default != (kind.ge or 0) + 7 else (kind.ge or 0) + 8
        return str(value), value
    if isinstance(kind, mi.FloatType):
        return "0.5", 0.5
    if isinstance(kind, mi.LiteralType | mi.EnumType):
        choices = [
            c
            for c in settings_module._choices(kind)
            if c != str(getattr(var.default, "value", var.default))
        ]
        wanted = choices[-1]
        return wanted, Check(wanted) if isinstance(kind, mi.EnumType) else wanted
    if isinstance(kind, mi.VarTupleType):
        return "a:53, b", ("a:53", "b")
    return "something-else", "something-else"


def field_value(settings: Settings, var: Variable) -> object:
    holder = getattr(settings, var.group) if var.group else settings
    return getattr(holder, var.field)


def test_every_field_has_its_own_variable() -> None:
    found = list(variables())
    fields = [f.name for f in msgspec.structs.fields(Settings)]
    groups = {
        f.name: f.type
        for f in msgspec.structs.fields(Settings)
        if isinstance(f.default, msgspec.Struct)
    }
    expected = [name for name in fields if name not in groups] + [
        f"{group}.{f.name}" for group, cls in groups.items() for f in msgspec.structs.fields(cls)
    ]
    assert sorted(v.key for v in found) == sorted(expected)
    names = [name for v in found for name in v.names]
    assert len(names) == len(set(names))  # no variable sets two fields
    assert all(name.startswith("MAILVET_") for v in found for name in v.names[:1])
    # the four that had none
    table = {v.key: v.name for v in found}
    assert table["dns.cache_size"] == "MAILVET_DNS_CACHE_SIZE"
    assert table["smtp.catch_all_check"] == "MAILVET_SMTP_CATCH_ALL_CHECK"
    assert table["engine.verdict_cache_size"] == "MAILVET_VERDICT_CACHE_SIZE"
    assert table["storage.link_seconds"] == "MAILVET_STORAGE_LINK_SECONDS"


@pytest.mark.parametrize("var", list(variables()), ids=lambda v: v.key)
def test_each_variable_sets_its_field(var: Variable) -> None:
    raw, value = other_value(var)
    for name in var.names:
        settings = load_settings({**COMPANIONS.get(var.key, {}), name: raw})
        assert field_value(settings, var) == value, name
        assert field_value(settings, var) != field_value(load_settings({}), var)


def test_the_names_in_use_before_still_work() -> None:
    by_name = {name: var for var in variables() for name in var.names}
    assert set(NAMES_IN_USE) <= set(by_name)


def test_docs_table_is_generated_from_the_structs() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
    assert docs.read_text(encoding="utf-8") == markdown(), (
        "docs/settings.md is stale: python -m mailvet.settings --markdown > docs/settings.md"
    )
    for var in variables():
        assert f"`{var.name}`" in markdown()


def test_markdown_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert settings_module.main(["--markdown"]) == 0
    assert capsys.readouterr().out == markdown()
    assert settings_module.main([]) == 2


# --- values that make no sense are refused at start, in one line ------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MAILVET_SYNTAX_CHUNK_SIZE": "0"},
            "MAILVET_SYNTAX_CHUNK_SIZE must be an integer >= 1, got 0",
        ),
        ({"MAILVET_CHUNK_SIZE": "-5"}, "MAILVET_CHUNK_SIZE must be an integer >= 1, got -5"),
        ({"MAILVET_SMTP_TIMEOUT": "-1"}, "MAILVET_SMTP_TIMEOUT must be a number > 0, got -1"),
        ({"MAILVET_DNS_TIMEOUT": "0"}, "MAILVET_DNS_TIMEOUT must be a number > 0, got 0"),
        ({"MAILVET_SMTP_TIMEOUT": "soon"}, "MAILVET_SMTP_TIMEOUT must be a number > 0, got soon"),
        ({"MAILVET_WORKER_CONCURRENCY": "0"}, "MAILVET_WORKER_CONCURRENCY must be an integer >= 1"),
        (
            {"MAILVET_SMTP_MAX_CONNECTIONS": "0"},
            "MAILVET_SMTP_MAX_CONNECTIONS must be an integer >= 1",
        ),
        (
            {"MAILVET_SMTP_PORT": "70000"},
            "MAILVET_SMTP_PORT must be an integer 1 to 65535, got 70000",
        ),
        ({"MAILVET_SYNTAX_PROCESSES": "-2"}, "MAILVET_SYNTAX_PROCESSES must be an integer >= -1"),
        (
            {"MAILVET_STORAGE_LINK_SECONDS": "0"},
            "MAILVET_STORAGE_LINK_SECONDS must be an integer 1 to 604800",
        ),
        ({"MAILVET_SMTP_RETRIES": "1.5"}, "MAILVET_SMTP_RETRIES must be an integer >= 0, got 1.5"),
        ({"MAILVET_BUS": "kafka"}, "MAILVET_BUS must be one of memory, rabbit, got kafka"),
        ({"MAILVET_STORAGE": "ftp"}, "MAILVET_STORAGE must be one of local, memory, s3, got ftp"),
        ({"MAILVET_CHECKS": "all"}, "MAILVET_CHECKS must be one of syntax, dns, smtp, got all"),
        ({"MAILVET_LOG_LEVEL": "loud"}, "MAILVET_LOG_LEVEL must be one of "),
        (
            {"MAILVET_SMTP_STARTTLS": "maybe"},
            "MAILVET_SMTP_STARTTLS must be true or false, got maybe",
        ),
        (
            {"MAILVET_DNS_MAX_IN_FLIGHT": ""},
            "MAILVET_DNS_MAX_IN_FLIGHT must be an integer >= 1, got ''",
        ),
        (
            {"MAILVET_WEB_RATE_LIMIT": "200/minute,lots/hour"},
            "MAILVET_WEB_RATE_LIMIT: not a rate (N/second|minute|hour|day): 'lots/hour'",
        ),
        (
            {"MAILVET_API_RATE_LIMIT": "100/sec"},
            "MAILVET_API_RATE_LIMIT: not a rate (N/second|minute|hour|day): '100/sec'",
        ),
        (
            {"MAILVET_MAILER_USERNAME": "mailvet", "MAILVET_MAILER_PORT": "587"},
            "MAILVET_MAILER_USERNAME: a user name needs MAILVET_MAILER_STARTTLS on",
        ),
    ],
)
def test_values_that_make_no_sense_are_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_group_check_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text('[mailer]\nusername = "mailvet"\n')
    with pytest.raises(SettingsError, match=r"^\[mailer\] username in .*m\.toml: a user name"):
        load_settings({}, config)
    # STARTTLS required, or TLS from the first byte: a user name is fine
    assert load_settings({"MAILVET_MAILER_PORT": "465"}, config).mailer.username == "mailvet"
    assert load_settings({"MAILVET_MAILER_STARTTLS": "true"}, config).mailer.starttls


def test_a_bad_value_in_the_file_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "m.toml"
    config.write_text("[engine]\nsyntax_chunk_size = 0\n")
    with pytest.raises(SettingsError) as caught:
        load_settings({}, config)
    assert str(caught.value) == (
        f"[engine] syntax_chunk_size in {config} must be an integer >= 1, got 0"
    )
    # the environment wins, and is what the line names
    with pytest.raises(SettingsError, match="^MAILVET_SYNTAX_CHUNK_SIZE must"):
        load_settings({"MAILVET_SYNTAX_CHUNK_SIZE": "-1"}, config)
    assert load_settings({"MAILVET_SYNTAX_CHUNK_SIZE": "5"}, config).engine.syntax_chunk_size == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[smtp]\ntimout = 3\n", "unknown setting [smtp] timout in "),
        ("chunk_size = 3\n", "unknown setting chunk_size in "),
    ],
)
def test_a_misspelt_key_in_the_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "m.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=f"^{re.escape(message)}"):
        load_settings({}, config)


def test_choices_in_any_case() -> None:
    settings = load_settings(
        {
            "MAILVET_BUS": "Rabbit",
            "MAILVET_STORAGE": "S3",
            "MAILVET_LOG_LEVEL": "INFO",
            "MAILVET_CHECKS": "DNS",
        }
    )
    assert (settings.bus, settings.storage.backend, settings.log_level) == ("rabbit", "s3", "info")
    assert settings.engine.checks is Check.DNS


def test_log_level_and_format_are_unset_unless_given() -> None:
    """Unset, a command logs warning-level text and `mailvet run` info-level JSON lines."""
    settings = load_settings({})
    assert settings.log_level is None and settings.log_json is None
    given = load_settings({"MAILVET_LOG_LEVEL": "error", "MAILVET_LOG_JSON": "false"})
    assert given.log_level == "error" and given.log_json is False


def test_the_ca_bundle_falls_back_to_ssl_cert_file() -> None:
    assert load_settings({"SSL_CERT_FILE": "/etc/ca.pem"}).storage.s3_ca_file == "/etc/ca.pem"
    both = {"SSL_CERT_FILE": "/etc/ca.pem", "MAILVET_S3_CA_FILE": "/srv/s3-ca.pem"}
    assert load_settings(both).storage.s3_ca_file == "/srv/s3-ca.pem"
    assert load_settings({}).storage.s3_ca_file == ""


def test_validate_refuses_a_setting_that_makes_no_sense(tmp_path: Path) -> None:
    """Through the command line: exit 2, one stderr line, before any job starts."""
    source = tmp_path / "l.csv"
    source.write_text("email\na@example.com\n")
    env = {
        **os.environ,
        "MAILVET_DATA_DIR": str(tmp_path / "data"),
        "MAILVET_SYNTAX_CHUNK_SIZE": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "mailvet.cli", "validate", str(source), "--checks", "syntax"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "mailvet: error: MAILVET_SYNTAX_CHUNK_SIZE must be an integer >= 1, got 0\n"
    )
    assert not (tmp_path / "l.mailvet.csv").exists() and not (tmp_path / "data").exists()


# --- only settings.py reads the environment ---------------------------------------------


def test_nothing_else_in_src_reads_the_environment() -> None:
    src = Path(settings_module.__file__).parent
    readers = []
    for path in sorted(src.rglob("*.py")):
        if path.name == "settings.py" and path.parent == src:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.expr):
                continue
            named = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.id
                if isinstance(node, ast.Name)
                else None
            )
            if named in {"environ", "getenv", "environb", "putenv"}:
                readers.append(f"{path.relative_to(src)}:{node.lineno}")
    assert readers == []


def test_the_deployment_files_name_only_variables_that_exist() -> None:
    """A misspelt variable in compose.yaml or the Containerfile would be ignored silently."""
    root = Path(__file__).resolve().parents[2]
    known = {name for var in variables() for name in var.names}
    compose = re.findall(r"^\s+(MAILVET_\w+):", (root / "compose.yaml").read_text(), re.M)
    image = re.findall(r"^\s+(MAILVET_\w+)=", (root / "Containerfile").read_text(), re.M)
    assert compose and image
    assert set(compose) - known == set() and set(image) - known == set()


def test_the_public_url_facts_are_worked_out_once() -> None:
    web = load_settings({"MAILVET_PUBLIC_URL": "HTTPS://Mailvet.example:8443/"}).web
    assert web.https and web.base_url == "HTTPS://Mailvet.example:8443"
    assert web.host == "mailvet.example"
    plain = load_settings({}).web
    assert not plain.https and plain.base_url == "http://127.0.0.1:8000"
    assert plain.host == "127.0.0.1"
    rates = load_settings({"MAILVET_WEB_RATE_LIMIT": "4/minute, 100/hour"}).web.rates
    assert [(rate.limit, rate.window_seconds) for rate in rates] == [(4, 60), (100, 3600)]
    assert load_settings({"MAILVET_WEB_RATE_LIMIT": ""}).web.rates == ()
