"""Text encodings: byte-order marks, the choice of a codec for a whole file, opening a
file as text, and the codec and BOM of a CSV/TXT result."""

from __future__ import annotations

import codecs
import io
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailvet.tabular.layout import FileLayout, InputError, need_text
from mailvet.tabular.limits import bounded_lines, checked_lines, line_cap

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
def open_text(path: Path, layout: FileLayout, newline: str | None = "") -> Iterator[Iterator[str]]:
    """The lines of a list's text (after its BOM), read line_cap + 1 characters at most at a
    time: never a whole line, whatever its size.  CSV: the lines as readline gives them
    (the record cutter refuses a piece that long); TXT: checked_lines, which refuses it."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the wrapper
    try:
        raw.seek(bom_length(layout))
        text = io.TextIOWrapper(raw, encoding=layout.encoding, errors="strict", newline=newline)
    except BaseException:
        raw.close()
        raise
    with text:
        if layout.kind == "txt":
            yield checked_lines(text, layout)
        else:
            yield bounded_lines(text, line_cap(layout))


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


# after a surrogateescape decode: a byte that is not UTF-8, a character UTF-8 writes in
# several bytes
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_MULTIBYTE = re.compile("[^\x00-\x7f\udc80-\udcff]")


class _Utf8Scan:
    """A file that is not valid UTF-8 read as UTF-8, 1 MiB at a time: where is the first
    byte that fails to decode, and the first multi-byte character that decodes."""

    def __init__(self) -> None:
        self.not_utf8: tuple[int, int, int] | None = None  # (LFs, CRs before it, the byte)
        self.multibyte: tuple[int, int] | None = None  # (LFs, CRs before it)
        self.lf = self.cr = 0

    def feed(self, text: str) -> None:
        if not text.isascii():
            if self.multibyte is None and (found := _MULTIBYTE.search(text)):
                self.multibyte = self._where(text, found.start())
            if self.not_utf8 is None and (bad := _NOT_UTF8.search(text)):
                byte = ord(bad.group()) - 0xDC00
                self.not_utf8 = (*self._where(text, bad.start()), byte)
        self.lf += text.count("\n")
        self.cr += text.count("\r")

    def _where(self, text: str, pos: int) -> tuple[int, int]:
        return self.lf + text.count("\n", 0, pos), self.cr + text.count("\r", 0, pos)

    def line(self, where: tuple[int, ...]) -> int:
        """Line number of a position (lines end at LF, or at CR in a file without LF)."""
        return 1 + (where[0] if self.lf else where[1])


def _scan_utf8(path: Path) -> _Utf8Scan:
    scan = _Utf8Scan()
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    with open(path, "rb") as fh:
        while block := fh.read(SCAN_BLOCK):
            scan.feed(decoder.decode(block))
            if scan.multibyte is not None and scan.not_utf8 is not None:
                return scan
        scan.feed(decoder.decode(b"", final=True))
    return scan


def choose_encoding(path: Path, name: str, known_encoding: str, bom_len: int) -> tuple[str, bool]:
    """(codec, whether the text holds a non-white-space character), decided on the whole
    file: the codec of its BOM (or of its NUL-byte pattern, UTF-16 without a BOM), else
    UTF-8 if every byte decodes, else cp1252 or latin-1 if the file holds no UTF-8
    multi-byte character at all.  A file with UTF-8 text and bytes that are not UTF-8 is
    refused (InputError): decoding it in one codec or the other would change the cells of
    one part of it, silently."""
    if known_encoding:
        ok, nonblank = _scan(path, bom_len, known_encoding)
        if not ok:
            how = "starts with a {} byte-order mark" if bom_len else "looks like {} text"
            raise InputError(
                f"{name} {how.format(known_encoding.upper())}"
                f" but is not valid {known_encoding.upper()} text"
            )
        return known_encoding, nonblank
    ok, nonblank = _scan(path, 0, "utf-8")
    if ok:
        return "utf-8", nonblank
    scan = _scan_utf8(path)  # where are the bytes that are not UTF-8, is there UTF-8 text
    if scan.multibyte is not None and scan.not_utf8 is not None:
        raise InputError(
            f"{name} mixes encodings: line {scan.line(scan.multibyte)} holds UTF-8 text"
            f" but line {scan.line(scan.not_utf8)} holds a byte that is not UTF-8"
            f" (0x{scan.not_utf8[2]:02X}); save the file in one encoding (UTF-8) and try again"
        )
    for encoding in ("cp1252", "latin-1"):
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
