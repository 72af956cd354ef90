"""Syntax-only throughput of `mailvet validate`, and its agreement with the syntax rules.

    .venv/bin/python bench/syntax_bench.py [--rows 200000,1000000] [--seed 7] [--regen] [--profile]

For each size (default 200,000 then 1,000,000 rows):
1. Generates (once; cached in bench/out/) a realistic, seeded CSV `id,email,first_name,city`;
   times a 1-row file FIXED_RUNS times, each in a fresh data folder (the fixed cost: median).
2. Runs `mailvet validate <csv> -o <out> --checks syntax` as a subprocess (fresh
   MAILVET_DATA_DIR in a temp folder, no other MAILVET_* variable, cwd = that temp folder so
   no config/mailvet.toml is picked up); wall time end to end (start-up included) and the
   peak memory: PSS summed over the child and all its descendants (sampled every 50 ms: the syntax
   pool's workers are forked by a fork server, so os.wait4 of the child would miss them),
   and the child's own CPU (os.wait4: without the pool workers').
3. Runs `email_validator.validate_email(addr.strip(), check_deliverability=False)` in a plain
   loop over the same cells, timed: the speed reference.
4. Compares verdicts row by row with `mailvet.domain.address.reference_check` (the rules
   stated through email-validator alone): mailvet_reason == "invalid_syntax" <=> the
   reference says invalid; when valid, mailvet_normalized == the reference's normalized.
   Without reference_check (an older tree) it falls back to the plain library loop's
   verdicts, and says so.

Prints figures; exits 1 with a "TARGET MISSED" line when a target is missed.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT_DIR, clean_env, mailvet_command, report_targets, run_child
from gen_emails import generate_csv

# rows -> end-to-end rows/s wanted; the speed-up over the plain library loop is wanted at the
# smallest size (start-up and pool spawn weigh most there)
TARGET_ROWS_PER_S = {200_000: 100_000, 1_000_000: 200_000}
TARGET_RSS_MB = 300
TARGET_SPEEDUP = 3.0
FIXED_RUNS = 5  # fresh-data-folder runs of the 1-row file for the fixed cost


def read_emails(path: Path) -> tuple[list[str], list[str]]:
    ids, emails = [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        i_id, i_email = header.index("id"), header.index("email")
        for row in reader:
            if not row:
                continue
            ids.append(row[i_id])
            emails.append(row[i_email] if len(row) > i_email else "")
    return ids, emails


def library_loop(emails: list[str]) -> tuple[float, list[str | None]]:
    """Time the plain email-validator loop; None = raised, else .normalized."""
    from email_validator import EmailNotValidError, validate_email

    results: list[str | None] = []
    append = results.append
    start = time.perf_counter()
    for cell in emails:
        try:
            append(validate_email(cell.strip(), check_deliverability=False).normalized)
        except EmailNotValidError:
            append(None)
    return time.perf_counter() - start, results


def reference_verdicts(emails: list[str]) -> tuple[str, list[str | None]] | None:
    """The new rules' verdicts (None = invalid, else normalized), once per distinct cell."""
    try:
        from mailvet.domain.address import reference_check  # type: ignore[attr-defined]
    except ImportError:
        return None
    seen: dict[str, str | None] = {}
    out: list[str | None] = []
    for cell in emails:
        key = cell.strip()
        if key not in seen:
            syntax = reference_check(key)
            seen[key] = syntax.normalized if syntax.valid else None
        out.append(seen[key])
    return "mailvet.domain.address.reference_check", out


