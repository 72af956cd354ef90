"""CSV/TXT files in chunks of whole records, rendered chunk by chunk: the randomized
byte-for-byte tests and the differential test of the record cutter against csv.reader."""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import random
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from mailvet.tabular import (
    FileLayout,
    InputError,
    chunk_emails,
    count_rows,
    detect_layout,
    header_text,
    iter_emails,
    iter_text_chunks,
    output_encoding,
    render_chunk,
    render_header,
    write_result,
)
from tests.unit.tabular.support import check_chunked, write

pytestmark = pytest.mark.unit


def test_chunks_start_with_a_row_blank_records_stay_at_the_end_of_a_chunk(tmp_path: Path) -> None:
    src = write(tmp_path, b"Export\r\n\r\nemail,n\n\n a@x.com,1\n\n\r\nb@x.com,2\nc@x.com,3\n\n")
    layout = detect_layout(src)
    assert layout.skip_records == 3 and layout.email_index == 0
    assert header_text(src, layout) == "Export\r\n\r\nemail,n\n\n"  # + the blank line after it
    assert list(iter_text_chunks(src, layout, 2)) == [
        (" a@x.com,1\n\n\r\nb@x.com,2\n", 2),
        ("c@x.com,3\n\n", 1),
    ]
    assert list(iter_text_chunks(src, layout, 3)) == [
        (" a@x.com,1\n\n\r\nb@x.com,2\nc@x.com,3\n\n", 3)
    ]
    assert (
        render_header(header_text(src, layout), layout, ["s", "t"])
        == "Export\r\n\r\nemail,n,s,t\n\n"
    )
    assert render_chunk(" a@x.com,1\n\n\r\nb@x.com,2\n", layout, [["ok", "1"], ["bad", "2"]]) == (
        " a@x.com,1,ok,1\n\n\r\nb@x.com,2,bad,2\n"
    )
    assert chunk_emails(" a@x.com,1\n\n\r\nb@x.com,2\n", layout) == ["a@x.com", "b@x.com"]
    check_chunked(src, layout, ["s", "t"], [["ok", "1"], ["bad", "2"], ["x", "3"]])


def test_file_without_data_rows_has_no_chunk(tmp_path: Path) -> None:
    src = write(tmp_path, b"email\r\n\r\n\n")
    layout = detect_layout(src)
    assert (
        header_text(src, layout) == "email\r\n\r\n\n"
    )  # all of it: nothing is after the first row
    assert list(iter_text_chunks(src, layout, 5)) == []
    assert render_header("email\r\n\r\n\n", layout, ["s"]) == "email,s\r\n\r\n\n"
    check_chunked(src, layout, ["s"], [])


def test_no_header_and_leading_blank_lines(tmp_path: Path) -> None:
    src = write(tmp_path, b"\n\r\na@x.com,1\nb@x.com,2")
    layout = detect_layout(src)
    assert not layout.has_header and layout.skip_records == 0
    assert header_text(src, layout) == "\n\r\n"  # blank lines before the first row
    assert render_header("\n\r\n", layout, ["s"]) == "\n\r\n"
    assert render_header("", layout, ["s"]) == ""  # no header line in a header-less CSV result
    assert list(iter_text_chunks(src, layout, 1)) == [("a@x.com,1\n", 1), ("b@x.com,2", 1)]
    assert render_chunk("b@x.com,2", layout, [["z"]]) == "b@x.com,2,z"  # no terminator added
    check_chunked(src, layout, ["s"], [["y"], ["z"]])


def test_txt_chunks_header_blank_lines_and_no_final_newline(tmp_path: Path) -> None:
    src = write(tmp_path, b'\n \r\nEmails\n\na@x.com\n  \x0c \r\n "b"@x.com \rc@x.com', "l.txt")
    layout = detect_layout(src)
    assert layout.kind == "txt" and layout.has_header and layout.skip_records == 3
    header = header_text(src, layout)
    assert header == "\n \r\nEmails\n\n"
    assert render_header(header, layout, ["s", "t"]) == "Emails,s,t\r\n"
    chunks = list(iter_text_chunks(src, layout, 2))
    assert chunks == [('a@x.com\n  \x0c \r\n "b"@x.com \r', 2), ("c@x.com", 1)]
    assert chunk_emails(chunks[0][0], layout) == ["a@x.com", '"b"@x.com']
    cells: list[list[str | None]] = [["ok", "a,b"], ["x", None]]  # None is written as ""
    assert render_chunk(chunks[0][0], layout, cells) == (  # type: ignore[arg-type]
        'a@x.com,ok,"a,b"\r\n"""b""@x.com",x,\r\n'
    )
    check_chunked(src, layout, ["s", "t"], [["ok", "a,b"], ["x", None], ["y", "z"]])


