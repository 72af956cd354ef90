"""Cells we write are formula-safe (issue 7 §3, OWASP CSV injection): an appended cell, or a
TXT row's address, that starts with =, +, -, @, TAB or CR gets a single quote before it and
is quoted; the customer's own CSV records stay byte for byte."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest

from mailvet.domain.messages import RowChunk
from mailvet.domain.offline import syntax_verdicts
from mailvet.domain.verdict import RESULT_COLUMNS, Check
from mailvet.pipeline.chunk_output import encode_file_layout, render, syntax_chunk
from mailvet.tabular import FileLayout, detect_layout, render_chunk, write_result
from mailvet.tabular.render import FORMULA_STARTS, formula_safe, formula_start_in

pytestmark = pytest.mark.unit

HOSTILE = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A9)", "\tx", "\rx", "=1,2", '=a"b']


def _read(text: str, layout: FileLayout) -> list[list[str]]:
    return list(
        csv.reader(
            io.StringIO(text, newline=""), delimiter=layout.delimiter, quotechar=layout.quotechar
        )
    )


@pytest.mark.parametrize(("sep", "quote"), [(",", '"'), (";", '"'), ("\t", '"'), (",", "'")])
def test_appended_cells_that_start_like_formulas_are_text(sep: str, quote: str) -> None:
    layout = FileLayout(kind="csv", delimiter=sep, quotechar=quote, header=["email", "x"])
    records = [f"=A1{sep}a@example.com\n", f"b@example.com{sep}-5\n", f"c@example.com{sep}y\n"]
    text = "".join(records)
    cells = [(HOSTILE[i % len(HOSTILE)], "ok", HOSTILE[(i + 3) % len(HOSTILE)]) for i in range(3)]
    out = render_chunk(text, layout, cells)
    rows = _read(out, layout)
    for row, (first, _, third) in zip(rows, cells, strict=True):
        assert row[-3:] == [formula_safe(first), "ok", formula_safe(third)]
    for record, line in zip(records, out.splitlines(keepends=True), strict=False):
        assert line.startswith(record[:-1] + sep)  # the customer's record as it was
    for row in rows:
        for cell in row[2:]:
            assert not cell.startswith(FORMULA_STARTS)


def test_every_formula_start_is_caught_on_the_fast_and_the_slow_path() -> None:
    layout = FileLayout(kind="csv", header=["email"], email_index=0)
    for start in FORMULA_STARTS:
        cell = f"{start}x"
        for other in ("plain", 'needs "quotes"'):  # fast path / slow path of the tails
            out = render_chunk(
                "a@example.com\nb@example.com\n", layout, [(other, cell), (cell, other)]
            )
            rows = _read(out, layout)
            assert rows[0][1:] == [other, "'" + cell] and rows[1][1:] == ["'" + cell, other]
            assert f',"\'{start}x"' in out or f'"\'{start}x",' in out  # quoted, quote first


def test_plain_cells_are_written_as_before() -> None:
    layout = FileLayout(kind="csv", header=["email"], email_index=0)
    out = render_chunk(
        "a@example.com\n", layout, [("valid", "x-y@example.com", "mx.example.com", "")]
    )
    assert out == "a@example.com,valid,x-y@example.com,mx.example.com,\n"


def test_a_txt_address_that_starts_like_a_formula_is_text() -> None:
    layout = FileLayout(kind="txt", has_header=False, header=[], skip_records=0)
    text = "=1+1@example.com\n@x\nplain@example.com\n-y@example.com\n"
    out = render_chunk(text, layout, [("a",), ("b",), ("c",), ("d",)])
    assert _read(out, FileLayout(kind="csv")) == [
        ["'=1+1@example.com", "a"],
        ["'@x", "b"],
        ["plain@example.com", "c"],
        ["'-y@example.com", "d"],
    ]


def test_formula_start_in_never_says_no_wrongly() -> None:
    rnd = random.Random(7)
    alphabet = "ab=+-@\t,;\n"
    for _ in range(5_000):
        cells = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 4))) for _ in range(3)]
        if any(c.startswith(FORMULA_STARTS) for c in cells):
            assert formula_start_in(",".join(cells), ",")


def _chunk(text: str, layout: FileLayout, rows: int) -> RowChunk:
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


@pytest.mark.parametrize("kind", ["csv", "txt"])
def test_syntax_chunks_of_formula_addresses_equal_the_verdicts_path(kind: str) -> None:
    """The per-domain tails of the pool's syntax path are formula-safe too (they fall back to
    the cells path): the same text as rendering the verdicts one by one."""
    addresses = ["=1+1@example.com", "-x@example.com", "+y@gmail.com", "ok@example.com", "@bad"]
    if kind == "csv":
        layout = FileLayout(kind="csv", header=["id", "email"], email_index=1)
        text = "".join(f"{i},{a}\n" for i, a in enumerate(addresses))
    else:
        layout = FileLayout(kind="txt", has_header=False, header=[], skip_records=0)
        text = "".join(f"{a}\n" for a in addresses)
    chunk = _chunk(text, layout, len(addresses))
    fast = syntax_chunk(chunk)
    assert fast.data == render(chunk, syntax_verdicts(addresses)).data
    rows = _read(fast.data.decode(), FileLayout(kind="csv"))
    for row in rows:
        for cell in row[-len(RESULT_COLUMNS) :]:
            assert not cell.startswith(FORMULA_STARTS), row
    assert "'=1+1@example.com" in rows[0]


def test_xlsx_results_hold_formula_like_cells_as_text(tmp_path: Path) -> None:
    """Appended cells of an XLSX result are strings, never formulas (values as they are)."""
    from openpyxl import Workbook, load_workbook

    source = tmp_path / "in.xlsx"
    book = Workbook()
    sheet = book.active
    sheet.append(["email", "note"])
    sheet.append(["a@example.com", "=1+2"])  # the customer's formula stays a formula
    sheet.append(["=b@example.com", "x"])
    book.save(source)
    layout = detect_layout(source, filename="in.xlsx")
    out = tmp_path / "out.xlsx"
    extra = [("=cmd|' /C calc'!A0", "+1", "@x"), ("-1", "=SUM(A1)", "plain")]
    names = ("mailvet_a", "mailvet_b", "mailvet_c")
    write_result(source, layout, out, names, extra, out_kind="xlsx")
    result = load_workbook(out).active
    rows = list(result.iter_rows(min_row=2))
    assert rows[0][1].data_type == "f"  # the customer's own formula
    for row, cells in zip(rows, extra, strict=True):
        appended = row[-3:]
        assert [c.value for c in appended] == list(cells)
        assert all(c.data_type == "s" for c in appended), [c.data_type for c in appended]


def test_an_xlsx_list_written_as_csv_gets_formula_safe_cells(tmp_path: Path) -> None:
    """XLSX in, CSV out (-o result.csv): the appended cells get the quote; the workbook's own
    cells are written as the spreadsheet shows them."""
    from openpyxl import Workbook

    source = tmp_path / "in.xlsx"
    book = Workbook()
    book.active.append(["email", "note"])
    book.active.append(["a@example.com", "-5"])
    book.save(source)
    layout = detect_layout(source, filename="in.xlsx")
    out = tmp_path / "out.csv"
    write_result(
        source, layout, out, ("mailvet_mx", "mailvet_b"), [("=cmd|x", "ok")], out_kind="csv"
    )
    rows = list(csv.reader(io.StringIO(out.read_text(), newline="")))
    assert rows == [
        ["email", "note", "mailvet_mx", "mailvet_b"],
        ["a@example.com", "-5", "'=cmd|x", "ok"],
    ]
