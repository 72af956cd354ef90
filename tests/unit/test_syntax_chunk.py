"""syntax_chunk (what a pool process runs) renders a chunk exactly as the verdicts one by one
would: the per-domain tails where no cell can need quoting, the cells elsewhere."""

from __future__ import annotations

import random

import pytest

from mailvet.domain.messages import RowChunk
from mailvet.domain.offline import syntax_verdicts
from mailvet.domain.verdict import Check
from mailvet.pipeline.chunk_output import (
    chunk_addresses,
    encode_file_layout,
    render,
    syntax_chunk,
)
from mailvet.tabular import FileLayout, chunk_emails, render_chunk
from tests.unit.test_address import corpus
from tests.unit.test_offline import DOMAINS, LOCALS


def cells_of(rnd: random.Random, n: int) -> list[str]:
    pool = corpus(2_000, seed=21) + [f"{local}@{domain}" for domain in DOMAINS for local in LOCALS]
    return [rnd.choice(pool) for _ in range(n)]


def csv_text(rnd: random.Random, addresses: list[str], sep: str, quote: str, term: str) -> str:
    lines = []
    for i, address in enumerate(addresses):
        if any(c in address for c in (sep, quote, "\r", "\n")):
            address = quote + address.replace(quote, quote * 2) + quote
        lines.append(f"{i}{sep}{address}{sep}x{term}")
        if rnd.random() < 0.02:
            lines.append(term)  # a blank record stays where it is
    return "".join(lines)


def chunk_of(text: str, layout: FileLayout, rows: int) -> RowChunk:
    return RowChunk(
        job_id="j",
        chunk_id=0,
        first_row=0,
        rows=rows,
        checks=Check.SYNTAX,
        emails=[],
        text=text,
        layout=encode_file_layout(layout),
    )


@pytest.mark.parametrize(
    ("sep", "quote", "term"),
    [(",", '"', "\r\n"), (";", '"', "\n"), ("\t", '"', "\n"), ("|", '"', "\r\n"), (",", "'", "\n")],
)
def test_csv_chunk_as_the_verdicts_one_by_one(sep: str, quote: str, term: str) -> None:
    rnd = random.Random(f"{sep}{quote}{term}")
    addresses = cells_of(rnd, 3_000)
    layout = FileLayout(kind="csv", delimiter=sep, quotechar=quote, email_index=1)
    text = csv_text(rnd, addresses, sep, quote, term)
    chunk = chunk_of(text, layout, len(addresses))
    assert chunk_emails(text, layout) == [a.strip() for a in addresses]
    expected = render(chunk, syntax_verdicts(chunk_addresses(chunk)))
    assert syntax_chunk(chunk) == expected
    assert expected.rows == 3_000 and sum(expected.statuses.values()) == 3_000


def test_txt_chunk_as_the_verdicts_one_by_one() -> None:
    rnd = random.Random(5)
    addresses = [a for a in cells_of(rnd, 3_000) if a.strip() and "\n" not in a and "\r" not in a]
    text = "".join(f"{a}\n" for a in addresses)
    layout = FileLayout(kind="txt")
    chunk = chunk_of(text, layout, len(chunk_emails(text, layout)))
    assert syntax_chunk(chunk) == render(chunk, syntax_verdicts(chunk_addresses(chunk)))


def test_render_chunk_with_tails_given_as_with_cells() -> None:
    layout = FileLayout(kind="csv", email_index=1)
    text = '1,a@x.com\r\n\r\n2,b@y.org\r\n3,"c,d"@z\r\n'
    cells = [["risky", "x;y"], ["ok", ""], ["bad", "n"]]
    tails = ["," + ",".join(row) for row in cells]
    assert render_chunk(text, layout, (), tails=tails) == render_chunk(text, layout, cells)
