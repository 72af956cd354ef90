"""Where a chunk's verdicts become output: the rendered rows a result file is made of.

For CSV and TXT lists a chunk travels as the raw text of its records; the worker parses the
addresses out of it and renders the same records with the mailvet_* cells appended, encoded
as the output file will hold them. The result generator then only concatenates chunks in
order. XLSX chunks travel as a list of addresses and come back as cells, which the result
generator writes into a workbook at the end.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from operator import itemgetter

import msgspec

from mailvet.domain.credits import REFUNDED_REASONS
from mailvet.domain.messages import RowChunk
from mailvet.domain.offline import never_in_cells, syntax_columns, syntax_tails
from mailvet.domain.verdict import STATUS_OF, Reason, Verdict
from mailvet.tabular import FileLayout, chunk_emails, output_encoding, render_chunk
from mailvet.tabular.render import FORMULA_STARTS

TEXT = "text"  # ChunkOutput.form: encoded output rows, concatenated into the result file
CELLS = "cells"  # msgpack list of RESULT_COLUMNS cell tuples (XLSX results)


class ChunkOutput(msgspec.Struct, frozen=True, array_like=True):
    """A validated chunk, ready for the result file, plus its counts for the summary."""

    form: str
    rows: int
    data: bytes
    statuses: dict[str, int]
    reasons: dict[str, int]
    # normalized addresses of the rows whose verdict is refunded (domain.credits), so the
    # result generator can settle the job's credits by distinct address
    refunded: list[str] = []


def encode_file_layout(layout: FileLayout) -> bytes:
    return msgspec.msgpack.encode(layout)


def decode_file_layout(data: bytes) -> FileLayout:
    return msgspec.msgpack.decode(data, type=FileLayout)


def chunk_addresses(chunk: RowChunk) -> list[str]:
    """The addresses of a chunk's rows, in order."""
    if chunk.text:
        return chunk_emails(chunk.text, decode_file_layout(chunk.layout))
    return list(chunk.emails)


def render(chunk: RowChunk, verdicts: Sequence[Verdict]) -> ChunkOutput:
    """Render a chunk's verdicts in the form its result file needs."""
    return render_cells(chunk, [verdict.columns() for verdict in verdicts])


def render_cells(chunk: RowChunk, cells: list[tuple[str, ...]]) -> ChunkOutput:
    """Render a chunk's RESULT_COLUMNS cells (one tuple a row) in the form its result file
    needs, with the counts of statuses and reasons (the enums are str: keys equal values)
    and the normalized addresses of its refunded rows."""
    statuses = Counter(map(itemgetter(0), cells))
    reasons = Counter(map(itemgetter(1), cells))
    refunded = (
        [cell[2] for cell in cells if cell[1] in REFUNDED_REASONS]
        if not REFUNDED_REASONS.isdisjoint(reasons)
        else []
    )
    if chunk.text:
        layout = decode_file_layout(chunk.layout)
        codec, _ = output_encoding(layout)
        data = render_chunk(chunk.text, layout, cells).encode(codec, "replace")
        return ChunkOutput(TEXT, len(cells), data, dict(statuses), dict(reasons), refunded)
    return ChunkOutput(
        CELLS, len(cells), msgspec.msgpack.encode(cells), dict(statuses), dict(reasons), refunded
    )


_cells_decoder = msgspec.msgpack.Decoder(list[tuple[str, ...]])


def decode_cells(data: bytes) -> list[tuple[str, ...]]:
    return _cells_decoder.decode(data)


def encode_output(output: ChunkOutput) -> bytes:
    return msgspec.msgpack.encode(output)


def decode_output(data: bytes) -> ChunkOutput:
    return msgspec.msgpack.decode(data, type=ChunkOutput)


def warm_up() -> int:
    """What a pool process runs first, while the file is still being read: the risk lists
    and the library's tables loaded, so that its first chunk does not wait for them."""
    syntax_columns(["warm.up@gmail.com", "warm@gmial.con", "warm@gmail,com"])
    return os.getpid()


def syntax_chunk(chunk: RowChunk) -> ChunkOutput:
    """A syntax-only chunk from raw rows to rendered output, in one call: what a pool
    process runs (this module imports the domain and the tabular code, nothing more).

    CSV and TXT rows whose delimiter and quote character no verdict cell can hold get
    their appended text made per domain (syntax_tails), without cells to join and check."""
    addresses = chunk_addresses(chunk)
    if chunk.text:
        layout = decode_file_layout(chunk.layout)
        sep, quote = (layout.delimiter, layout.quotechar) if layout.kind == "csv" else (",", '"')
        if never_in_cells(sep) and never_in_cells(quote):
            tails, reasons, started = syntax_tails(addresses, sep, _FORMULA_STARTS)
            if not started:
                return _tails_output(chunk.text, layout, tails, reasons)
    return render_cells(chunk, syntax_columns(addresses))


def _tails_output(
    text: str, layout: FileLayout, tails: list[str], reasons: list[str]
) -> ChunkOutput:
    codec, _ = output_encoding(layout)
    data = render_chunk(text, layout, (), tails=tails).encode(codec, "replace")
    by_reason = Counter(reasons)
    statuses: Counter[str] = Counter()
    for reason, count in by_reason.items():  # an offline verdict's status is its reason's
        statuses[STATUS_OF[Reason(reason)]] += count
    return ChunkOutput(TEXT, len(tails), data, dict(statuses), dict(by_reason))


# Might a cell start like a formula (an address such as "=1+x@y.com")? syntax_tails tells
# (per row, where it makes the cells): such chunks (rare) take the cells path, where each
# such cell is made formula-safe.
_FORMULA_STARTS = "".join(FORMULA_STARTS)