def test_txt_without_header_renders_an_email_header(tmp_path: Path) -> None:
    src = write(tmp_path, b"\r\n a@x.com\r\n\r\nb@x.com\r\n", "l.txt")
    layout = detect_layout(src)
    assert not layout.has_header
    assert header_text(src, layout) == "\r\n"
    assert render_header("\r\n", layout, ["s"]) == render_header("", layout, ["s"]) == "email,s\r\n"
    check_chunked(src, layout, ["s"], [["1"], ["2"]])


def test_quoted_records_across_chunk_boundaries(tmp_path: Path) -> None:
    records = [
        'id,email,"note\r\nwith break"\r\n',
        '1,a@x.com,"one\n\ntwo, ""three""\r\n\r\n"\r\n',  # blank lines inside a quoted field
        '2,"b@x.com" ,x"y\n',  # text after the closing quote, a quote in an unquoted field
        "\n",
        '3,c@x.com,"open\r\nclosed"tail\r',  # lone \r line ends
        "4,d@x.com,'single'\r",
        '5,e@x.com,"a,b"\r\n',
        '6,"f@x.com\n",""\n',
        '"7",g@x.com,"x""',  # quote still open at the end of the file: one last record
        ',\n"h@x.com"\n',
    ]
    src = write(tmp_path, "".join(records).encode())
    layout = FileLayout(kind="csv", header=["id", "email", "note"], email_index=1)
    assert header_text(src, layout) == records[0]
    assert [text for text, _ in iter_text_chunks(src, layout, 1)] == [
        records[1],
        records[2] + records[3],
        *records[4:8],
        records[8] + records[9],
    ]
    assert list(iter_emails(src, layout)) == [
        "a@x.com",
        "b@x.com",
        "c@x.com",
        "d@x.com",
        "e@x.com",
        "f@x.com",
        "g@x.com",
    ]
    rows = [[f"r{i}", "a\nb" if i % 2 else ""] for i in range(7)]
    check_chunked(src, layout, ["s", "t"], rows)


def test_record_boundaries_follow_csv_reader_exactly(tmp_path: Path) -> None:
    """With one row per chunk, the header text and the chunks are exactly csv.reader's
    records: the blank ones before the first row, then one row and the blank ones after it."""
    rnd = random.Random(20240501)
    atoms = ["a", " ", ",", '"', '""', "\n", "\r\n", "\r", "x@y", ";", "\x00"]
    for case in range(300):
        text = "".join(rnd.choice(atoms) for _ in range(rnd.randint(1, 80)))
        src = write(tmp_path, text.encode(), f"r{case}.csv")
        layout = FileLayout(
            kind="csv", has_header=False, skip_records=0, email_index=rnd.randint(0, 2)
        )
        lines = io.StringIO(text, newline="").readlines()
        reader = csv.reader(iter(lines))
        expected, done = [("", 0)], 0
        for row in reader:
            raw = "".join(lines[done : reader.line_num])
            done = reader.line_num
            if row:
                expected.append((raw, 1))
            else:
                expected[-1] = (expected[-1][0] + raw, expected[-1][1])
        got = [(header_text(src, layout), 0), *iter_text_chunks(src, layout, 1)]
        assert got == expected, text


def nasty_csv(rnd: random.Random, sep: str, quote: str) -> str:
    def cell() -> str:
        r = rnd.random()
        if r < 0.45:
            return rnd.choice(["", "a", "b@x.org", " c@x.net ", "Zoë", "  ", "€"])
        if r < 0.8:
            inner = rnd.choice(
                [
                    "",
                    "a" + sep + "b",
                    "say " + quote * 2 + "hi" + quote * 2,
                    "l1\nl2",
                    "l1\r\nl2",
                    "l1\rl2",
                    "\n\n",
                    quote * 2,
                    "x\r\n\r\ny",
                ]
            )
            return quote + inner + quote + rnd.choice(["", "", " tail", quote * 2, "x" + quote])
        return rnd.choice(["o" + quote + "brien", quote + "open", "a" + quote, quote])

    out = []
    for _ in range(rnd.randint(0, 12)):
        r = rnd.random()
        if r < 0.1:
            line = ""
        elif r < 0.15:
            line = rnd.choice([" ", "\t", "  "])
        else:
            line = sep.join(cell() for _ in range(rnd.randint(1, 5)))
        out.append(line + rnd.choice(["\n", "\r\n", "\r\n", "\r"]))
    if out and rnd.random() < 0.3:
        out[-1] = out[-1].rstrip("\r\n") or "z"  # no terminator at the end
    return "".join(out)


