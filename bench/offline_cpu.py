"""CPU seconds of the syntax-only chunk function, in one process: a deterministic measure.

    .venv/bin/python bench/offline_cpu.py [--rows 1000000] [--seed 7] [--runs 3] [--workers 2]

The wall time of bench/syntax_bench.py moves with the machine's load; this does not (much).
It reads the bench's cached CSV (bench/out/emails_<rows>_s<seed>_v1.csv, made by
gen_emails.py as syntax_bench does), cuts it into the chunks the publisher would send
(detect_layout, iter_text_chunks, the engine's syntax chunk size) and runs
`chunk_output.syntax_chunk` over them in this process, timed with `time.process_time()`.

Each run starts as a fresh pool worker does: after `warm_up()` (the risk lists loaded),
with the per-process domain caches emptied, the chunks dealt round-robin to `--workers`
simulated workers whose caches are kept apart (as the pool's processes are: each works out
every domain its chunks meet). The best of `--runs` is printed, in total and per row, with
a split: the addresses parsed out of the chunks (chunk_addresses), and the rest (verdicts,
appended text, rendering, encoding). It also counts the rows that miss the per-domain fast
path, by why.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT_DIR
from gen_emails import generate_csv

from mailvet.domain import address, offline
from mailvet.domain.messages import RowChunk
from mailvet.domain.verdict import Check
from mailvet.pipeline import chunk_output
from mailvet.settings import EngineSettings
from mailvet.tabular import detect_layout, iter_text_chunks


def load_chunks(path: Path, size: int) -> list[RowChunk]:
    layout = detect_layout(path)
    data = chunk_output.encode_file_layout(layout)
    return [
        RowChunk(
            job_id="bench",
            chunk_id=i,
            first_row=i * size,
            rows=rows,
            checks=Check.SYNTAX,
            text=text,
            layout=data,
        )
        for i, (text, rows) in enumerate(iter_text_chunks(path, layout, size))
    ]


def cold() -> None:
    """The per-process caches as a freshly forked worker has them (after warm_up)."""
    offline.clear_caches()


def timed(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def run_once(chunks: list[RowChunk], workers: int) -> tuple[float, float]:
    """(CPU of the whole chunk function, CPU of chunk_addresses alone), workers simulated:
    each one's share of the chunks runs with the caches cold at its start."""
    total = parse = 0.0
    for w in range(workers):
        share = chunks[w::workers]

        def work(share: list[RowChunk] = share) -> None:
            for chunk in share:
                chunk_output.syntax_chunk(chunk)

        def addresses(share: list[RowChunk] = share) -> None:
            for chunk in share:
                chunk_output.chunk_addresses(chunk)

        cold()
        total += timed(work)
        parse += timed(addresses)
    return total, parse


def slow_rows(chunks: list[RowChunk]) -> Counter[str]:
    """Why rows miss the fast path (the first reason that applies; "" for the rows on it),
    as syntax_tails itself counts them."""
    why: Counter[str] = Counter()
    for chunk in chunks:
        cells = chunk_output.chunk_addresses(chunk)
        missed = sum(why.values())
        offline.syntax_tails(cells, ",", misses=why)
        why[""] += len(cells) - (sum(why.values()) - missed)
    return why


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--why", action="store_true", help="count the rows off the fast path")
    args = ap.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    src, _ = generate_csv(OUT_DIR, args.rows, args.seed)
    size = EngineSettings().syntax_chunk_size
    chunks = load_chunks(src, size)
    rows = sum(c.rows for c in chunks)
    chunk_output.warm_up()
    results = [run_once(chunks, args.workers) for _ in range(args.runs)]
    if not results:  # --runs 0: the set-up alone (to subtract from a callgrind count)
        return 0
    total, parse = min(results)
    load = os.getloadavg()[0]
    print(
        f"{rows:,} rows in {len(chunks)} chunks of {size:,}, {args.workers} simulated workers,"
        f" best of {args.runs} (load {load:.1f})"
    )
    print(f"syntax_chunk     : {total:.3f} CPU-s  {1e6 * total / rows:.2f} us a row")
    print(f"  chunk_addresses: {parse:.3f} CPU-s  {1e6 * parse / rows:.2f} us a row")
    print(
        f"  the rest       : {total - parse:.3f} CPU-s  {1e6 * (total - parse) / rows:.2f} us a row"
    )
    print(f"all runs         : {', '.join(f'{t:.3f}' for t, _ in results)}")
    print(f"domains cached   : {address.cached_domain.cache_info().currsize:,} (lru)")
    if args.why:
        for reason, count in slow_rows(chunks).most_common():
            print(f"  {count:>9,}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
