from __future__ import annotations

from pathlib import Path

import pytest

from mailvet.domain.verdict import Check
from mailvet.settings import SettingsError, load_settings

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
        {"MAILVET_CONFIG": str(config), "MAILVET_SMTP_PORT": "2526",
         "MAILVET_DNS_SERVERS": "127.0.0.1:5353, 10.0.0.1"}
    )
    assert settings.smtp.timeout == 3.0 and settings.smtp.port == 2526
    assert settings.engine.checks is Check.DNS
    assert settings.dns.servers == ("127.0.0.1:5353", "10.0.0.1")


@pytest.mark.parametrize(("name", "value"), [("MAILVET_SMTP_TIMEOUT", "soon"), ("MAILVET_CHECKS", "all")])
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