def random_cells(rnd: random.Random, n: int, sep: str, quote: str) -> list[list[Any]]:
    choices = [
        "ok",
        "",
        "a" + sep + "b",
        "c,d",
        quote + "q" + quote,
        '"',
        "e f",
        "l\nm",
        "c\rr",
        "é",
        "€",
        "田",
        None,
        7,
        2.0,
        True,
    ]
    return [[rnd.choice(choices) for _ in range(rnd.choice([0, 1, 2, 3, 3]))] for _ in range(n)]


def test_randomized_nasty_csv_and_txt(tmp_path: Path) -> None:
    rnd = random.Random(7)
    checked = 0
    for case in range(400):
        sep = rnd.choice([",", ";", "\t", "|"])
        quote = rnd.choice(['"', '"', "'"])
        kind = "txt" if rnd.random() < 0.2 else "csv"
        text = nasty_csv(rnd, sep, quote)
        codec, bom = rnd.choice(
            [
                ("utf-8", b""),
                ("utf-8", codecs.BOM_UTF8),
                ("utf-16-le", codecs.BOM_UTF16_LE),
                ("utf-16-be", codecs.BOM_UTF16_BE),
                ("cp1252", b""),
            ]
        )
        data = text.encode(codec, "replace")
        src = write(tmp_path, bom + data, f"c{case}.{kind}")
        skip = rnd.choice([0, 0, 1, 2])
        layout = FileLayout(
            kind=kind,  # type: ignore[arg-type]
            encoding=codec,
            bom=bool(bom),
            delimiter=sep,
            quotechar=quote,
            has_header=skip > 0,
            email_index=rnd.randint(0, 2) if kind == "csv" else 0,
            skip_records=skip,
        )
        if rnd.random() < 0.3:  # or as detected, when it is a list detect_layout takes
            with contextlib.suppress(InputError):
                layout = detect_layout(src)
        n = count_rows(src, layout)
        extra_header = rnd.choice([[], ["s"], ["s" + sep + "t", quote]])
        check_chunked(
            src, layout, extra_header, random_cells(rnd, n, layout.delimiter, layout.quotechar)
        )
        checked += 1
    assert checked == 400


def test_bigger_file_across_read_buffers(tmp_path: Path) -> None:
    rnd = random.Random(3)
    text = "id;email;note\r\n" + "".join(nasty_csv(rnd, ";", '"') for _ in range(1500))
    src = write(tmp_path, codecs.BOM_UTF8 + text.encode())
    layout = FileLayout(
        kind="csv", bom=True, delimiter=";", header=["id", "email", "note"], email_index=1
    )
    n = count_rows(src, layout)
    assert n > 5000
    cells = [[f"v{i}", "x;y" if i % 3 else "z"] for i in range(n)]
    check_chunked(src, layout, ["s", "t"], cells, (7, 1000, 4096, 10**6))


def test_malformed_csv_in_chunks_is_the_count_rows_error(tmp_path: Path) -> None:
    broken = b'b@example.com,"' + b"y" * 200_000 + b"\n"
    src = write(
        tmp_path, b"email,note\n" + b"a@example.com,x\n" * 30 + broken + b"c@example.com,z\n"
    )
    layout = detect_layout(src)
    with pytest.raises(InputError) as counting:
        count_rows(src, layout)
    assert str(counting.value) == (
        "the cell starting at line 32 is longer than 131,072 characters, the limit"
        " (MAILVET_MAX_CELL_BYTES); does a quote open there and never close?"
    )
    for size in (1, 7, 1000):
        with pytest.raises(InputError) as chunking:
            list(iter_text_chunks(src, layout, size))
        assert str(chunking.value) == str(counting.value)
    assert header_text(src, layout) == "email,note\n"
    # a field over the limit on one line, without quotes
    long_line = b"d@example.com," + b"z" * 140_000 + b"\n"
    src.write_bytes(b"email,note\n" + b"a@example.com,x\n" * 3 + long_line)
    message = (
        "the cell starting at line 5 is longer than 131,072 characters, the limit"
        " (MAILVET_MAX_CELL_BYTES)"
    )
    with pytest.raises(InputError) as counting:
        count_rows(src, layout)
    assert str(counting.value) == message
    with pytest.raises(InputError) as chunking:
        list(iter_text_chunks(src, layout, 2))
    assert str(chunking.value) == message


