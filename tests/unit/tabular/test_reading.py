"""The errors of reading a list: every reader gives the same one-line InputError."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailvet.tabular import FileLayout, InputError, count_rows, iter_emails

pytestmark = pytest.mark.unit


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
