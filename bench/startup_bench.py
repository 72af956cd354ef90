"""Fixed cost of a `mailvet` command: median wall time over N fresh interpreters.

    .venv/bin/python bench/startup_bench.py [--runs 9]

Each run is a subprocess (the venv's `mailvet` script, a fresh MAILVET_DATA_DIR in a temp
folder, no other MAILVET_* variable, cwd = that folder), timed from spawn to reaped:

1. `mailvet check a@example.com --checks syntax`
2. `mailvet status <id>` of the job made by a first `validate` in the same data dir
3. `mailvet validate <10-row csv> --checks syntax`
4. `python -c pass` and `python -c "import typer"`-sized floors, for scale

Prints median, min and max wall time and the median CPU (user+sys) of each beside its
target; the CPU figure moves less than wall time when other work shares the machine.
Exits 1 with a "TARGET MISSED" line when a median misses its target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT_DIR, ChildRun, clean_env, mailvet_command, report_targets, run_child

TARGETS = {"check": 0.25, "status": 0.4, "validate": 0.6}

TYPER_FLOOR = """
import typer
app = typer.Typer()
@app.command()
def check(address: str, json: bool = False) -> None:
    pass
@app.command()
def other() -> None:
    pass
app()
"""


def runs_of(cmd: list[str], env: dict[str, str], cwd: Path, name: str, n: int) -> list[ChildRun]:
    out = []
    for i in range(n):
        run = run_child(cmd, env, cwd, OUT_DIR / f"startup_{name}_{i}")
        if run.returncode != 0:
            raise SystemExit(f"{name} failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
        out.append(run)
    return out


def line(name: str, runs: list[ChildRun], target: float | None) -> str:
    walls = [r.wall for r in runs]
    cpu = statistics.median(r.user + r.system for r in runs)
    goal = f"   target <= {target:.2f}s" if target is not None else ""
    return (
        f"{name:<34} median {statistics.median(walls):.3f}s  min {min(walls):.3f}s  "
        f"max {max(walls):.3f}s  cpu {cpu:.3f}s{goal}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    mailvet = mailvet_command()
    try:
        load = os.getloadavg()
        print(f"load average : {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    except OSError:
        pass

    with tempfile.TemporaryDirectory(prefix="mailvet-startup-") as tmp_s:
        tmp = Path(tmp_s)
        env = clean_env({"MAILVET_DATA_DIR": str(tmp / "data")})
        ten = tmp / "ten.csv"
        ten.write_text(
            "email\n" + "".join(f"user{i}@example.com\n" for i in range(10)), encoding="utf-8"
        )
        validate = mailvet + [
            "validate",
            str(ten),
            "-o",
            str(tmp / "ten.out.csv"),
            "--checks",
            "syntax",
        ]
        first = run_child(
            validate, env, tmp, OUT_DIR / "startup_first_validate"
        )  # also compiles .pyc
        if first.returncode != 0:
            print(f"the first validate failed:\n{first.stderr[-2000:]}")
            return 1
        import sqlite3

        with sqlite3.connect(tmp / "data" / "mailvet.db") as conn:
            (job_id,) = conn.execute("SELECT id FROM jobs ORDER BY created_at LIMIT 1").fetchone()

        results = {
            "check": runs_of(
                mailvet + ["check", "a@example.com", "--checks", "syntax"],
                env,
                tmp,
                "check",
                args.runs,
            ),
            "status": runs_of(mailvet + ["status", job_id], env, tmp, "status", args.runs),
            "validate": runs_of(validate, env, tmp, "validate", args.runs),
        }
        floors = {
            "python -c pass": runs_of(
                [sys.executable, "-c", "pass"], env, tmp, "python", args.runs
            ),
            "a two-command Typer app": runs_of(
                [sys.executable, "-c", TYPER_FLOOR, "check", "x"], env, tmp, "typer", args.runs
            ),
        }

    print(f"runs         : {args.runs} per command, each a fresh interpreter")
    labels = {
        "check": "check a@example.com --checks syntax",
        "status": "status <id> (embedded SQLite)",
        "validate": "validate 10 rows --checks syntax",
    }
    for key, runs in results.items():
        print(line(labels[key], runs, TARGETS[key]))
    print("floors (no mailvet code):")
    for name, runs in floors.items():
        print(line(f"  {name}", runs, None))

    checks = []
    for key, runs in results.items():
        median = statistics.median(r.wall for r in runs)
        checks.append(
            (
                labels[key],
                median <= TARGETS[key],
                f"median {median:.3f}s (target <= {TARGETS[key]:.2f}s)",
            )
        )
    return report_targets(checks)


if __name__ == "__main__":
    sys.exit(main())
