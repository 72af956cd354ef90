"""The errors of reading a list: every reader gives the same one-line InputError."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailvet.tabular import FileLayout, InputError, chunk_emails, count_rows, iter_emails

pytestmark = pytest.mark.unit


@pytest.fixture
def field_limit_10() -> Iterator[None]:
    old = csv.field_size_limit(10)
    try:
        yield
    finally:
        csv.field_size_limit(old)


@pytest.mark.parametrize("kind", ["csv", "txt"])
def test_undecodable_file_same_message_from_every_reader(tmp_path: Path, kind: str) -> None:
    src = tmp_path / f"in.{kind}"
    src.write_bytes(b"email\na@x.com\nb\xff@x.com\n")
    layout = FileLayout(kind=kind, header=["email"])  # type: ignore[arg-type]
    message = "the file is not valid utf-8 text (invalid start byte)"
    with pytest.raises(InputError) as counting:
        count_rows(src, layout)
    with pytest.raises(InputError) as reading:
        list(iter_emails(src, layout))
    assert str(counting.value) == str(reading.value) == message


@pytest.mark.usefixtures("field_limit_10")
def test_a_malformed_chunk_names_its_line_in_the_chunk() -> None:
    layout = FileLayout(kind="csv", header=["email"])
    with pytest.raises(InputError) as info:
        chunk_emails('a@x.com\n"b@x.com"\n"' + "y" * 20 + '"\n', layout)
    assert str(info.value) == (
        "malformed CSV near line 3 of a chunk: field larger than field limit (10)"
    )
