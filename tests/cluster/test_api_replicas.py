"""Two `mailvet run web` processes on one PostgreSQL database sharing one account (issue 9
§4): 64 concurrent clients, half on each process, three syntax-only `POST /api/v1/validate`
each, on an account with 100 credits, get exactly 100 answers 200 between them and 402 for
the rest; the balance ends at 0 with one entry per credit and nothing pending. Each
process coalesces its own charges (services/single_checks.charge_coalesced): this is the
exactness of the rounds of two processes against each other, through the real servers.

Light: only the web role (the validate path is syntax-only: no mail world, no S3; local
storage, the bus on RabbitMQ as `run web` alone needs), the account and its key made in
this process on the migrated database."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from mailvet.services import api_keys
from tests.api_validation_helpers import T0, Ledger, account_with, ledger
from tests.cluster.harness import Cluster, delete_rabbit_objects, fresh_database
from tests.pg import opened
from tests.services import postgres_problem, rabbit_problem, require

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CLIENTS = 64
CALLS_EACH = 3
CREDITS = 100


async def _account_and_key(url: str) -> tuple[str, str]:
    async with opened(url) as db:
        ann = await account_with(db, "ann.api-replicas@example.com", CREDITS)
        async with db.unit_of_work(write=True) as session:
            made = await api_keys.create_key(session, ann.id, label="replicas", now=T0)
    return ann.id, made.key


async def _clients(urls: list[str], key: str) -> list[Counter[int]]:
    """CLIENTS clients, client c on process c % 2, CALLS_EACH calls one after the other;
    the statuses each process answered."""
    answered = [Counter[int]() for _ in urls]
    clients = [httpx.AsyncClient(base_url=url, timeout=60) for url in urls]

    async def client(c: int) -> None:
        replica = c % len(urls)
        for n in range(CALLS_EACH):
            body = {"email": f"user{c}-{n}@example.org", "checks": "syntax"}
            answer = await clients[replica].post(
                "/api/v1/validate", json=body, headers={"x-api-key": key}
            )
            answered[replica][answer.status_code] += 1

    try:
        await asyncio.gather(*(client(c) for c in range(CLIENTS)))
    finally:
        for each in clients:
            await each.aclose()
    return answered


async def _ledger(url: str, account_id: str) -> Ledger:
    async with opened(url) as db:
        return await ledger(db, account_id)


def test_two_web_processes_sharing_one_account_charge_exactly(tmp_path: Path) -> None:
    require(postgres_problem(), rabbit_problem())
    with fresh_database() as url:
        cluster = Cluster(
            tmp_path,
            url,
            s3_endpoint="",
            extra_env={
                "MAILVET_STORAGE": "local",
                "MAILVET_MAILER": "log",
                "MAILVET_API_RATE_LIMIT": "1000000/second",
            },
        )
        account_id, key = asyncio.run(_account_and_key(url))
        try:
            urls = cluster.start_web_replicas(2)
            answered = asyncio.run(_clients(urls, key))
        finally:
            cluster.stop()
            delete_rabbit_objects(cluster.prefix)
        got = asyncio.run(_ledger(url, account_id))

    both = answered[0] + answered[1]
    assert set(both) <= {200, 402}, answered
    assert (both[200], both[402]) == (CREDITS, CLIENTS * CALLS_EACH - CREDITS), answered
    assert all(sum(each.values()) == CLIENTS // 2 * CALLS_EACH for each in answered)
    assert got == Ledger(balance=0, entries=CREDITS + 1, spent=CREDITS, refunded=0, pending=0)
