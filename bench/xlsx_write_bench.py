"""Peak memory and time of writing an XLSX result: write_result of a CSV list to XLSX.

    .venv/bin/python bench/xlsx_write_bench.py [--rows 100000 400000]

Each size runs in a fresh interpreter (peak RSS of that process, from os.wait4): the
input is a CSV of `rows` rows (id, email, name), the extra cells are the eight
RESULT_COLUMNS-sized strings a job appends.  The write-only workbook streams its sheet
through a temporary file, so the peak should not grow with the rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import os

from _common import run_child

CHILD = """
import sys, time
from pathlib import Path
from mailvet.tabular import detect_layout, write_result

rows, folder = int(sys.argv[1]), Path(sys.argv[2])
src = folder / "in.csv"
with src.open("w") as fh:
    fh.write("id,email,name\\n")
    for i in range(rows):
        fh.write(f"{i},user{i}@example{i % 97}.com,Name {i}\\n")
layout = detect_layout(src)
extras = (("valid", "accepted", f"user{i}@example.com", "", "mx.example.com", "250", "", "")
          for i in range(rows))
start = time.perf_counter()
written = write_result(src, layout, folder / "out.xlsx", [f"c{i}" for i in range(8)], extras,
                       out_kind="xlsx")
print(written, round(time.perf_counter() - start, 2), (folder / "out.xlsx").stat().st_size)
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
        written, seconds, size = run.stdout.split()
        print(
            f"{int(written):>9,} rows -> XLSX: write {float(seconds):6.2f} s,"
            f" peak RSS {run.maxrss_mb:6.1f} MiB, output {int(size) / 2**20:6.1f} MiB"
        )


if __name__ == "__main__":
    main()
