"""Hostile input files: peak RSS and time of `mailvet validate --checks syntax` on each.

    .venv/bin/python bench/hostile_files.py [--only NAME] [--scale 0.1] [--keep DIR]

Each file is built at full size in a temporary folder (or DIR), then validated by a child
process; its peak RSS (wait4's ru_maxrss) and wall time are printed with its exit code and
its `mailvet: error:` line.  Issue 7 §4 asks for <= 1 GB and time proportional to
the input; a file crossing a limit must be refused with one clear line (exit 2).

XLSX cases (helper G):

* xlsx_one_huge_string: one shared string of 1 GiB ("a" repeated), a few MB of zip.
* xlsx_30m_strings: 30 million shared strings (<si><t>a</t></si>) in about 2 MB of zip.
* xlsx_entity_bomb: a shared-strings part declaring nested entities ("billion laughs").
* xlsx_inflates_past_limit: a sheet of a million rows inflating to about 1.5 GiB.
* xlsx_lying_header: the same sheet, its zip header claiming 1 KiB.

CSV/TXT cases (helper H):

* csv_no_newline_cell, csv_no_newline_cells, txt_no_newline: 200 MB without a line break
  (one huge cell; short cells on one huge line; TXT).
* csv_unclosed_quote: a quote never closed, then 200 MB of short lines.
* csv_late_bad_byte: 200 MB of UTF-8 rows and one cp1252 byte on the last line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
PIECE = 1 << 20


def _base_parts(shared: bool) -> dict[str, bytes]:
    rels = f'<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="{REL}/worksheet"/>'
    if shared:
        rels += f'<Relationship Id="rId2" Target="sharedStrings.xml" Type="{REL}/sharedStrings"/>'
    return {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.'
        b'openxmlformats.org/package/2006/content-types"/>',
        "_rels/.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{PKG}"><Relationship Id="rId1"'
            f' Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ).encode(),
        "xl/workbook.xml": (
            f'<?xml version="1.0"?><workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>'
            f'<sheet name="List" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ).encode(),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0"?><Relationships xmlns="{PKG}">{rels}</Relationships>'
        ).encode(),
    }


def _sheet(rows: int) -> bytes:
    body = '<row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>'
    body += "".join(
        f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>user{i}@example.com</t></is></c>'
        f'<c r="B{i}" t="s"><v>0</v></c></row>'
        for i in range(2, rows + 2)
    )
    return (
        f'<?xml version="1.0"?><worksheet xmlns="{MAIN}"><sheetData>{body}</sheetData></worksheet>'
    ).encode()


def _write_streamed(zf: zipfile.ZipFile, name: str, pieces: Callable[[], object]) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as sink:
        for piece in pieces():  # type: ignore[attr-defined]
            sink.write(piece)


def xlsx_one_huge_string(path: Path, scale: float) -> None:
    size = int((1 << 30) * scale)

    def pieces() -> object:
        yield f'<?xml version="1.0"?><sst xmlns="{MAIN}"><si><t>'.encode()
        block = b"a" * PIECE
        for _ in range(size // PIECE):
            yield block
        yield b"</t></si></sst>"

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in _base_parts(True).items():
            zf.writestr(name, data)
        zf.writestr("xl/worksheets/sheet1.xml", _sheet(3))
        _write_streamed(zf, "xl/sharedStrings.xml", pieces)


def xlsx_30m_strings(path: Path, scale: float) -> None:
    count = int(30_000_000 * scale)

    def pieces() -> object:
        yield f'<?xml version="1.0"?><sst xmlns="{MAIN}">'.encode()
        block = b"<si><t>a</t></si>" * 65536
        for _ in range(count // 65536):
            yield block
        yield b"<si><t>a</t></si>" * (count % 65536)
        yield b"</sst>"

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in _base_parts(True).items():
            zf.writestr(name, data)
        zf.writestr("xl/worksheets/sheet1.xml", _sheet(3))
        _write_streamed(zf, "xl/sharedStrings.xml", pieces)


def xlsx_entity_bomb(path: Path, scale: float) -> None:
    """Ten levels of ten entities each: 10**9 "lol"s if expanded."""
    levels = ['<!ENTITY a0 "lol">']
    levels += [f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    sst = (
        f'<?xml version="1.0"?><!DOCTYPE sst [{"".join(levels)}]>'
        f'<sst xmlns="{MAIN}"><si><t>&a9;</t></si></sst>'
    ).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in _base_parts(True).items():
            zf.writestr(name, data)
        zf.writestr("xl/worksheets/sheet1.xml", _sheet(3))
        zf.writestr("xl/sharedStrings.xml", sst)


def xlsx_inflates_past_limit(path: Path, scale: float) -> None:
    """A sheet of 1,000,000 rows inflating to about 1.5 GiB (an address and a 1,400-character
    note a row), about 5 MB of zip, with honest zip headers: past
    MAILVET_MAX_XLSX_EXPANDED_BYTES."""
    _big_sheet(path, scale)


def xlsx_lying_header(path: Path, scale: float) -> None:
    """The same sheet, its size in the zip's central directory cut to 1,024 bytes."""
    _big_sheet(path, scale)
    _lie_about_size(path, "xl/worksheets/sheet1.xml", 1024)


