"""How a list's rows travel through the pipeline, by kind of file.

CSV and TXT rows travel as the raw text of their records: a worker parses the addresses out
of its chunk and renders the same records with the verdict cells appended, encoded as the
result file holds them, so the result is the rendered header part followed by the rendered
chunks, in order.  XLSX rows travel as their addresses and come back as cells, and the
result is rewritten from the input and the cells at the end (``write_result``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from mailvet.tabular.chunks import header_text, iter_text_chunks
from mailvet.tabular.encoding import OUTPUT_ERRORS, output_encoding
from mailvet.tabular.layout import FileLayout
from mailvet.tabular.records import iter_emails
from mailvet.tabular.render import render_header


class Chunk(NamedTuple):
    """One chunk of a job's rows, as the publisher sends it."""

    rows: int
    emails: list[str]  # the addresses, when the chunk does not travel as text
    text: str  # the raw records, when it does (see FileLayout.rendered_in_chunks)


def job_chunks(path: Path, layout: FileLayout, rows_per_chunk: int) -> Iterator[Chunk]:
    """The chunks of `rows_per_chunk` data rows (the last one fewer) a job's rows travel in:
    raw text for a layout rendered in chunks, addresses for the others."""
    if layout.rendered_in_chunks:
        for text, rows in iter_text_chunks(path, layout, rows_per_chunk):
            yield Chunk(rows, [], text)
        return
    emails = iter_emails(path, layout)
    while batch := list(itertools.islice(emails, rows_per_chunk)):
        yield Chunk(len(batch), batch, "")


def result_header(path: Path, layout: FileLayout, extra_header: Sequence[str]) -> bytes | None:
    """The first bytes of a result rendered in chunks (BOM, preamble, header with the extra
    names), encoded as the chunks are; None for a result rewritten at the end."""
    if not layout.rendered_in_chunks:
        return None
    codec, bom = output_encoding(layout)
    rendered = render_header(header_text(path, layout), layout, extra_header)
    return bom + rendered.encode(codec, OUTPUT_ERRORS)
