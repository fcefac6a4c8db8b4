"""Evidence photos: decode safely, clean, re-encode, hash.

Only real JPEG, PNG, WebP and HEIC/HEIF images are accepted, whatever the file is called. The pixel
count is checked from the header before any pixel is decoded, so a tiny file that claims to be a
huge image costs nothing. Stored copies carry no metadata (no GPS), are upright (EXIF orientation
applied) and at most ``MAX_EDGE`` pixels on their long side.
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from dataclasses import dataclass

import imagehash
from PIL import Image, ImageOps, UnidentifiedImageError

from ..domain.eligibility import MAX_PHOTO_BYTES, MEGABYTE
from ..domain.messages import Msg, N_

try:  # iPhone photos
    import pillow_heif

    pillow_heif.register_heif_opener()
    _HEIF = ["HEIF"]
except ImportError:  # pragma: no cover - pillow-heif is in requirements
    _HEIF = []

ALLOWED_FORMATS = ["JPEG", "PNG", "WEBP", *_HEIF]
MAX_PIXELS = 50_000_000  # a 48 MP phone photo passes; Pillow's own bomb limit is ~179 MP
DEFAULT_MAX_BYTES = MAX_PHOTO_BYTES
MAX_EDGE = 2048
THUMB_EDGE = 320
# Decodes at once in this process: a 50 MP photo takes ~150-450 MB while it decodes, so a burst of
# uploads waits its turn instead of multiplying that (the cores are the limit on speed anyway).
MAX_CONCURRENT_DECODES = max(1, min(4, os.cpu_count() or 2))
_DECODES = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
JPEG_QUALITY = 85


class PhotoRejected(Exception):
    """A file that isn't a usable photo. ``msg`` names the file and says what to do, as a catalog
    message (the customer reads it in their language); ``message`` is its English; ``reason`` the
    part after the file's name (a message too)."""

    def __init__(self, filename: str, reason: "Msg | str"):
        self.filename = filename
        self.reason = reason if isinstance(reason, Msg) else Msg(reason)
        self.msg = rejected(filename, self.reason)
        self.message = str(self.msg)
        super().__init__(self.message)


def rejected(filename: str, reason: "Msg | str") -> Msg:
    """"photo.jpg: <what is wrong with it>" (the name is data, shown as it is)."""
    # TRANSLATORS: a file that was refused: its name, then why (a sentence starting in lower case).
    return Msg.of(N_("{filename}: {reason}"), filename=filename,
                  reason=reason if isinstance(reason, Msg) else Msg(reason))


@dataclass(frozen=True)
class ProcessedPhoto:
    filename: str
    data: bytes  # JPEG, metadata-free
    thumbnail: bytes  # JPEG
    width: int
    height: int
    sha256: str  # of the uploaded bytes (spots an identical file uploaded again)
    phash: str  # perceptual hash, 16 hex digits (spots the same picture re-encoded)
    content_type: str = "image/jpeg"


def clean_filename(filename: str | None) -> str:
    name = (filename or "photo").replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:120] or "photo"