def _big_sheet(path: Path, scale: float) -> None:
    rows = int(1_000_000 * scale)
    note = "x" * 1400

    def pieces() -> object:
        yield f'<?xml version="1.0"?><worksheet xmlns="{MAIN}"><sheetData>'.encode()
        yield b'<row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>'
        batch = 1000
        for start in range(2, rows + 2, batch):
            yield "".join(
                f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>u{i}@example.com</t></is></c>'
                f'<c r="B{i}" t="inlineStr"><is><t>{note}</t></is></c></row>'
                for i in range(start, min(start + batch, rows + 2))
            ).encode()
        yield b"</sheetData></worksheet>"

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in _base_parts(False).items():
            zf.writestr(name, data)
        _write_streamed(zf, "xl/worksheets/sheet1.xml", pieces)


def _lie_about_size(path: Path, member: str, claimed: int) -> None:
    """Overwrite the uncompressed size of `member` in the central directory (what readers
    go by) with `claimed`."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) != -1:
        length = int.from_bytes(data[at + 28 : at + 30], "little")
        if bytes(data[at + 46 : at + 46 + length]) == name:
            data[at + 24 : at + 28] = claimed.to_bytes(4, "little")
        at += 46
    path.write_bytes(bytes(data))


def _write_pieces(path: Path, head: bytes, piece: bytes, size: int, tail: bytes = b"") -> None:
    """head, then `piece` repeated up to about `size` bytes in all, then tail (1 MiB writes)."""
    block = piece * max(1, PIECE // len(piece))
    with open(path, "wb") as fh:
        fh.write(head)
        written = len(head)
        while written < size:
            part = block[: size - written] if size - written < len(block) else block
            fh.write(part)
            written += len(part)
        fh.write(tail)


def csv_no_newline_cell(path: Path, scale: float) -> None:
    """200 MB without a line break: one cell after the header's first."""
    _write_pieces(path, b"email,", b"x", int(200_000_000 * scale))


def csv_no_newline_cells(path: Path, scale: float) -> None:
    """200 MB without a line break, in short cells (a line, not a cell, over the limit)."""
    _write_pieces(path, b"email,", b"a@example.com,", int(200_000_000 * scale))


def txt_no_newline(path: Path, scale: float) -> None:
    """200 MB TXT without a line break."""
    _write_pieces(path, b"", b"x", int(200_000_000 * scale))


def csv_unclosed_quote(path: Path, scale: float) -> None:
    """A quote opened on line 3 and never closed, then 200 MB of short lines."""
    head = b'email,note\na@example.com,x\nb@example.com,"'
    _write_pieces(path, head, b"c@example.com,y\n", int(200_000_000 * scale))


def csv_late_bad_byte(path: Path, scale: float) -> None:
    """200 MB of UTF-8 rows (non-ASCII on line 2), one cp1252 byte on the last line."""
    head = "email,name\nzoë@exämple.com,Zoë\n".encode()
    tail = b"last@example.com,Ren\xe9\n"
    _write_pieces(path, head, b"a@example.com,x\n", int(200_000_000 * scale), tail)


CASES: dict[str, tuple[str, Callable[[Path, float], None]]] = {
    "csv_no_newline_cell": ("list.csv", csv_no_newline_cell),
    "csv_no_newline_cells": ("list.csv", csv_no_newline_cells),
    "txt_no_newline": ("list.txt", txt_no_newline),
    "csv_unclosed_quote": ("list.csv", csv_unclosed_quote),
    "csv_late_bad_byte": ("list.csv", csv_late_bad_byte),
    "xlsx_one_huge_string": ("list.xlsx", xlsx_one_huge_string),
    "xlsx_30m_strings": ("list.xlsx", xlsx_30m_strings),
    "xlsx_entity_bomb": ("list.xlsx", xlsx_entity_bomb),
    "xlsx_inflates_past_limit": ("list.xlsx", xlsx_inflates_past_limit),
    "xlsx_lying_header": ("list.xlsx", xlsx_lying_header),
}


def measure(path: Path, folder: Path) -> tuple[int, float, float, int, str]:
    """(exit code, wall seconds, CPU seconds, peak RSS in bytes, the error line) of validate
    (CPU: user + system time of that process, as wait4 reports it)."""
    env = dict(os.environ, MAILVET_DATA_DIR=str(folder / "data"), MAILVET_LOG_LEVEL="error")
    out = folder / "result.out"
    cmd = [sys.executable, "-m", "mailvet", "validate", str(path), "-o", str(out)]
    cmd += ["--checks", "syntax"]
    err_path = folder / "stderr.txt"
    started = time.perf_counter()
    with open(err_path, "wb") as err:
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    lines = err_path.read_text(errors="replace").replace("\r", "\n").splitlines()
    said = [line for line in lines if line.startswith("mailvet:")] or lines[-1:]
    cpu = usage.ru_utime + usage.ru_stime
    return code, seconds, cpu, usage.ru_maxrss * 1024, (said[0] if said else "")[:200]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(CASES))
    parser.add_argument("--scale", type=float, default=1.0, help="size factor (1 = full size)")
    parser.add_argument("--keep", type=Path, help="build the files in this folder, keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailvet-hostile-") as temp:
        folder = args.keep or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in args.only or list(CASES):
            filename, build = CASES[name]
            path = folder / f"{name}-{filename}"
            started = time.perf_counter()
            build(path, args.scale)
            built = time.perf_counter() - started
            code, seconds, cpu, rss, line = measure(path, folder)
            print(
                f"{name}: {path.stat().st_size / 1e6:.1f} MB file (built in {built:.0f} s):"
                f" exit {code}, {seconds:.1f} s ({cpu:.1f} CPU-s), peak RSS {rss / 2**20:.0f} MiB;"
                f" {line}",
                flush=True,
            )


if __name__ == "__main__":
    main()
