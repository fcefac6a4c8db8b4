"""Evidence photos: only real images, cleaned, upright, small, hashed; signatures need ink."""
import io
import time

import pytest
from PIL import Image

from claims_core.infra.photos import (
    MAX_EDGE,
    PhotoRejected,
    phash_distance,
    process_photo,
    signature_ink,
)

from tests.support.factories import jpeg_bytes, signature_png


def _exif_jpeg(orientation=6, gps=True, size=(400, 200)) -> bytes:
    img = Image.new("RGB", size, (10, 120, 200))
    img.paste((250, 0, 0), (0, 0, 100, 50))  # a red corner, to see the rotation
    exif = Image.Exif()
    exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (47.0, 22.0, 0.0), 3: "E", 4: (8.0, 32.0, 0.0)}
    exif[0x010F] = "Apple"
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_exif_orientation_applied_and_metadata_removed():
    raw = _exif_jpeg()
    assert Image.open(io.BytesIO(raw)).getexif().get(0x8825)  # the upload has GPS
    p = process_photo(raw, "IMG_0001.JPG")
    out = _decode(p.data)
    assert (p.width, p.height) == (200, 400) == out.size  # rotated upright
    exif = out.getexif()
    assert not exif.get(0x8825) and not exif.get(0x010F) and len(exif) == 0
    assert "exif" not in out.info and out.format == "JPEG"


def test_large_photo_downscaled_with_thumbnail_and_hashes():
    raw = jpeg_bytes(size=(4000, 3000))
    p = process_photo(raw, "big.jpg")
    # a JPEG is scaled down while it decodes (1/2 here), aspect kept, never above MAX_EDGE
    assert (p.width, p.height) == (2000, 1500) and MAX_EDGE // 2 < p.width <= MAX_EDGE
    buf = io.BytesIO()
    _decode(raw).save(buf, "PNG")
    assert process_photo(buf.getvalue(), "big.png").width == MAX_EDGE  # other formats: resized
    thumb = _decode(p.thumbnail)
    assert max(thumb.size) <= 320
    assert len(p.sha256) == 64 and len(p.phash) == 16


def test_perceptual_hash_survives_reencoding():
    raw = jpeg_bytes(size=(1200, 900), seed=5)
    img = _decode(raw).resize((800, 600))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    a, b = process_photo(raw, "a.jpg"), process_photo(buf.getvalue(), "b.png")
    assert a.sha256 != b.sha256 and phash_distance(a.phash, b.phash) <= 4
    c = process_photo(jpeg_bytes(size=(1200, 900), seed=150, color=(0, 200, 0)), "c.jpg")
    assert phash_distance(a.phash, c.phash) > 10


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_other_real_formats(fmt):
    img = Image.new("RGBA" if fmt == "PNG" else "RGB", (320, 240), (0, 128, 0))
    buf = io.BytesIO()
    img.save(buf, fmt)
    p = process_photo(buf.getvalue(), f"x.{fmt.lower()}")
    assert _decode(p.data).format == "JPEG" and (p.width, p.height) == (320, 240)


@pytest.mark.parametrize("name,data,reason", [
    ("invoice.jpg", b"%PDF-1.7\n" + b"x" * 2000, "isn't a photo we can read"),
    ("page.jpg", b"<html><script>alert(1)</script></html>", "isn't a photo we can read"),
    ("empty.jpg", b"", "empty"),
])
def test_not_images(name, data, reason):
    with pytest.raises(PhotoRejected) as e:
        process_photo(data, name)
    assert e.value.filename == name and reason in e.value.message


def test_truncated_jpeg():
    raw = jpeg_bytes(size=(1600, 1200))
    with pytest.raises(PhotoRejected, match="damaged or incomplete"):
        process_photo(raw[: len(raw) // 3], "half.jpg")


def test_animated_gif_refused():
    frames = [Image.new("RGB", (50, 50), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(PhotoRejected):
        process_photo(buf.getvalue(), "funny.gif")


@pytest.mark.parametrize("megapixels", [60, 144])
def test_decompression_bombs_refused_fast(megapixels):
    side = int((megapixels * 1_000_000) ** 0.5)
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, "PNG", optimize=True)
    raw = buf.getvalue()
    assert len(raw) < 1_000_000  # a small file...
    start = time.perf_counter()
    with pytest.raises(PhotoRejected, match="megapixels"):
        process_photo(raw, "bomb.png")
    assert time.perf_counter() - start < 1.0  # ...refused from its header, not decoded


def test_byte_cap():
    with pytest.raises(PhotoRejected, match="limit is 1 MB"):
        process_photo(b"\xff\xd8" + b"0" * (1024 * 1024 + 10), "huge.jpg", max_bytes=1024 * 1024)


def test_filename_cleaned():
    p = process_photo(jpeg_bytes(), "../../etc/\u202epasswd.jpg")
    assert "/" not in p.filename and "\u202e" not in p.filename


def test_signature_ink():
    assert signature_ink(signature_png()) > 200
    assert signature_ink(signature_png(blank=True)) == 0
    white = Image.new("RGBA", (300, 100), (255, 255, 255, 255))  # opaque white canvas, no ink
    buf = io.BytesIO()
    white.save(buf, "PNG")
    assert signature_ink(buf.getvalue()) == 0
    assert signature_ink(b"not a png") == 0 and signature_ink(None) == 0
