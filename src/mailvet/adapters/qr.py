"""The TOTP set-up QR code, drawn on the server as inline SVG (segno: no image library, no
script, no request leaves the page; the CSP needs nothing for it).

The SVG carries no XML declaration (it sits inside the HTML page, embedded with `|safe`:
segno writes only the path of the modules, never a character of the URI, so nothing of the
secret or the address is in the markup). Error correction M, as authenticator apps expect;
a white quiet zone of 4 modules so that it scans on a dark page too.
"""

from __future__ import annotations


def totp_qr_svg(
    uri: str, *, scale: int = 4, title: str = "QR code for your authenticator app"
) -> str:
    """The `otpauth://` URI as an inline `<svg>` element."""
    import segno

    code = segno.make(uri, error="m", micro=False)
    return code.svg_inline(
        scale=scale,
        border=4,
        dark="#000",
        light="#fff",
        title=title,
        svgclass="totp-qr",
        lineclass=None,
    )
