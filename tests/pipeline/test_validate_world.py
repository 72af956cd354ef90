"""`mailvet validate` on CSVs against the local mail world: every status and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailvet.cli import app
from mailvet.domain.verdict import RESULT_COLUMNS, Reason
from tests.conftest import read_csv, write_csv
from tests.mailworld.world import EXPECTED_MX, SCENARIOS, MailWorld

pytestmark = pytest.mark.pipeline


def run_validate(runner: CliRunner, env: dict[str, str], *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", *args], env=env)
    return result.exit_code, result.output


def test_every_scenario_gets_its_verdict(
    runner: CliRunner, world_env: dict[str, str], tmp_path: Path, mail_world: MailWorld
) -> None:
    addresses = list(SCENARIOS) + ["not an address", "a@@b.com", ""]
    rows = [[str(i), f" {a} ", f"name {i}"] for i, a in enumerate(addresses)]
    source = write_csv(tmp_path / "list.csv", ["id", "Email", "name"], rows)
    out = tmp_path / "out.csv"

    code, output = run_validate(runner, world_env, str(source), "-o", str(out))

    assert code == 0, output
    result = read_csv(out)
    assert [r["id"] for r in result] == [str(i) for i in range(len(addresses))]
    assert list(result[0]) == ["id", "Email", "name", *RESULT_COLUMNS]
    for row, address in zip(result, addresses, strict=True):
        expected = SCENARIOS.get(address, ("undeliverable", "invalid_syntax"))
        got = (row["mailvet_status"], row["mailvet_reason"])
        assert got == expected, f"{address}: {got} != {expected}"
        if address in EXPECTED_MX:
            assert row["mailvet_mx"] == EXPECTED_MX[address]
    by_address = {row["Email"].strip(): row for row in result}
    assert by_address["anyone@catchall-mail.com"]["mailvet_catch_all"] == "true"
    assert by_address["alice@good-mail.com"]["mailvet_catch_all"] == "false"
    # the random mailbox only ever got 451: not established, an empty cell (not "false")
    assert by_address["kim@tempcatch-mail.com"]["mailvet_catch_all"] == ""
    assert by_address["x@mailinator.com"]["mailvet_catch_all"] == ""  # not probed
    assert by_address["alice@good-mail.com"]["mailvet_smtp_code"] == "250"
    assert by_address["nobody@good-mail.com"]["mailvet_smtp_code"] == "550"
    assert by_address["info@good-mail.com"]["mailvet_role"] == "true"
    assert by_address["x@gmial.com"]["mailvet_suggestion"] == "x@gmail.com"
    assert by_address["x@mailinator.com"]["mailvet_disposable"] == "true"
    assert by_address["alice@good-mail.com"]["mailvet_normalized"] == "alice@good-mail.com"
    assert by_address["not an address"]["mailvet_normalized"] == ""
    assert by_address["alice@good-mail.com"]["mailvet_ascii_email"] == "alice@good-mail.com"
    assert by_address["jörg@utf8-mail.com"]["mailvet_ascii_email"] == ""
    assert by_address["x@hotmial.com"]["mailvet_suggestion"] == "x@hotmail.com"
    # the summary table counts every row
    totals = [line.split() for line in output.splitlines() if line.startswith("total")]
    assert totals == [["total", str(len(addresses))]]

    # the servers were treated politely and correctly
    for ip in ("127.0.0.2", "127.0.0.12", "127.0.0.13"):
        stats = mail_world.smtp(ip).stats
        assert stats.violations == 0, ip
        assert stats.protocol_errors == 0, ip
    assert mail_world.smtp("127.0.0.2").stats.max_concurrent <= 3
    assert all(
        name == "probe.mailvet-test.com" for name in mail_world.smtp("127.0.0.2").stats.helo_names
    )
    assert mail_world.smtp("127.0.0.17").stats.tls_sessions >= 1  # STARTTLS was used


def test_private_mx_addresses_are_refused_by_default(
    runner: CliRunner, world_env: dict[str, str], mail_world: MailWorld
) -> None:
    """A hostile domain pointing its MX at our own network gets no connection."""
    before = mail_world.smtp("127.0.0.2").stats.connections_total
    env = {**world_env, "MAILVET_SMTP_ALLOW_PRIVATE": "false"}
    result = runner.invoke(app, ["check", "alice@good-mail.com", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert '"status":"unknown"' in result.output
    assert '"reason":"connection_failed"' in result.output
    assert mail_world.smtp("127.0.0.2").stats.connections_total == before


def test_every_reason_is_covered_by_the_scenarios() -> None:
    produced = {reason for _, reason in SCENARIOS.values()} | {"invalid_syntax", "not_checked"}
    assert produced == {reason.value for reason in Reason}


def test_dns_only_leaves_mailboxes_unchecked(
    runner: CliRunner, world_env: dict[str, str], tmp_path: Path
) -> None:
    source = write_csv(
        tmp_path / "l.csv",
        ["email"],
        [["alice@good-mail.com"], ["x@nullmx-mail.com"], ["x@mailinator.com"]],
    )
    out = tmp_path / "o.csv"
    code, output = run_validate(runner, world_env, str(source), "-o", str(out), "--checks", "dns")
    assert code == 0, output
    got = [(r["mailvet_status"], r["mailvet_reason"], r["mailvet_mx"]) for r in read_csv(out)]
    assert got == [
        ("unknown", "not_checked", "mx.good-mail.com"),
        ("undeliverable", "null_mx", ""),
        ("risky", "disposable", "mx.mailinator.com"),
    ]


def test_duplicates_are_probed_once_and_reported_on_every_row(
    runner: CliRunner, world_env: dict[str, str], tmp_path: Path, mail_world: MailWorld
) -> None:
    server = mail_world.smtp("127.0.0.12").stats
    before = server.recipients.count("u3@limit-mail.com")
    source = write_csv(tmp_path / "d.csv", ["email"], [["u3@limit-mail.com"]] * 5)
    out = tmp_path / "o.csv"
    code, output = run_validate(runner, world_env, str(source), "-o", str(out))
    assert code == 0, output
    assert [r["mailvet_reason"] for r in read_csv(out)] == ["accepted"] * 5
    assert server.recipients.count("u3@limit-mail.com") - before == 1
