"""`mailvet submit --sheet NAME` against the real RabbitMQ (127.0.0.1:5672, or
MAILVET_TEST_AMQP_URL), on an embedded database and local storage of the test's own: the
job records the sheet, as `mailvet validate --sheet` does.  The test's prefix
`mvtest.<uuid8>` keeps its queues apart; they are deleted at the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import openpyxl
import pytest
from typer.testing import CliRunner

from mailvet.bootstrap import build_job_store
from mailvet.cli import app
from mailvet.pipeline import queues
from mailvet.settings import load_settings

pytestmark = pytest.mark.integration

AMQP_URL = os.environ.get("MAILVET_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def reachable() -> None:
    parts = urlsplit(AMQP_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        reason = f"RabbitMQ is not reachable at {host}:{port}: {exc}"
        if os.environ.get("MAILVET_TEST_SERVICES") == "required":
            pytest.fail(reason)
        pytest.skip(reason)


async def delete_queues(prefix: str) -> None:
    connection = await aio_pika.connect(AMQP_URL, timeout=5)
    try:
        names = (queues.INTAKE, queues.PUBLISHER, queues.ORCHESTRATOR, queues.WORK)
        for name in (*names, queues.WORK_CPU, queues.RESULTS, "dead"):
            channel = await connection.channel()  # a failed delete closes its channel
            with contextlib.suppress(Exception):
                await channel.queue_delete(f"{prefix}.{name}")
            with contextlib.suppress(Exception):
                await channel.close()
        channel = await connection.channel()
        with contextlib.suppress(Exception):
            await channel.exchange_delete(f"{prefix}.dlx")
    finally:
        await connection.close()


def test_submit_records_the_sheet_it_is_given(tmp_path: Path) -> None:
    reachable()
    book = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["email"])
    wb.active.append(["a@example.com"])
    wb.create_sheet("Second").append(["email"])
    wb.save(book)
    prefix = f"mvtest.{uuid.uuid4().hex[:8]}"
    env = {
        "MAILVET_DATA_DIR": str(tmp_path / "data"),
        "MAILVET_BUS": "rabbit",
        "MAILVET_RABBITMQ_URL": AMQP_URL,
        "MAILVET_RABBITMQ_PREFIX": prefix,
    }
    try:
        with_sheet = CliRunner().invoke(app, ["submit", str(book), "--sheet", "Second"], env=env)
        without = CliRunner().invoke(app, ["submit", str(book)], env=env)
    finally:
        asyncio.run(delete_queues(prefix))
    assert with_sheet.exit_code == 0, with_sheet.output
    assert without.exit_code == 0, without.output

    async def sheets() -> list[str | None]:
        store = await build_job_store(load_settings(env))
        try:
            ids = (with_sheet.output.strip(), without.output.strip())
            return [(await store.jobs.get(job_id)).file.sheet for job_id in ids]
        finally:
            await store.close()

    assert asyncio.run(sheets()) == ["Second", None]
