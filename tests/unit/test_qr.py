"""The TOTP QR code (mailvet.adapters.qr): inline SVG that draws exactly the QR symbol of the
URI (read back from the SVG path), with nothing of the URI in the markup."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
import segno

from mailvet.adapters.qr import totp_qr_svg

pytestmark = pytest.mark.unit

URI = (
    "otpauth://totp/mailvet:ann.lee%40example.com"
    "?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=mailvet"
)
STEP = re.compile(r"([Mmh])(-?\d+(?:\.\d+)?)(?:\s+(-?\d+(?:\.\d+)?))?")


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 (our own output, no entities: segno writes none)


def dark_modules(svg: str) -> tuple[set[tuple[int, int]], int]:
    """The (row, column) of every dark module the SVG draws, and the symbol's size with its
    quiet zone: segno draws each run of dark modules as a horizontal stroke."""
    root = parse(svg)
    [background] = [p for p in root.iter("path") if p.get("fill")]
    [strokes] = [p for p in root.iter("path") if p.get("stroke")]
    box = re.fullmatch(r"M0 0h(\d+)v\d+h-\d+z", background.get("d", ""))
    assert box is not None
    size = int(box.group(1))
    x = y = 0.0
    dark: set[tuple[int, int]] = set()
    for command, first, second in STEP.findall(strokes.get("d", "")):
        if command == "M":
            x, y = float(first), float(second)
        elif command == "m":
            x, y = x + float(first), y + float(second)
        else:
            run = int(float(first))
            dark.update((int(y), column) for column in range(int(x), int(x) + run))
            x += run
    return dark, size


def test_the_svg_draws_the_qr_symbol_of_the_uri() -> None:
    svg = totp_qr_svg(URI)
    drawn, size = dark_modules(svg)
    symbol = segno.make(URI, error="m", micro=False)
    assert symbol.error == "M"
    width = len(symbol.matrix)
    assert size == width + 8  # a quiet zone of 4 modules on each side
    expected = {
        (row + 4, column + 4)
        for row, line in enumerate(symbol.matrix)
        for column, module in enumerate(line)
        if module
    }
    assert drawn == expected
    root = parse(svg)
    assert (root.get("width"), root.get("height")) == (str(size * 4), str(size * 4))


def test_another_uri_draws_another_symbol() -> None:
    assert dark_modules(totp_qr_svg(URI))[0] != dark_modules(totp_qr_svg(URI + "x"))[0]


def test_the_svg_is_inline_markup_without_the_secret() -> None:
    svg = totp_qr_svg(URI)
    assert svg.startswith("<svg ")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg
    assert "JBSWY3DP" not in svg and "example.com" not in svg and "otpauth" not in svg
    assert "<script" not in svg and "href" not in svg
    root = parse(svg)
    assert root.get("class") == "totp-qr"
    assert root.findtext("title") == "QR code for your authenticator app"


def test_the_title_is_escaped() -> None:
    svg = totp_qr_svg(URI, title='"><script>alert(1)</script>')
    assert "<script>" not in svg
    assert parse(svg).findtext("title") == '"><script>alert(1)</script>'