def compare(
    out_path: Path, ids: list[str], emails: list[str], lib: list[str | None]
) -> tuple[int, list[str]]:
    mismatches = 0
    examples: list[str] = []

    def bad(msg: str) -> None:
        nonlocal mismatches
        mismatches += 1
        if len(examples) < 15:
            examples.append(msg)

    with open(out_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        i_id = header.index("id")
        i_reason = header.index("mailvet_reason")
        i_norm = header.index("mailvet_normalized")
        n = 0
        for row in reader:
            if not row:
                continue
            if n >= len(ids):
                bad(f"extra output row {n}: {row!r}")
                n += 1
                continue
            if row[i_id] != ids[n]:
                bad(f"row {n}: id {row[i_id]!r} != input id {ids[n]!r}")
            mv_invalid = row[i_reason] == "invalid_syntax"
            expected = lib[n]
            if mv_invalid != (expected is None):
                bad(
                    f"row {n} {emails[n]!r}: mailvet reason={row[i_reason]!r}, "
                    f"reference {'invalid' if expected is None else 'valid ' + repr(expected)}"
                )
            elif expected is not None and row[i_norm] != expected:
                bad(f"row {n} {emails[n]!r}: normalized mailvet={row[i_norm]!r} lib={expected!r}")
            n += 1
    if n < len(ids):
        bad(f"output has {n} rows, input {len(ids)}")
        mismatches += len(ids) - n - 1
    return mismatches, examples


def run_size(rows: int, args: argparse.Namespace) -> list[tuple[str, bool, str]]:
    t0 = time.perf_counter()
    src, generated = generate_csv(OUT_DIR, rows, args.seed, force=args.regen)
    gen_s = time.perf_counter() - t0
    size_mb = src.stat().st_size / 2**20
    print(f"\n=== {rows:,} rows ===")
    print(
        f"input        : {src} ({size_mb:.1f} MiB, {'generated' if generated else 'cached'} in "
        f"{gen_s:.1f}s)"
    )

    ids, emails = read_emails(src)
    stripped = [e.strip() for e in emails]
    domains = {e.rpartition("@")[2].lower() for e in stripped if "@" in e}

    cmd_base = mailvet_command()
    with tempfile.TemporaryDirectory(prefix="mailvet-bench-") as tmp_s:
        tmp = Path(tmp_s)
        env = clean_env({"MAILVET_DATA_DIR": str(tmp / "data")})

        # Warm-up on a tiny file: compiles .pyc, measures the fixed cost of one run (then
        # FIXED_RUNS more, each with a fresh data folder as a first run has: the median).
        tiny = tmp / "tiny.csv"
        tiny.write_text("id,email\n1,a@example.com\n", encoding="utf-8")
        tiny_cmd = cmd_base + [
            "validate",
            str(tiny),
            "-o",
            str(tmp / "tiny.out.csv"),
            "--checks",
            "syntax",
        ]
        warm = run_child(tiny_cmd, env, tmp, OUT_DIR / "syntax_warmup")
        fixed = [
            run_child(
                tiny_cmd,
                clean_env({"MAILVET_DATA_DIR": str(tmp / f"fixed-{i}")}),
                tmp,
                OUT_DIR / "syntax_fixed",
            )
            for i in range(FIXED_RUNS)
        ]

        out_path = OUT_DIR / f"{src.stem}.mailvet.csv"
        cmd = cmd_base + ["validate", str(src), "-o", str(out_path), "--checks", "syntax"]
        run = run_child(cmd, env, tmp, OUT_DIR / f"syntax_run_{rows}")

        if args.profile:
            prof = OUT_DIR / f"syntax_{rows}.prof"
            pcmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "mailvet"] + cmd[
                len(cmd_base) :
            ]
            pcmd[pcmd.index(str(out_path))] = str(tmp / "profile.out.csv")
            prun = run_child(pcmd, env, tmp, OUT_DIR / "syntax_profile")

    if run.returncode != 0:
        print(f"mailvet failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
        return [(f"{rows:,} rows: validate", False, f"exit {run.returncode}")]

    rate = rows / run.wall
    print(f"mailvet      : {' '.join(cmd[1:] if len(cmd_base) == 1 else cmd)}")
    walls = sorted(run.wall for run in fixed)
    print(
        f"fixed cost   : {statistics.median(walls):.2f}s wall for a 1-row file (startup + job"
        f" machinery, fresh data folder; median of {len(walls)}, min {walls[0]:.2f},"
        f" max {walls[-1]:.2f}; CPU {statistics.median(r.tree_cpu for r in fixed):.2f}s;"
        f" the first, .pyc compiling: {warm.wall:.2f}s), rc={warm.returncode}"
    )
    print(
        f"wall         : {run.wall:.2f}s  (child CPU user {run.user:.2f}s + sys {run.system:.2f}s)"
    )
    print(
        f"CPU, all     : {run.tree_cpu:.2f}s  (mailvet and its pool workers, sampled every 50 ms;"
        f" {1e6 * run.tree_cpu / rows:.1f} us a row: the figure a busy machine changes least)"
    )
    print(f"rows/s       : {rate:,.0f}  (end to end, start-up included)")
    print(
        f"peak RSS     : {run.tree_rss_mb:.1f} MiB  (PSS summed over mailvet and its pool workers, "
        "sampled every 50 ms;"
        f" the mailvet process alone: {run.maxrss_mb:.1f} MiB)"
    )

    lib_s, lib = library_loop(emails)
    lib_rate = rows / lib_s
    speedup = rate / lib_rate
    n_invalid = sum(r is None for r in lib)
    print(
        f"email-validator loop : {lib_s:.2f}s, {lib_rate:,.0f} rows/s  "
        f"({n_invalid:,} raised = {100 * n_invalid / rows:.1f}%)"
    )
    valid_domains = {n.rpartition("@")[2] for n in lib if n is not None}
    print(
        f"distinct     : {len(set(stripped)):,} addresses; "
        f"{len(valid_domains):,} domains among valid ones"
        f" ({len(domains):,} lower-cased domain strings incl. invalid)"
    )
    print(
        f"speed-up     : {speedup:.2f}x  (mailvet end-to-end rows/s / email-validator loop rows/s)"
    )

    reference = reference_verdicts(emails)
    if reference is None:
        print(
            "verdicts vs : the plain email-validator loop (mailvet.domain.address.reference_check "
            "is not in this tree yet: the old comparison)"
        )
        expected = lib
    else:
        print(f"verdicts vs : {reference[0]} (the new rules through the library alone)")
        expected = reference[1]
    mismatches, examples = compare(out_path, ids, emails, expected)
    print(f"mismatches   : {mismatches:,}")
    for line in examples:
        print(f"    {line}")

    if args.profile:
        import pstats

        print(
            f"\nprofile      : {prof} (wall under cProfile {prun.wall:.1f}s, rc={prun.returncode})"
        )
        print(
            "\ncProfile of the mailvet child (main thread; asyncio.to_thread work shows as waits):"
        )
        pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(25)
        pstats.Stats(str(prof)).sort_stats("tottime").print_stats(20)

    checks = []
    wanted = TARGET_ROWS_PER_S.get(rows)
    if wanted is not None:
        checks.append(
            (
                f"{rows:,} rows: throughput",
                rate >= wanted,
                f"{rate:,.0f} rows/s (target >= {wanted:,})",
            )
        )
    checks.append(
        (
            f"{rows:,} rows: peak RSS",
            run.tree_rss_mb <= TARGET_RSS_MB,
            f"{run.tree_rss_mb:.1f} MiB, all processes (target <= {TARGET_RSS_MB})",
        )
    )
    if rows == min(args.sizes):
        checks.append(
            (
                f"{rows:,} rows: speed-up",
                speedup >= TARGET_SPEEDUP,
                f"{speedup:.2f}x (target >= {TARGET_SPEEDUP:g}x)",
            )
        )
    checks.append(
        (
            f"{rows:,} rows: agreement",
            mismatches == 0,
            f"{mismatches} differing verdicts (target 0)",
        )
    )
    return checks


def print_load(label: str) -> None:
    """Other work on the machine slows every figure; say how much there was."""
    try:
        load = os.getloadavg()
        print(f"{label}: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    except OSError:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", default="200000,1000000", help="comma-separated sizes")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--regen", action="store_true", help="regenerate the cached CSV")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also run mailvet once under cProfile (main thread only) and print the top functions",
    )
    args = ap.parse_args()
    args.sizes = [int(part) for part in args.rows.split(",") if part.strip()]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    print_load("load average ")
    checks: list[tuple[str, bool, str]] = []
    for rows in args.sizes:
        checks += run_size(rows, args)
    print_load("load after   ")
    return report_targets(checks)


if __name__ == "__main__":
    sys.exit(main())
