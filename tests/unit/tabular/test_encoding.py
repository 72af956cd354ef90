"""Encodings: BOMs, UTF-16, cp1252 and latin-1 inputs, and the codec and BOM of a result."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from mailvet.tabular import FileLayout, InputError, detect_layout, iter_emails, output_encoding
from tests.unit.tabular.support import check_chunked, expected_csv, extras_for, raw_of, run, write

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("codec", "bom", "layout_encoding"),
    [
        ("utf-8", b"\xef\xbb\xbf", "utf-8"),
        ("utf-16-le", b"\xff\xfe", "utf-16-le"),
        ("utf-16-be", b"\xfe\xff", "utf-16-be"),
        ("utf-8", b"", "utf-8"),
    ],
)
def test_bom_and_utf16_round_trip(
    tmp_path: Path, codec: str, bom: bytes, layout_encoding: str
) -> None:
    records = [
        ("header", "Prénom,E-mail", "\r\n"),
        ("data", "Zoë,zoe@exämple.com", "\r\n"),
        ("data", "José,jose@example.es", "\r\n"),
    ]
    data = bom + raw_of(records).encode(codec)
    layout, emails, out = run(tmp_path, data)
    assert layout.encoding == layout_encoding
    assert layout.bom is bool(bom)
    assert layout.header == ["Prénom", "E-mail"]  # no BOM left in the first cell
    assert emails == ["zoe@exämple.com", "jose@example.es"]
    assert out.read_bytes() == bom + expected_csv(records, extras_for(emails)).encode(codec)


def test_cp1252_round_trip_byte_for_byte(tmp_path: Path) -> None:
    data = b"nom;email\r\nRen\xe9;rene@example.fr\r\nL\xe9a;lea@example.fr\r\n"
    layout, emails, out = run(tmp_path, data)
    assert layout.encoding == "cp1252" and not layout.bom
    assert list(iter_emails(tmp_path / "in.csv", layout)) == ["rene@example.fr", "lea@example.fr"]
    assert out.read_bytes() == (
        b"nom;email;status;note\r\nRen\xe9;rene@example.fr;ok;n0\r\nL\xe9a;lea@example.fr;ok;n1\r\n"
    )


def test_latin1_fallback(tmp_path: Path) -> None:
    # 0x81 is undefined in cp1252: only latin-1 decodes this file.
    data = b"email,name\na@example.com,X\x81\xe9\n"
    layout, emails, out = run(tmp_path, data)
    assert layout.encoding == "latin-1"
    assert out.read_bytes() == b"email,name,status,note\na@example.com,X\x81\xe9,ok,n0\n"


def test_utf8_found_past_the_first_block(tmp_path: Path) -> None:
    # ASCII for more than the 64 KiB sample, then one cp1252 byte: the whole file is checked.
    body = "".join(f"u{i}@example.com,x\n" for i in range(5000))
    data = b"email,n\n" + body.encode() + b"last@example.com,Ren\xe9\n"
    layout, emails, out = run(tmp_path, data)
    assert layout.encoding == "cp1252"
    assert out.read_bytes().endswith(b"last@example.com,Ren\xe9,ok,n5000\n")


@pytest.mark.parametrize(
    ("codec", "bom", "expected"),
    [
        ("utf-8", b"", ("utf-8", b"")),
        ("utf-8", codecs.BOM_UTF8, ("utf-8", codecs.BOM_UTF8)),
        ("utf-16-le", codecs.BOM_UTF16_LE, ("utf-16-le", codecs.BOM_UTF16_LE)),
        ("utf-16-be", codecs.BOM_UTF16_BE, ("utf-16-be", codecs.BOM_UTF16_BE)),
        ("cp1252", b"", ("cp1252", b"")),
    ],
)
def test_output_encoding_and_encodings(
    tmp_path: Path, codec: str, bom: bytes, expected: tuple[str, bytes]
) -> None:
    text = 'Nom;E-mail;Ville\r\nRené;rene@exämple.fr;"Saint-\r\nÉtienne"\nLéa;lea@x.fr;Nice\r\n'
    src = write(tmp_path, bom + text.encode(codec))
    layout = detect_layout(src)
    assert (layout.encoding, layout.bom, layout.delimiter) == (codec, bool(bom), ";")
    assert output_encoding(layout) == expected
    # "€" is in cp1252, "田" in none of the 8-bit codecs: "?" in every result
    rows = [["€ ok", "田"], ["x;y", 'say "hi"']]
    data = check_chunked(src, layout, ["état", "note"], rows)
    assert data.startswith(bom) and data[len(bom) :].decode(codec).startswith(
        "Nom;E-mail;Ville;état;note\r\n"
    )
    assert ("?" if codec == "cp1252" else "田") in data[len(bom) :].decode(codec)
    txt = write(tmp_path, bom + "a@x.com\r\nzoë@x.com\r\n".encode(codec), "l.txt")
    txt_layout = detect_layout(txt)
    assert txt_layout.kind == "txt" and output_encoding(txt_layout) == ("utf-8", b"")
    assert check_chunked(txt, txt_layout, ["s"], [["田"], ["ok"]]).decode() == (
        "email,s\r\na@x.com,田\r\nzoë@x.com,ok\r\n"
    )


def test_output_encoding_of_codecs_that_write_a_bom() -> None:
    native = "utf-16-le" if codecs.BOM_UTF16 == codecs.BOM_UTF16_LE else "utf-16-be"
    assert output_encoding(FileLayout(kind="csv", encoding="utf-16")) == (native, codecs.BOM_UTF16)
    assert output_encoding(FileLayout(kind="csv", encoding="utf-8-sig")) == (
        "utf-8",
        codecs.BOM_UTF8,
    )


def test_utf8_text_and_a_cp1252_byte_far_after_it_is_refused(tmp_path: Path) -> None:
    # A UTF-8 address on line 2, a cp1252 byte 5,000 lines later: decoded as cp1252, line 2
    # would become "zoÃ«@exÃ¤mple.com" (another verdict), silently.  Refused, with both lines.
    body = "".join(f"u{i}@example.com,x\n" for i in range(5000))
    data = "email,n\nzoë@exämple.com,y\n".encode() + body.encode() + b"last@example.com,Ren\xe9\n"
    src = write(tmp_path, data, "mixed.csv")
    with pytest.raises(InputError) as info:
        detect_layout(src)
    assert str(info.value) == (
        "mixed.csv mixes encodings: line 2 holds UTF-8 text but line 5003 holds a byte"
        " that is not UTF-8 (0xE9); save the file in one encoding (UTF-8) and try again"
    )


def test_mixed_encodings_named_by_line_in_a_cr_only_file(tmp_path: Path) -> None:
    data = b"email\rb\xe9@x.com\r" + b"a@x.com\r" * 3 + "zoë@x.com\r".encode()
    src = write(tmp_path, data, "mac.csv")
    with pytest.raises(InputError, match="line 6 holds UTF-8 text but line 2 holds a byte"):
        detect_layout(src)


def test_a_utf8_character_cut_by_the_scan_block_is_utf8(tmp_path: Path) -> None:
    # the 1 MiB blocks of the encoding scan cut "é" in two: still one valid UTF-8 file
    head = b"email,n\n"
    body = (b"a@x.com,y\n" * 110_000)[: 1024 * 1024 - 1 - len(head)]
    data = head + body + "é@x.com,z\n".encode()
    assert data.index("é".encode()) == 1024 * 1024 - 1
    assert detect_layout(write(tmp_path, data)).encoding == "utf-8"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_by_its_nul_bytes(tmp_path: Path, codec: str) -> None:
    records = [
        ("header", "Prénom;E-mail", "\r\n"),
        ("data", "Zoë;zoe@exämple.com", "\r\n"),
        ("data", "José;jose@example.es", "\r\n"),
    ]
    layout, emails, out = run(tmp_path, raw_of(records).encode(codec))
    assert (layout.encoding, layout.bom, layout.delimiter) == (codec, False, ";")
    assert emails == ["zoe@exämple.com", "jose@example.es"]
    assert output_encoding(layout) == (codec, b"")
    assert out.read_bytes() == expected_csv(records, extras_for(emails), ";").encode(codec)


def test_utf16_without_bom_that_does_not_decode(tmp_path: Path) -> None:
    data = "email\na@x.com\n".encode("utf-16-le") + b"\x00\xdc" + "b@x.com\n".encode("utf-16-le")
    src = write(tmp_path, data, "odd.csv")
    with pytest.raises(InputError) as info:
        detect_layout(src)
    assert str(info.value) == "odd.csv looks like UTF-16-LE text but is not valid UTF-16-LE text"
