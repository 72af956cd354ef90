"""Text encodings: byte-order marks, the choice of a codec for a whole file, opening a
file as text, and the codec and BOM of a CSV/TXT result."""

from __future__ import annotations

import codecs
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mailvet.tabular.layout import FileLayout, InputError, need_text

SCAN_BLOCK = 1024 * 1024  # encoding check of the whole file


BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


OUTPUT_ERRORS = "replace"  # error handler of the output codec: unencodable characters -> "?"


def bom_length(layout: FileLayout) -> int:
    """Length in bytes of the input's BOM."""
    if not layout.bom:
        return 0
    utf8 = layout.encoding.replace("_", "-").lower() in ("utf-8", "utf8")
    return len(codecs.BOM_UTF8) if utf8 else 2


@contextmanager
def open_text(path: Path, layout: FileLayout, newline: str | None = "") -> Iterator[IO[str]]:
    raw = open(path, "rb")  # noqa: SIM115 - closed by the wrapper
    try:
        raw.seek(bom_length(layout))
        text = io.TextIOWrapper(raw, encoding=layout.encoding, errors="strict", newline=newline)
    except BaseException:
        raw.close()
        raise
    with text:
        yield text


def _scan(path: Path, offset: int, encoding: str) -> tuple[bool, bool]:
    """(whole file decodes, holds a non-white-space character), 1 MiB at a time."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    nonblank = False
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            while block := fh.read(SCAN_BLOCK):
                text = decoder.decode(block)
                if not nonblank and text and not text.isspace():
                    nonblank = True
            text = decoder.decode(b"", final=True)
            if not nonblank and text and not text.isspace():
                nonblank = True
    except UnicodeDecodeError:
        return False, nonblank
    return True, nonblank


def choose_encoding(path: Path, name: str, bom_encoding: str, bom_len: int) -> tuple[str, bool]:
    if bom_encoding:
        ok, nonblank = _scan(path, bom_len, bom_encoding)
        if not ok:
            raise InputError(
                f"{name} starts with a {bom_encoding.upper()} byte-order mark"
                f" but is not valid {bom_encoding.upper()} text"
            )
        return bom_encoding, nonblank
    for encoding in ("utf-8", "cp1252", "latin-1"):
        ok, nonblank = _scan(path, 0, encoding)
        if ok:
            return encoding, nonblank
    raise AssertionError("latin-1 decodes any byte string")  # pragma: no cover


def output_encoding(layout: FileLayout) -> tuple[str, bytes]:
    """(codec, BOM): the output file is BOM + the rendered header and chunks, each encoded
    with ``.encode(codec, OUTPUT_ERRORS)`` ("replace": unencodable characters of extra
    cells become "?", as in write_result).  The codec writes no BOM of its own, so the
    pieces can be encoded apart and concatenated.  CSV: the input's encoding, BOM if
    the input had one; TXT: UTF-8, no BOM."""
    need_text(layout)
    if layout.kind == "txt":
        return "utf-8", b""
    codec = layout.encoding
    name = codecs.lookup(codec).name
    bom = b""
    if name in ("utf-16", "utf-32"):  # these codecs put a BOM before their output
        codec = f"{name}-{'le' if sys.byteorder == 'little' else 'be'}"
        bom = "\ufeff".encode(codec)
    elif name == "utf-8-sig":
        codec, bom = "utf-8", codecs.BOM_UTF8
    if layout.bom:
        bom += "\ufeff".encode(codec)
    return codec, bom
