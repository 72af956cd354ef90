"""Fixtures for the whole-system tests: PostgreSQL database, moto S3, a slow mail world."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, delete_rabbit_objects, fresh_database
from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld
from tests.s3server import MotoS3
from tests.services import postgres_problem, rabbit_problem, require

ROWS = 20_000


@pytest.fixture(scope="session", autouse=True)
def _require_services() -> None:
    require(postgres_problem(), rabbit_problem())


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def s3() -> Iterator[MotoS3]:
    server = MotoS3().start()
    yield server
    if server.running:
        server.stop()


@pytest.fixture(scope="session")
def bulk_world() -> Iterator[MailWorld]:
    """bulk-mail.com: every reply 50 ms late, up to 12 connections, 20 RCPTs a transaction;
    even users exist. (Slow enough that a 20,000-row job is still running while the tests
    kill and restart things: the prober got faster than the first version of this world.)"""
    world = MailWorld()
    world.zone.add("bulk-mail.com", mx=[(10, "mx.bulk-mail.com")])
    world.zone.add("mx.bulk-mail.com", a=["127.0.0.60"])
    mailboxes = {f"user{i}": "250 2.1.5 OK" for i in range(0, ROWS, 2)}
    world.add_smtp(
        "127.0.0.60",
        SmtpBehaviour(
            mailboxes={"postmaster": "250 2.1.5 OK", **mailboxes},
            latency=0.05,
            max_connections=12,
            max_recipients=20,
        ),
    )
    world.start()
    yield world
    world.stop()


def make_list(path: Path, rows: int, seed: int, prefix: str = "user") -> Path:
    rng = random.Random(seed)
    lines = ["id,email,note"]
    for i in range(rows):
        roll = rng.random()
        if roll < 0.03:
            email = f"broken{i}@@bulk-mail.com"
        elif roll < 0.06:
            email = f"{prefix}{rng.randrange(i + 1)}@bulk-mail.com"  # a duplicate
        else:
            email = f"{prefix}{i}@bulk-mail.com"
        lines.append(f'{i},{email},"note {i}, {rng.random():.3f}"')
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


@pytest.fixture(scope="session")
def job_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_list(tmp_path_factory.mktemp("lists") / "twenty-k.csv", ROWS, seed=1)


def world_env(world: MailWorld) -> dict[str, str]:
    return {
        **world.env(),
        "MAILVET_DNS_TIMEOUT": "2",
        "MAILVET_CHUNK_SIZE": "200",
        "MAILVET_SMTP_PER_HOST_CONNECTIONS": "4",
    }


@pytest.fixture(scope="session")
def undisturbed(
    bulk_world: MailWorld, job_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> bytes:
    """The result of the same list through `mailvet validate` (one process, embedded)."""
    import subprocess

    from tests.cluster.harness import MAILVET

    root = tmp_path_factory.mktemp("embedded")
    out = root / "result.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILVET_")}
    env.update(world_env(bulk_world), MAILVET_DATA_DIR=str(root / "data"))
    done = subprocess.run(
        [MAILVET, "validate", str(job_file), "-o", str(out)],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


@pytest.fixture
def cluster(
    tmp_path: Path, database_url: str, s3: MotoS3, bulk_world: MailWorld
) -> Iterator[Cluster]:
    node = Cluster(tmp_path, database_url, s3.endpoint, extra_env=world_env(bulk_world))
    try:
        yield node
    finally:
        node.stop()
        delete_rabbit_objects(node.prefix)
