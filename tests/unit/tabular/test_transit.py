"""How a job's rows travel by kind: text chunks and a rendered header part for CSV/TXT,
batches of addresses and no header part for XLSX."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailvet.tabular import (
    Chunk,
    detect_layout,
    header_text,
    iter_text_chunks,
    job_chunks,
    output_encoding,
    render_header,
    result_header,
)
from tests.unit.tabular.support import make_xlsx, write

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("in.csv", "\ufeffid;email\r\n1;a@x.com\r\n\r\n2;b@x.com\r\n3;c@x.com\r\n".encode()),
        ("in.txt", b"a@x.com\n\nb@x.com\nc@x.com"),
    ],
)
def test_text_lists_travel_as_raw_text_after_a_rendered_header(
    tmp_path: Path, name: str, data: bytes
) -> None:
    src = write(tmp_path, data, name)
    layout = detect_layout(src)
    assert layout.rendered_in_chunks
    chunks = list(job_chunks(src, layout, 2))
    assert chunks == [Chunk(rows, [], text) for text, rows in iter_text_chunks(src, layout, 2)]
    assert [chunk.rows for chunk in chunks] == [2, 1]
    codec, bom = output_encoding(layout)
    rendered = render_header(header_text(src, layout), layout, ["s", "r"])
    assert result_header(src, layout, ["s", "r"]) == bom + rendered.encode(codec)


def test_workbooks_travel_as_addresses_and_are_rewritten_at_the_end(tmp_path: Path) -> None:
    src = tmp_path / "in.xlsx"
    make_xlsx(src, [["email"], ["a@x.com"], [None], ["b@x.com"], ["c@x.com"]])
    layout = detect_layout(src)
    assert not layout.rendered_in_chunks
    assert list(job_chunks(src, layout, 2)) == [
        Chunk(2, ["a@x.com", "b@x.com"], ""),
        Chunk(1, ["c@x.com"], ""),
    ]
    assert result_header(src, layout, ["s"]) is None
