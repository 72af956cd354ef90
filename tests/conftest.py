"""Shared fixtures: the local mail world (DNS + SMTP on 127.0.0.x) and a CLI runner; every
test runs away from the directory pytest was started in, without the caller's settings."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.mailcatcher import mail_catcher  # noqa: F401  (the fixture, for every test)
from tests.mailworld.world import MailWorld, standard_world


@pytest.fixture(scope="session", autouse=True)
def settings_of_our_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Run the session in an empty folder, with no MAILVET_* variable of the caller's.

    Settings read ./config/mailvet.toml when MAILVET_CONFIG is not set, and every test that
    calls load_settings with a mapping of its own (or runs the CLI) would pick up a file left
    in the working directory, or a variable set in the developer's shell. MAILVET_TEST_*
    (how the tests reach PostgreSQL/RabbitMQ) stay. tests/unit/test_isolation.py checks it.
    """
    folder = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for name in list(os.environ):
            if name.startswith("MAILVET_") and not name.startswith("MAILVET_TEST_"):
                patch.delenv(name)
        yield folder


@pytest.fixture(autouse=True)
def _structlog_as_before() -> Iterator[None]:
    """Every test starts with structlog as the test before it found it: a CLI run in this
    process (CliRunner) or a role's start configures it for a process (mailvet.logs: the
    level's filter, JSON lines), and a filter left at warning made a later test's
    capture_logs miss the info lines it waits for, depending on which tests ran before it
    (`make test` runs them in two processes, in an order of its own)."""
    import structlog

    config = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**config)


@pytest.fixture(scope="session")
def mail_world() -> Iterator[MailWorld]:
    world = standard_world()
    world.start()
    try:
        yield world
    finally:
        world.stop()


@pytest.fixture
def world_env(mail_world: MailWorld, tmp_path: Path) -> dict[str, str]:
    """Settings pointing mailvet at the mail world, with a fresh data folder."""
    return {
        **mail_world.env(),
        "MAILVET_DNS_TIMEOUT": "1.0",
        "MAILVET_DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


@pytest.fixture
def json_logs() -> Iterator[None]:
    """JSON lines at info on stderr, as `mailvet run` writes them (mailvet.logs); the root
    logger's level, handlers and structlog's configuration restored afterwards."""
    import logging

    import structlog

    from mailvet.logs import RootHandler, configure_logging

    root = logging.getLogger()
    level, config = root.level, structlog.get_config()
    configure_logging("info", json=True)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if isinstance(handler, RootHandler):
                root.removeHandler(handler)
        root.setLevel(level)
        structlog.configure(**config)


@pytest.fixture
def every_level() -> Iterator[None]:
    """Log lines of every level reach structlog's capture_logs (an earlier test may have
    configured structlog to drop info lines); the configuration is restored afterwards."""
    import logging

    import structlog

    config = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        yield
    finally:
        structlog.configure(**config)


# `make test` runs the suite in two processes (`pytest -n 2`, pytest-xdist). The tests of
# PostgreSQL and RabbitMQ run one after another in ONE of them, in collection order, as a
# serial run would: some restart PostgreSQL or RabbitMQ under every client, the rabbit-bus
# tests declare fixed queue names, and the distributed-stack tests share one started stack
# (tests/cluster/web_stack.py). They are told by their place: tests/cluster, tests/integration
# and tests/e2e, files named *_pg.py, and the "postgresql" parameters of tests that run on
# both databases. Every other test (in-process, on folders, ports and mail worlds of its own)
# goes to whichever process is free. (xdist's own `--dist loadgroup` reads its groups
# through an attribute pytest 9.2 no longer has, hence a scheduler of our own.)
SERVICE_FOLDERS = ("tests/cluster/", "tests/integration/", "tests/e2e/")


def runs_with_the_services(nodeid: str) -> bool:
    path, _, rest = nodeid.partition("::")
    _, _, params = rest.partition("[")
    return path.startswith(SERVICE_FOLDERS) or path.endswith("_pg.py") or "postgresql" in params


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ServicesInOneProcess(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return "services" if runs_with_the_services(nodeid) else nodeid

    return ServicesInOneProcess(config, log)
