"""A worker killed mid-job on the cluster (RabbitMQ, PostgreSQL): its unacknowledged chunks
go to the restarted worker, which re-probes only the rows without a verdict in the journal.
Counted at the mail server, which records every RCPT."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.cluster.conftest import ROWS
from tests.cluster.harness import BACK_END, Cluster
from tests.cluster.test_reliability import busy, finish_and_compare
from tests.mailworld.world import MailWorld

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_a_killed_worker_redoes_under_5_percent(
    cluster: Cluster, job_file: Path, undisturbed: bytes, bulk_world: MailWorld, tmp_path: Path
) -> None:
    server = bulk_world.smtp("127.0.0.60")
    before = len(server.stats.recipients)
    cluster.start_all((*BACK_END, "web"))
    job_id = cluster.submit(job_file)
    cluster.wait_for(job_id, busy)
    cluster.kill("worker")
    time.sleep(0.5)
    cluster.start("worker")
    finish_and_compare(cluster, job_id, undisturbed, tmp_path)
    sent = Counter(
        rcpt
        for rcpt in server.stats.recipients[before:]
        if not rcpt.startswith(("postmaster@", "mailvet-"))
    )
    twice = sum(n - 1 for n in sent.values() if n > 1)
    print(f"{twice} of {ROWS} RCPTs sent twice ({twice / ROWS:.1%})")
    assert twice < 0.05 * ROWS
