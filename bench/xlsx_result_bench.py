"""Peak memory and time of an XLSX list's steps: detection + count (intake), the addresses
(publisher), and the result written as XLSX (the workbook with cells added) and as CSV.

    .venv/bin/python bench/xlsx_result_bench.py [--rows 100000 400000]

Each size runs in a fresh interpreter (peak RSS of that process, from os.wait4); each step
is timed in CPU seconds of the process (wall time on a shared machine says little).  The input
is a workbook of `rows` rows (id, email as a shared string, a formula, a date) written by
openpyxl; the extra cells are the eight RESULT_COLUMNS-sized strings a job appends.  The
readers stream the sheet, so the peak should not grow with the rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import run_child

CHILD = """
import datetime as dt, sys, time
from pathlib import Path
import openpyxl
from mailvet.tabular import Workbooks, count_rows, detect_layout, iter_emails, write_result

rows, folder = int(sys.argv[1]), Path(sys.argv[2])
src = folder / "in.xlsx"
book = openpyxl.Workbook(write_only=True)
sheet = book.create_sheet("Contacts")
sheet.append(["id", "email", "double", "when"])
for i in range(rows):
    sheet.append([i, f"user{i}@example{i % 97}.com", f"=A{i + 2}*2", dt.date(2024, 1, 1)])
book.save(src)
times = []
start = time.process_time()
with Workbooks() as books:
    layout = detect_layout(src, books=books)
    assert count_rows(src, layout, books) == rows
times.append(time.process_time() - start)
start = time.process_time()
assert sum(1 for _ in iter_emails(src, layout)) == rows
times.append(time.process_time() - start)
for kind in ("xlsx", "csv"):
    extras = (("valid", "accepted", f"user{i}@example.com", "", "mx.example.com", "250", "", "")
              for i in range(rows))
    start = time.process_time()
    write_result(src, layout, folder / f"out.{kind}", [f"c{i}" for i in range(8)], extras,
                 out_kind=kind)
    times.append(time.process_time() - start)
print(src.stat().st_size, *(round(t, 2) for t in times))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 400_000])
    args = parser.parse_args()
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="xlsx-bench-") as folder:
            base = Path(folder)
            run = run_child(
                [sys.executable, "-c", CHILD, str(rows), folder],
                dict(os.environ),
                base,
                base / "run",
            )
        if run.returncode:
            print(run.stderr, file=sys.stderr)
            raise SystemExit(1)
        size, intake, emails, to_xlsx, to_csv = run.stdout.split()
        print(
            f"{rows:>9,} rows ({int(size) / 2**20:5.1f} MiB XLSX), CPU seconds: detect+count"
            f" {intake}, addresses {emails}, XLSX result {to_xlsx}, CSV result {to_csv};"
            f" peak RSS {run.maxrss_mb:6.1f} MiB (openpyxl writing the input included)"
        )


if __name__ == "__main__":
    main()
