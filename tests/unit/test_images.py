"""Avatar processing (mailvet.adapters.images): the type comes from the bytes, metadata never
survives, bombs and oversized uploads are refused before decoding."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms

from mailvet.adapters import images
from mailvet.adapters.images import (
    MAX_AVATAR_BYTES,
    MAX_SIDE,
    Avatar,
    ImageRefused,
    process_avatar,
    sniff,
)

pytestmark = pytest.mark.unit

GPS_IFD = 0x8825


def encoded(picture: Image.Image, kind: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, kind, **options)
    return buffer.getvalue()


def lossless(data: bytes) -> Avatar:
    """What process_avatar makes of `data`, encoded as PNG: the pixels compare exactly."""
    return images._processed(data, MAX_SIDE, images._png)


def opened(avatar: Avatar) -> Image.Image:
    picture = Image.open(io.BytesIO(avatar.data))
    picture.load()
    return picture


def gradient(width: int, height: int) -> Image.Image:
    picture = Image.new("RGB", (width, height))
    picture.putdata([(x * 255 // width, y * 255 // height, 128) for y in range(height)
                     for x in range(width)])  # fmt: skip
    return picture


def chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_of(width: int, height: int, idat: bytes, *extra: bytes) -> bytes:
    """A PNG written by hand: 8-bit greyscale, with whatever IDAT we like."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + b"".join(extra)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def test_an_exif_laden_jpeg_comes_out_without_exif_gps_xmp_or_comment() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCamMaker"  # Make
    exif[0x0110] = "SecretCamModel"  # Model
    exif[0x0131] = "SecretEditor"  # Software
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>SecretPlace</rdf:Description>'
    upload = encoded(
        gradient(1200, 800),
        "JPEG",
        exif=exif,
        comment=b"SecretComment",
        xmp=xmp + b"</x:xmpmeta>",
        quality=90,
    )
    original = Image.open(io.BytesIO(upload))
    assert original.getexif().get_ifd(GPS_IFD)  # the upload does carry a position
    assert original.getexif()[0x010F] == "SecretCamMaker"

    avatar = process_avatar(upload)

    assert sniff(avatar.data) == "WEBP"
    result = opened(avatar)
    assert result.format == "WEBP"
    assert (result.width, result.height) == (avatar.width, avatar.height) == (512, 341)
    assert dict(result.getexif()) == {}
    assert not {"exif", "xmp", "icc_profile", "comment"} & set(result.info)
    for secret in (b"Secret", b"Exif", b"XMP ", b"ICCP"):
        assert secret not in avatar.data


def test_the_exif_orientation_is_applied_before_it_is_dropped() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show it rotated 90 degrees clockwise
    upload = encoded(gradient(200, 100), "JPEG", exif=exif)
    avatar = process_avatar(upload)
    assert (avatar.width, avatar.height) == (100, 200)
    assert 0x0112 not in opened(avatar).getexif()


def test_png_text_chunks_go_and_transparency_stays() -> None:
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "SecretAuthor")
    text.add_itxt("Comment", "SecretComment", zip=True)
    picture = Image.new("RGBA", (64, 48), (255, 0, 0, 0))
    picture.paste((0, 0, 255, 255), (0, 0, 32, 48))
    avatar = lossless(encoded(picture, "PNG", pnginfo=text))
    assert sniff(avatar.data) == "PNG"
    result = opened(avatar)
    assert result.mode == "RGBA"
    assert result.getpixel((10, 10)) == (0, 0, 255, 255)
    assert result.getpixel((50, 10))[3] == 0  # type: ignore[index]
    assert b"Secret" not in avatar.data
    assert not set(result.info) & {"Author", "Comment"}


def test_an_embedded_colour_profile_is_applied_and_dropped() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    upload = encoded(Image.new("RGB", (40, 40), (200, 30, 60)), "PNG", icc_profile=profile)
    assert Image.open(io.BytesIO(upload)).info["icc_profile"]
    avatar = lossless(upload)
    result = opened(avatar)
    assert "icc_profile" not in result.info
    red, green, blue = result.getpixel((20, 20))  # type: ignore[misc]
    assert abs(red - 200) <= 2 and abs(green - 30) <= 2 and abs(blue - 60) <= 2


@pytest.mark.parametrize(
    "picture",
    [
        Image.new("CMYK", (300, 300), (0, 255, 255, 0)),  # a print JPEG
        Image.new("L", (300, 300), 90),
        Image.new("P", (300, 300), 3),
    ],
    ids=["cmyk", "grey", "palette"],
)
def test_every_colour_mode_comes_out_rgb(picture: Image.Image) -> None:
    kind = "JPEG" if picture.mode in ("CMYK", "L") else "GIF"
    result = opened(process_avatar(encoded(picture, kind)))
    assert result.mode == "RGB"
    assert result.size == (300, 300)  # smaller than 512: not enlarged


