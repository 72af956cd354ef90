"""The secret key: refused start outside the embedded default without MAILVET_SECRET_KEY;
on the embedded default made once, kept in <data_dir>/secret_key (0600) and reused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailvet.settings import SettingsError, load_settings
from mailvet.web.context import SECRET_KEY_FILE, build_web_context, resolve_secret_key

pytestmark = pytest.mark.unit

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/nowhere"


@pytest.mark.parametrize(
    "env",
    [
        {"MAILVET_DATABASE_URL": PG},
        {"MAILVET_BUS": "rabbit"},
        {"MAILVET_DATABASE_URL": PG, "MAILVET_BUS": "rabbit"},
    ],
    ids=["postgresql", "rabbitmq", "both"],
)
async def test_outside_the_embedded_default_the_key_is_required(
    tmp_path: Path, env: dict[str, str]
) -> None:
    settings = load_settings({"MAILVET_DATA_DIR": str(tmp_path), **env})
    with pytest.raises(SettingsError, match="MAILVET_SECRET_KEY is required"):
        await build_web_context(settings)  # refused before anything is opened
    assert not (tmp_path / SECRET_KEY_FILE).exists()
    given = load_settings(
        {"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_SECRET_KEY": "s" * 40, **env}
    )
    assert resolve_secret_key(given) == "s" * 40


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    settings = load_settings({"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_SECRET_KEY": "short"})
    with pytest.raises(SettingsError, match="at least 32 characters"):
        resolve_secret_key(settings)


def test_the_embedded_default_makes_one_key_and_keeps_it_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = load_settings({"MAILVET_DATA_DIR": str(data_dir)})
    first = resolve_secret_key(settings)
    kept = data_dir / SECRET_KEY_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert resolve_secret_key(settings) == first  # a restart signs with the same key
    other = load_settings({"MAILVET_DATA_DIR": str(tmp_path / "elsewhere")})
    assert resolve_secret_key(other) != first


def test_a_damaged_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILE).write_text("\n")
    settings = load_settings({"MAILVET_DATA_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="does not hold a secret key"):
        resolve_secret_key(settings)


def test_a_malformed_rate_limit_refuses_the_start(tmp_path: Path) -> None:
    env = {"MAILVET_DATA_DIR": str(tmp_path), "MAILVET_WEB_RATE_LIMIT": "200/minute,lots/hour"}
    with pytest.raises(SettingsError, match="MAILVET_WEB_RATE_LIMIT: not a rate"):
        load_settings(env)  # with the other settings, before anything is opened
