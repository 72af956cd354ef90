"""SMTP-probe throughput of `mailvet validate --checks smtp` against one slow, limited MX.

    .venv/bin/python bench/smtp_bench.py [--addresses 3000] [--latency 0.04]
                                         [--server-connections 5] [--per-host N] [--unknown 10]

Builds a local MailWorld (tests/mailworld): DNS `slow-mail.com MX 10 mx.slow-mail.com`,
`mx.slow-mail.com A 127.0.0.20`, and an SMTP server there with the given round-trip
latency, a limit of `--server-connections` concurrent connections (more are turned away
with 421 and counted as violations), PIPELINING, mailboxes user0..user{N-1} answering
"250 2.1.5 OK" and "550 5.1.1 ... User unknown" for everything else.

Writes a CSV of the N user addresses plus `--unknown` unknown ones (shuffled, seeded),
runs mailvet on it in a subprocess with the world's env() (+ MAILVET_DATA_DIR in a temp
folder, MAILVET_DNS_TIMEOUT=2, MAILVET_SMTP_PER_HOST_CONNECTIONS only if --per-host),
and prints addresses/s end to end, verdict errors and the server's statistics.

Target: >= 500 addresses/s with violations == 0 (and every verdict right).
Exits 1 with a "TARGET MISSED" line otherwise.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT_DIR, REPO_ROOT, clean_env, mailvet_command, report_targets, run_child

sys.path.insert(0, str(REPO_ROOT))

from tests.mailworld.smtp_server import SmtpBehaviour
from tests.mailworld.world import MailWorld

TARGET_ADDR_PER_S = 500
DOMAIN = "slow-mail.com"
MX_HOST = f"mx.{DOMAIN}"
MX_IP = "127.0.0.20"
OK = "250 2.1.5 OK"
DEFAULT_PER_HOST = 3  # mailvet's default (SmtpSettings.per_host_connections)


def build_world(n: int, latency: float, server_connections: int) -> MailWorld:
    world = MailWorld()
    world.zone.add(DOMAIN, mx=[(10, MX_HOST)])
    world.zone.add(MX_HOST, a=[MX_IP])
    world.add_smtp(
        MX_IP,
        SmtpBehaviour(
            latency=latency,
            max_connections=server_connections,
            pipelining=True,
            mailboxes={"postmaster": OK, **{f"user{i}": OK for i in range(n)}},  # RFC 5321 4.5.1
            default_reply="550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
            hostname=MX_HOST,
        ),
    )
    return world


def write_input(path: Path, n: int, unknown: int, seed: int) -> dict[str, tuple[str, str]]:
    """The CSV (id,email); returns address -> expected (status, reason)."""
    expected = {f"user{i}@{DOMAIN}": ("deliverable", "accepted") for i in range(n)}
    expected.update(
        {f"nobody{i}@{DOMAIN}": ("undeliverable", "mailbox_not_found") for i in range(unknown)}
    )
    addresses = list(expected)
    random.Random(seed).shuffle(addresses)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "email"])
        w.writerows((i, a) for i, a in enumerate(addresses, 1))
    return expected


def check_output(
    path: Path, expected: dict[str, tuple[str, str]]
) -> tuple[int, Counter[str], list[str]]:
    wrong = 0
    seen: Counter[str] = Counter()
    examples: list[str] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = 0
        for row in reader:
            rows += 1
            got = (row["mailvet_status"], row["mailvet_reason"])
            seen[f"{got[0]}/{got[1]}"] += 1
            want = expected.get(row["email"])
            if got != want:
                wrong += 1
                if len(examples) < 10:
                    examples.append(
                        f"{row['email']}: got {got}, want {want} "
                        f"(smtp_code={row['mailvet_smtp_code']})"
                    )
    if rows != len(expected):
        wrong += abs(len(expected) - rows)
        examples.append(f"output has {rows} rows, input {len(expected)}")
    return wrong, seen, examples


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--addresses", type=int, default=3000, help="known mailboxes user0..user{N-1}")
    ap.add_argument("--unknown", type=int, default=10, help="extra unknown addresses (550 5.1.1)")
    ap.add_argument(
        "--latency", type=float, default=0.04, help="server round-trip latency, seconds"
    )
    ap.add_argument(
        "--server-connections", type=int, default=5, help="server's max concurrent connections"
    )
    ap.add_argument(
        "--per-host",
        type=int,
        default=None,
        help=f"MAILVET_SMTP_PER_HOST_CONNECTIONS (default: unset, mailvet's {DEFAULT_PER_HOST})",
    )
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    world = build_world(args.addresses, args.latency, args.server_connections)
    with tempfile.TemporaryDirectory(prefix="mailvet-smtp-bench-") as tmp_s:
        tmp = Path(tmp_s)
        src = tmp / "slow.csv"
        expected = write_input(src, args.addresses, args.unknown, args.seed)
        out = OUT_DIR / "smtp_result.csv"
        out.unlink(missing_ok=True)
        world.start()
        try:
            extra = dict(world.env())
            extra.update({"MAILVET_DATA_DIR": str(tmp / "data"), "MAILVET_DNS_TIMEOUT": "2"})
            if args.per_host is not None:
                extra["MAILVET_SMTP_PER_HOST_CONNECTIONS"] = str(args.per_host)
            cmd = mailvet_command() + ["validate", str(src), "-o", str(out), "--checks", "smtp"]
            run = run_child(cmd, clean_env(extra), tmp, OUT_DIR / "smtp_run")
        finally:
            world.stop()
        stats = world.smtp(MX_IP).stats.snapshot()
        dns_errors = list(world.dns.errors)

    total = len(expected)
    print(
        f"server       : {MX_HOST} ({MX_IP}) latency={args.latency}s "
        f"max_connections={args.server_connections} pipelining=on"
    )
    per_host = (
        args.per_host
        if args.per_host is not None
        else f"{DEFAULT_PER_HOST} (mailvet default, env unset)"
    )
    print(f"per-host     : {per_host} (MAILVET_SMTP_PER_HOST_CONNECTIONS)")
    print(f"addresses    : {total:,} ({args.addresses:,} known + {args.unknown} unknown)")
    if run.returncode != 0:
        print(f"mailvet failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
        print("TARGET MISSED: mailvet validate did not succeed")
        return 1
    rate = total / run.wall
    wrong, seen, examples = check_output(out, expected)
    print(
        f"wall         : {run.wall:.2f}s  (child CPU user {run.user:.2f}s + sys {run.system:.2f}s, "
        f"peak RSS {run.maxrss_mb:.0f} MiB)"
    )
    print(f"addresses/s  : {rate:,.0f}")
    print(f"verdicts     : {', '.join(f'{k}={v:,}' for k, v in sorted(seen.items()))}")
    print(f"wrong        : {wrong}")
    for line in examples:
        print(f"    {line}")
    print(
        f"server stats : max_concurrent={stats.max_concurrent} violations={stats.violations} "
        f"protocol_errors={stats.protocol_errors} transactions={stats.transactions} "
        f"connections_total={stats.connections_total} rcpt_total={stats.rcpt_total}"
    )
    if stats.transactions:
        print(
            f"               {stats.rcpt_total / stats.transactions:.1f} RCPT per transaction, "
            f"{stats.transactions / max(stats.connections_total, 1):.1f} transactions per "
            "connection"
        )
    if dns_errors:
        print(f"dns errors   : {len(dns_errors)} ({dns_errors[0]!r})")

    checks = [
        (
            "throughput",
            rate >= TARGET_ADDR_PER_S,
            f"{rate:,.0f} addresses/s (target >= {TARGET_ADDR_PER_S})",
        ),
        ("violations", stats.violations == 0, f"{stats.violations} (target 0)"),
        ("verdicts", wrong == 0, f"{wrong} wrong (target 0)"),
    ]
    return report_targets(checks)


if __name__ == "__main__":
    sys.exit(main())