def test_a_sixteen_bit_png_is_stretched_to_eight_bits() -> None:
    raw = b"".join(struct.pack("<H", x * 1000) for _ in range(8) for x in range(64))
    picture = Image.frombytes("I;16", (64, 8), raw)
    result = opened(lossless(encoded(picture, "PNG")))
    assert result.mode == "RGB"
    assert result.getpixel((0, 0)) == (0, 0, 0)
    assert result.getpixel((63, 0)) == (255, 255, 255)


def test_only_the_first_frame_of_an_animation_is_kept() -> None:
    frames = [Image.new("RGB", (80, 80), colour) for colour in ("red", "blue", "green")]
    upload = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert getattr(Image.open(io.BytesIO(upload)), "n_frames", 1) == 3
    result = opened(lossless(upload))
    assert getattr(result, "n_frames", 1) == 1
    assert result.getpixel((40, 40)) == (255, 0, 0)


def test_a_webp_upload_is_taken() -> None:
    avatar = process_avatar(encoded(gradient(600, 600), "WEBP"))
    assert (avatar.width, avatar.height) == (512, 512)


@pytest.mark.parametrize(
    "upload",
    [
        b"just a text file that somebody named x.png\n",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"<html><body><img src=x onerror=alert(1)></body></html>",
        encoded(Image.new("RGB", (10, 10)), "BMP"),
        encoded(Image.new("RGB", (10, 10)), "TIFF"),
        b"",
    ],
    ids=["text-named-png", "svg", "html", "bmp", "tiff", "empty"],
)
def test_what_is_not_png_jpeg_webp_or_gif_is_refused(upload: bytes) -> None:
    with pytest.raises(ImageRefused) as refused:
        process_avatar(upload)
    assert refused.value.reason == "unsupported_type"
    assert "PNG, JPEG, WebP or GIF" in str(refused.value)


@pytest.mark.parametrize(
    ("width", "height"),
    [(100_000, 100_000), (10_000, 10_000), (6_000, 5_000)],
    ids=["over-twice-pillows-limit", "over-pillows-limit", "over-ours"],
)
def test_a_decompression_bomb_is_refused_before_decoding(width: int, height: int) -> None:
    # a few kilobytes claiming billions of pixels: refused on the header alone
    with pytest.raises(ImageRefused) as refused:
        process_avatar(png_of(width, height, zlib.compress(b"\0" * 1000)))
    assert refused.value.reason == "too_many_pixels"


def test_a_real_bomb_of_thirty_megabytes_in_thirty_kilobytes_is_refused() -> None:
    width, height = 6_000, 5_000
    rows = zlib.compress(b"\0" * ((width + 1) * height), 9)  # every row: filter 0, black
    bomb = png_of(width, height, rows)
    assert len(bomb) < 64 * 1024
    with pytest.raises(ImageRefused) as refused:
        process_avatar(bomb)
    assert refused.value.reason == "too_many_pixels"


def test_at_most_two_megabytes_come_in() -> None:
    small = encoded(Image.new("L", (16, 16), 7), "PNG")
    # the same picture padded to exactly 2 MB with a private ancillary chunk
    head, rest = small[:33], small[33:]  # signature + IHDR, then the rest
    padding = MAX_AVATAR_BYTES - len(small) - 12
    exact = head + chunk(b"prVt", b"\0" * padding) + rest
    assert len(exact) == MAX_AVATAR_BYTES
    assert process_avatar(exact).width == 16
    with pytest.raises(ImageRefused) as refused:
        process_avatar(exact + b"\0")
    assert refused.value.reason == "too_large"


@pytest.mark.parametrize(
    "upload",
    [
        b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10,
        b"\xff\xd8\xff" + b"\0" * 100,
        b"GIF89a" + b"\xff" * 5,
        b"RIFF\x10\0\0\0WEBPVP8 garbage",
    ],
    ids=["png", "jpeg", "gif", "webp"],
)
def test_a_signature_without_an_image_behind_it_is_damaged(upload: bytes) -> None:
    with pytest.raises(ImageRefused) as refused:
        process_avatar(upload)
    assert refused.value.reason == "damaged"


def test_a_truncated_jpeg_is_damaged() -> None:
    upload = encoded(gradient(400, 400), "JPEG")
    with pytest.raises(ImageRefused) as refused:
        process_avatar(upload[: len(upload) // 2])
    assert refused.value.reason == "damaged"


def test_sniff_reads_signatures_only() -> None:
    assert sniff(encoded(Image.new("RGB", (2, 2)), "PNG")) == "PNG"
    assert sniff(encoded(Image.new("RGB", (2, 2)), "JPEG")) == "JPEG"
    assert sniff(encoded(Image.new("RGB", (2, 2)), "GIF")) == "GIF"
    assert sniff(encoded(Image.new("RGB", (2, 2)), "WEBP")) == "WEBP"
    assert sniff(b"RIFF\0\0\0\0WAVEfmt ") is None  # RIFF, but a sound
    assert sniff(b"x.png") is None