def process_photo(
    raw: bytes, filename: str | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> ProcessedPhoto:
    """Validate and clean one uploaded photo, or raise :class:`PhotoRejected`."""
    name = clean_filename(filename)
    if not raw:
        raise PhotoRejected(name, N_("the file is empty."))
    if len(raw) > max_bytes:
        # the size with one decimal, as the upload widget writes it (a string: the message's
        # numbers are whole)
        raise PhotoRejected(name, Msg.of(N_("the file is {size} MB; the limit is {limit} MB."),
                                         size=f"{len(raw) / MEGABYTE:.1f}",
                                         limit=max_bytes // MEGABYTE))
    with _DECODES:  # a few decodes at a time: 24 big photos at once can't take the memory
        return _decode_and_clean(raw, name, max_pixels)


def _decode_and_clean(raw: bytes, name: str, max_pixels: int) -> ProcessedPhoto:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw), formats=ALLOWED_FORMATS)
            fmt = img.format
            w, h = img.size
            if w * h > max_pixels:
                # width and height are written without separators (8000×6000), as dimensions are
                raise PhotoRejected(name, Msg.of(
                    N_("the image is {width}×{height} ({megapixels} megapixels); the limit is "
                       "{limit} megapixels. Please send a smaller photo."),
                    width=str(w), height=str(h), megapixels=round(w * h / 1e6),
                    limit=round(max_pixels / 1e6)))
            if getattr(img, "n_frames", 1) > 1 and fmt != "HEIF":
                raise PhotoRejected(name, N_("animated images aren't accepted. Please send a "
                                             "photo."))
            if fmt == "JPEG":
                # Let the JPEG decoder scale down by 1/2, 1/4 or 1/8 while it decodes, as far as
                # the short side stays above MAX_EDGE / 2: a 12 MP phone photo comes out about
                # 2000 px wide without ever being resized in full (which costs ~0.4 s).
                img.draft("RGB", (MAX_EDGE // 2, MAX_EDGE // 2))
            img.load()
            if max(img.size) > 2 * MAX_EDGE and img.mode in ("RGB", "RGBA", "L", "LA", "I", "F"):
                # a big PNG, WebP or HEIC: shrink before any copy (JPEG already decoded small)
                img = img.reduce(max(img.size) // (2 * MAX_EDGE))
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected(name, Msg.of(
            N_("the image is far too large; the limit is {limit} megapixels. "
               "Please send a smaller photo."), limit=round(max_pixels / 1e6)))
    except UnidentifiedImageError:
        raise PhotoRejected(
            name, N_("this isn't a photo we can read. Please send a JPEG, PNG, WebP or HEIC image.")
        )
    except (OSError, SyntaxError, ValueError, EOFError):
        raise PhotoRejected(name, N_("the image is damaged or incomplete. Please take or export it "
                                     "again."))

    rgb.thumbnail((MAX_EDGE, MAX_EDGE), Image.Resampling.LANCZOS)
    data = _jpeg(rgb, JPEG_QUALITY)
    thumb = rgb.copy()
    thumb.thumbnail((THUMB_EDGE, THUMB_EDGE), Image.Resampling.LANCZOS)
    return ProcessedPhoto(
        filename=name,
        data=data,
        thumbnail=_jpeg(thumb, 80),
        width=rgb.width,
        height=rgb.height,
        sha256=hashlib.sha256(raw).hexdigest(),
        phash=str(imagehash.phash(rgb)),
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGB", img.size, (255, 255, 255))
        bg.paste(img, mask=img.getchannel("A"))
        return bg
    return img.convert("RGB")


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True)  # no exif= : nothing carried over
    return buf.getvalue()


def phash_distance(a: str, b: str) -> int:
    return imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)


# --- signatures ---------------------------------------------------------------------------------

MAX_SIGNATURE_BYTES = 2 * 1024 * 1024


def signature_ink(png: bytes | None) -> int:
    """How many pixels of a drawn signature carry ink (0 for blank, unreadable or oversized)."""
    if not png or len(png) > MAX_SIGNATURE_BYTES:
        return 0
    try:
        img = Image.open(io.BytesIO(png), formats=["PNG"])
        if img.width * img.height > 4_000_000:
            return 0
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return 0
    if img.mode in ("RGBA", "LA", "P"):
        alpha = img.convert("RGBA").getchannel("A")
        inked = alpha.point(lambda v: 255 if v > 32 else 0)
        gray = img.convert("RGBA")
        # Opaque backgrounds (a white canvas) count as ink by alpha; use darkness as well.
        dark = gray.convert("L").point(lambda v: 255 if v < 160 else 0)
        ink_alpha = inked.histogram()[255]
        if ink_alpha < img.width * img.height * 0.9:  # transparent background: alpha is the ink
            return ink_alpha
        return dark.histogram()[255]
    dark = img.convert("L").point(lambda v: 255 if v < 160 else 0)
    return dark.histogram()[255]


def normalize_signature(png: bytes) -> bytes:
    """Re-encode a drawn signature as a small opaque PNG (nothing else from the upload kept)."""
    img = Image.open(io.BytesIO(png), formats=["PNG"])
    img.load()
    out = _to_rgb(img)
    out.thumbnail((800, 300))
    buf = io.BytesIO()
    out.save(buf, "PNG", optimize=True)
    return buf.getvalue()
