"""Avatars: an uploaded picture made safe to store and show (Pillow).

`process_avatar(data)` takes the uploaded bytes (never their file name or content type: the
type is sniffed from the bytes) and returns a new image, or raises `ImageRefused(reason)`:
- at most 2 MB in (`too_large`, checked first, before anything is parsed);
- PNG, JPEG, WebP or GIF only, by their signatures, and Pillow must agree
  (`unsupported_type` for anything else: a text file called x.png, SVG, BMP, TIFF, HEIC);
- the dimensions are read from the header and refused above 25 megapixels before a pixel is
  decoded (`too_many_pixels`: a decompression bomb; Pillow's own MAX_IMAGE_PIXELS check, a
  process-wide setting, is not relied on nor changed);
- a file that does not decode is `damaged`;
- only the first frame of an animation is kept; the EXIF orientation is applied, an ICC
  profile converted to sRGB, then the pixels are copied into a fresh image (no EXIF, GPS,
  XMP, comments, text chunks or profile survive), shrunk to at most 512 px a side (aspect
  kept) and encoded as WebP (`image/webp`; the tests compare pixels through the private
  lossless `_png` encoder).

CPU-bound: call it off the event loop (`await asyncio.to_thread(process_avatar, data)`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

if TYPE_CHECKING:
    from PIL import Image

MAX_AVATAR_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 25_000_000  # a 5,000 x 5,000 picture; a 2 MB photo is ~16 megapixels at most
MAX_SIDE = 512

Kind = Literal["PNG", "JPEG", "WEBP", "GIF"]
Reason = Literal["too_large", "unsupported_type", "too_many_pixels", "damaged"]


class ImageRefused(ValueError):
    """The upload cannot be an avatar; `reason` says why (for the form's message)."""

    MESSAGES: dict[Reason, str] = {
        "too_large": "The picture is larger than 2 MB.",
        "unsupported_type": "Only PNG, JPEG, WebP or GIF pictures can be used.",
        "too_many_pixels": "The picture has too many pixels (at most 25 megapixels).",
        "damaged": "The picture could not be read.",
    }

    def __init__(self, reason: Reason) -> None:
        super().__init__(self.MESSAGES[reason])
        self.reason: Reason = reason


@dataclass(frozen=True)
class Avatar:
    data: bytes  # WebP
    width: int
    height: int


def sniff(data: bytes) -> Kind | None:
    """The image type of these bytes by their signature, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    return None


def process_avatar(data: bytes, *, max_side: int = MAX_SIDE) -> Avatar:
    """The cleaned avatar of `data`, encoded as WebP; ImageRefused(reason) otherwise."""
    return _processed(data, max_side, _webp)


def _webp(picture: Image.Image, out: io.BytesIO) -> None:
    picture.save(out, "WEBP", quality=85, method=4)


def _png(picture: Image.Image, out: io.BytesIO) -> None:
    """Lossless: the tests compare the cleaned pixels."""
    picture.save(out, "PNG", optimize=True)


def _processed(
    data: bytes, max_side: int, encode: Callable[[Image.Image, io.BytesIO], None]
) -> Avatar:
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_AVATAR_BYTES:
        raise ImageRefused("too_large")
    kind = sniff(data)
    if kind is None:
        raise ImageRefused("unsupported_type")
    try:
        # Pillow warns above Image.MAX_IMAGE_PIXELS and raises at twice that, before we can
        # look at the size; either is a bomb to us (our own limit is lower still)
        picture = Image.open(io.BytesIO(data), formats=[kind])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRefused("too_many_pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ImageRefused("damaged") from None
    with picture:
        width, height = picture.size
        if width < 1 or height < 1:
            raise ImageRefused("damaged")
        if width * height > MAX_PIXELS:
            raise ImageRefused("too_many_pixels")
        clean = _clean_pixels(picture, max_side)
    buffer = io.BytesIO()
    encode(clean, buffer)
    return Avatar(data=buffer.getvalue(), width=clean.width, height=clean.height)


def _clean_pixels(picture: Image.Image, max_side: int) -> Image.Image:
    """Frame 0, upright, sRGB, RGB(A), at most max_side, in a new image with no metadata."""
    from PIL import Image, ImageOps

    if picture.format == "JPEG":
        # decode at 1/2, 1/4 or 1/8 scale when that still leaves max_side: less memory
        picture.draft("RGB", (max_side, max_side))
    try:
        picture.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        raise ImageRefused("damaged") from None
    icc = picture.info.get("icc_profile")
    try:
        upright = ImageOps.exif_transpose(picture) or picture
    except (OSError, SyntaxError, ValueError, TypeError, KeyError):
        upright = picture  # EXIF that does not parse: keep the pixels as they are
    mode = "RGBA" if _transparent(upright) else "RGB"
    converted = _to_srgb(upright, icc, mode) if isinstance(icc, bytes) and icc else None
    if converted is None:
        try:
            converted = _plain_rgb(upright, mode)
        except (OSError, ValueError):
            raise ImageRefused("unsupported_type") from None
    converted.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    # a fresh image from the raw pixels: nothing of the upload's info dict comes along
    return Image.frombytes(converted.mode, converted.size, converted.tobytes())


def _transparent(picture: Image.Image) -> bool:
    return picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        picture.mode in ("P", "L", "RGB", "1") and "transparency" in picture.info
    )


def _plain_rgb(picture: Image.Image, mode: str) -> Image.Image:
    if picture.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float greyscale: stretched to 8 bits (convert("L") would clip them)
        low, high = cast("tuple[float, float]", picture.getextrema())  # one band
        span = float(high - low) or 1.0
        picture = picture.point(lambda value: (value - low) * 255.0 / span + 0.5).convert("L")
    return picture.convert(mode)


def _to_srgb(picture: Image.Image, icc: bytes, mode: str) -> Image.Image | None:
    """The pixels converted from their embedded profile to sRGB in `mode` (a photo tagged
    Display P3, Adobe RGB or a CMYK press profile would look wrong once the profile is
    dropped); None if the profile is unusable or does not fit the pixels."""
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        srgb = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(picture, source, srgb, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