@pytest.mark.parametrize(
    "big",
    [
        '"' + "x" * 30 + "\r\n" + "y" * 30 + '"',  # lines over the limit, the field too
        '"' + ("w" * 15 + "\r\n") * 4 + '"',  # short lines, but the field is over the limit
        "z" * 60,  # one line, no quotes
        "a" * 20 + '"' + "b" * 30,  # one line, a quote in an unquoted field
    ],
)
@pytest.mark.parametrize("ok_width", [1, 39])
def test_cell_over_max_cell_named_by_the_line_it_starts_on(
    tmp_path: Path, big: str, ok_width: int
) -> None:
    ok = "".join(f"{i},u{i}@x.com,{'q' * ok_width}\r\n" for i in range(50))
    src = write(tmp_path, f"id,email,n\r\n{ok}99,z@x.com,{big}\r\n{ok}".encode())
    layout = FileLayout(kind="csv", header=["id", "email", "n"], email_index=1, max_cell=40)
    with pytest.raises(InputError) as counting:
        count_rows(src, layout)
    hint = "; does a quote open there and never close?" if big.startswith('"') else ""
    assert str(counting.value) == (
        "the cell starting at line 52 is longer than 40 characters, the limit"
        f" (MAILVET_MAX_CELL_BYTES){hint}"
    )
    for size in (1, 3, 1000):
        with pytest.raises(InputError) as chunking:
            list(iter_text_chunks(src, layout, size))
        assert str(chunking.value) == str(counting.value)
    with pytest.raises(InputError) as writing:
        write_result(src, layout, tmp_path / "out.csv", ["s"], [["x"]] * 101)
    assert str(writing.value) == str(counting.value)
    assert not (tmp_path / "out.csv").exists()
    # at the limit: fine
    src.write_bytes(f'id,email,n\r\n{ok}99,z@x.com,"{"w" * 20}\r\n{"w" * 18}"\r\n{ok}'.encode())
    check_chunked(src, layout, ["s"], [["x"]] * 101, (1, 3, 1000))


def test_undecodable_file_in_chunks(tmp_path: Path) -> None:
    src = write(tmp_path, b"email\na@x.com\nb\xff@x.com\n")
    layout = FileLayout(kind="csv", header=["email"])
    with pytest.raises(InputError, match="not valid utf-8"):
        list(iter_text_chunks(src, layout, 1))


def test_chunk_functions_reject_xlsx_and_bad_arguments(tmp_path: Path) -> None:
    xlsx = FileLayout(kind="xlsx", sheet="Sheet1")
    src = write(tmp_path, b"email\na@x.com\nb@x.com\n")
    for call in (
        lambda: header_text(src, xlsx),
        lambda: iter_text_chunks(src, xlsx, 10),
        lambda: chunk_emails("a@x.com\n", xlsx),
        lambda: render_header("email\n", xlsx, ["s"]),
        lambda: render_chunk("a@x.com\n", xlsx, [["s"]]),
        lambda: output_encoding(xlsx),
    ):
        with pytest.raises(ValueError, match="xlsx"):
            call()
    layout = detect_layout(src)
    with pytest.raises(ValueError, match="rows_per_chunk"):
        iter_text_chunks(src, layout, 0)
    with pytest.raises(ValueError, match="2 data rows but 1"):
        render_chunk("a@x.com\n\nb@x.com\n", layout, [["s"]])
    with pytest.raises(ValueError, match="2 data rows but 3"):
        render_chunk('a@x.com\n"b@\nx.com"\n', layout, [["s"]] * 3)
    txt = FileLayout(kind="txt", has_header=False, skip_records=0)
    with pytest.raises(ValueError, match="1 data rows but 0"):
        render_chunk(" \na@x.com\n\n", txt, [])
    with pytest.raises(ValueError, match="header text"):
        render_header("email\na@x.com\n", layout, ["s"])


def test_text_chunks_are_lazy_and_close_their_file(tmp_path: Path) -> None:
    src = write(tmp_path, b"email\n" + b"".join(b"u%d@x.com\n" % i for i in range(100)))
    layout = detect_layout(src)
    chunks = iter_text_chunks(src, layout, 10)
    assert next(chunks) == ("".join(f"u{i}@x.com\n" for i in range(10)), 10)
    assert isinstance(chunks, Generator)
    chunks.close()  # ResourceWarning would fail the run (filterwarnings=error)
    del chunks
    assert [rows for _, rows in iter_text_chunks(src, layout, 30)] == [30, 30, 30, 10]
