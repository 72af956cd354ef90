"""/metrics: what the counting points count, in the Prometheus text format, and what a
command that exports nothing does not pay for."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from mailvet import metrics
from mailvet.cli import app
from tests.conftest import write_csv
from tests.mailworld.world import MailWorld
from tests.unit.test_startup import run_fresh


@pytest.fixture
def prometheus() -> Iterator[metrics.PrometheusRecorder]:
    """A fresh registry for the test (the process's recorder put back afterwards)."""
    recorder = metrics.PrometheusRecorder()
    previous = metrics.use(recorder)
    try:
        yield recorder
    finally:
        metrics.use(previous)


Samples = Mapping[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(recorder: metrics.PrometheusRecorder) -> Samples:
    from prometheus_client import generate_latest

    text = generate_latest(recorder.registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_smtp_verbs_never_carry_an_address() -> None:
    data = b"MAIL FROM:<a@b.example>\r\nRCPT TO:<ann@x.example>\r\nRSET\r\nrcpt to:<b@c>\r\n"
    assert metrics.smtp_verbs(data) == ["MAIL", "RCPT", "RSET", "RCPT"]
    assert metrics.smtp_verbs(b"ann@x.example\r\n") == ["OTHER"]
    assert metrics.reply_class(250) == "2xx" and metrics.reply_class(451) == "4xx"
    assert metrics.reply_class(0) == "other"


def test_queue_depths_sum_the_per_job_queues_and_forget_deleted_ones(
    prometheus: metrics.PrometheusRecorder,
) -> None:
    metrics.queue_depths({"work": 3, "rows.j1": 2, "rows.j2": 5, "results": 0})
    samples = scrape(prometheus)
    assert value(samples, "mailvet_queue_depth", queue="rows") == 7
    assert value(samples, "mailvet_queue_depth", queue="work") == 3
    metrics.queue_depths({"work": 1})
    samples = scrape(prometheus)
    assert ("mailvet_queue_depth", frozenset({("queue", "rows")})) not in samples


async def test_a_chunk_handler_counts_in_flight_while_it_runs(
    prometheus: metrics.PrometheusRecorder,
) -> None:
    seen: list[float] = []

    @metrics.in_flight
    async def handle(n: int) -> int:
        seen.append(value(scrape(prometheus), "mailvet_chunks_in_flight"))
        if n < 0:
            raise ValueError(n)
        return n * 2

    assert await handle(2) == 4
    with pytest.raises(ValueError):
        await handle(-1)
    assert seen == [1.0, 1.0]
    assert value(scrape(prometheus), "mailvet_chunks_in_flight") == 0


def test_validate_against_the_mail_world_counts_rows_smtp_and_dns(
    prometheus: metrics.PrometheusRecorder,
    world_env: dict[str, str],
    tmp_path: Path,
    mail_world: MailWorld,
) -> None:
    addresses = ["alice@good-mail.com", "nobody@good-mail.com", "not an address"]
    source = write_csv(tmp_path / "l.csv", ["email"], [[a] for a in addresses])
    result = CliRunner().invoke(
        app, ["validate", str(source), "-o", str(tmp_path / "o.csv")], env=world_env
    )
    assert result.exit_code == 0, result.output
    samples = scrape(prometheus)

    assert value(samples, "mailvet_rows_total", status="deliverable") == 1
    assert value(samples, "mailvet_rows_total", status="undeliverable") == 2
    assert value(samples, "mailvet_row_reasons_total", reason="invalid_syntax") == 1
    assert value(samples, "mailvet_smtp_sessions_total", outcome="open") >= 1
    assert value(samples, "mailvet_smtp_commands_total", command="EHLO") >= 1
    assert value(samples, "mailvet_smtp_commands_total", command="RCPT") >= 2
    assert value(samples, "mailvet_smtp_replies_total", **{"class": "2xx"}) >= 1
    assert value(samples, "mailvet_smtp_replies_total", **{"class": "5xx"}) >= 1
    assert value(samples, "mailvet_dns_queries_total", type="MX") >= 1
    lookups = value(samples, "mailvet_dns_lookups_total", kind="route")
    misses = value(samples, "mailvet_dns_cache_misses_total", kind="route")
    assert lookups >= misses >= 1
    assert value(samples, "mailvet_chunks_in_flight") == 0
    assert value(samples, "mailvet_job_duration_seconds_count", status="file_completed") == 1


def test_commands_that_export_nothing_never_import_prometheus_client(tmp_path: Path) -> None:
    env = {"MAILVET_DATA_DIR": str(tmp_path / "data")}
    code, modules, out = run_fresh(["check", "Ann@Example.com", "--checks", "syntax"], env=env)
    assert code == 0, out
    assert "prometheus_client" not in modules
    source = tmp_path / "l.csv"
    source.write_text("email\na@example.com\n")
    code, modules, out = run_fresh(
        ["validate", str(source), "-o", str(tmp_path / "o.csv"), "--checks", "syntax"], env=env
    )
    assert code == 0, out
    assert "prometheus_client" not in modules


DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "mailvet.json"


def exported_series(recorder: metrics.PrometheusRecorder) -> dict[str, str]:
    """Every series name the registry can export -> its family name."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    series: dict[str, str] = {}
    for family in recorder.registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            series[family.name + suffix] = family.name
        for sample in family.samples:
            series[sample.name] = family.name
    return series


def test_the_dashboard_plots_every_mailvet_metric_and_only_exported_ones(
    prometheus: metrics.PrometheusRecorder,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\b((?:mailvet|process)_\w+)", expr)}
    series = exported_series(prometheus)
    assert used - set(series) == set()
    ours = {family for family in series.values() if family.startswith("mailvet_")}
    assert ours - {series[name] for name in used} == set()  # every mailvet metric is plotted
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
