"""Evidence photos: decode safely, clean, re-encode, hash.

Only real JPEG, PNG, WebP and HEIC/HEIF images are accepted, whatever the file is called. The pixel
count is checked from the header before any pixel is decoded, so a tiny file that claims to be a
huge image costs nothing. Stored copies carry no metadata (no GPS), are upright (EXIF orientation
applied) and at most ``MAX_EDGE`` pixels on their long side.

Memory is bounded whatever the file: a JPEG is scaled down by its decoder; any other image, once
decoded in its own mode (1, L, P, LA, I;16, RGB, RGBA, CMYK...), is converted and shrunk a strip at
a time, so no full-size copy in another mode is ever made; and each decode first takes its
estimated cost from a per-process memory budget (``DECODE_MEMORY_BUDGET``), so a burst of the
worst kind of file waits its turn instead of adding up.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import io
import math
import os
import threading
import warnings
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import imagehash
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

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
# What the decodes in this process may hold at once, by their estimate (``decode_cost``). One
# decode that costs more (a 50 MP WebP: ~0.8 GB) runs alone.
DECODE_MEMORY_BUDGET = 640 * 1024 * 1024
STRIP_PIXELS = 2_000_000  # pixels converted at a time when shrinking a decoded image


try:  # glibc keeps freed memory in each thread's arena; malloc_trim hands it back to the system
    _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _malloc_trim = None
_TRIM_ABOVE = 32 * 1024 * 1024


class _MemoryBudget:
    """A weighted semaphore, first come first served: ``hold(cost)`` waits until ``cost`` bytes
    fit beside what the earlier decodes hold (a cost above the total waits to run alone)."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self.peak = 0  # the most held at once (for tests and the curious)
        self._queue: deque[object] = deque()
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, cost: int) -> Iterator[None]:
        cost = max(0, min(int(cost), self.total))
        me = object()
        with self._cond:
            self._queue.append(me)
            self._cond.wait_for(lambda: self._queue[0] is me and self.used + cost <= self.total)
            self._queue.popleft()
            self.used += cost
            self.peak = max(self.peak, self.used)
            self._cond.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            if cost >= _TRIM_ABOVE and _malloc_trim is not None:
                # what a big decode freed goes back now, before the next one takes its share:
                # otherwise the arenas of a few threads keep hundreds of MB between them
                _malloc_trim(0)
            with self._cond:
                self.used -= cost
                self._cond.notify_all()


_BUDGET = _MemoryBudget(DECODE_MEMORY_BUDGET)


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
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone switched Pillow's leniency on: not for uploads
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay off for uploads")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            webp = webp_size(raw)
            if webp is not None:  # Pillow's WebP reader allocates the canvas when it opens
                _check_pixels(name, *webp, max_pixels)
            img = Image.open(io.BytesIO(raw), formats=ALLOWED_FORMATS)
            fmt = img.format
            w, h = img.size
            _check_pixels(name, w, h, max_pixels)
            if getattr(img, "n_frames", 1) > 1 and fmt != "HEIF":
                raise PhotoRejected(name, N_("animated images aren't accepted. Please send a "
                                             "photo."))
            if fmt == "JPEG":
                # Let the JPEG decoder scale down by 1/2, 1/4 or 1/8 while it decodes, as far as
                # the long side stays above 3/4 of MAX_EDGE: a 12 MP phone photo comes out 2000 px
                # wide without ever being resized in full (which costs ~0.4 s), a 50 MP one
                # 2165 px, and a 50000×1000 strip is decoded at 1/8 too.
                box = MAX_EDGE * 3 // 4
                long = max(w, h)
                img.draft("RGB", (max(1, w * box // long), max(1, h * box // long)))
            with _BUDGET.hold(decode_cost(img, (w, h))):
                img.load()
                info = dict(img.info)  # EXIF (orientation) and the rest, for exif_transpose
                rgb = shrink_to_rgb(img, max(1, max(img.size) // MAX_EDGE))
                img.close()
                del img
                rgb.info = info
                rgb = ImageOps.exif_transpose(rgb)
                rgb.info = {}
                return _finish(raw, name, rgb)
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


def _finish(raw: bytes, name: str, rgb: Image.Image) -> ProcessedPhoto:
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


def _check_pixels(name: str, w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        # width and height are written without separators (8000×6000), as dimensions are
        raise PhotoRejected(name, Msg.of(
            N_("the image is {width}×{height} ({megapixels} megapixels); the limit is "
               "{limit} megapixels. Please send a smaller photo."),
            width=str(w), height=str(h), megapixels=round(w * h / 1e6),
            limit=round(max_pixels / 1e6)))


def webp_size(raw: bytes) -> tuple[int, int] | None:
    """A WebP file's canvas size from its first chunk's header (RIFF container: VP8X, lossless
    VP8L or lossy VP8), or None for anything else."""
    if len(raw) < 30 or raw[:4] != b"RIFF" or raw[8:12] != b"WEBP":
        return None
    chunk = raw[12:16]
    if chunk == b"VP8X":
        return (1 + int.from_bytes(raw[24:27], "little"), 1 + int.from_bytes(raw[27:30], "little"))
    if chunk == b"VP8L" and raw[20] == 0x2F:
        bits = int.from_bytes(raw[21:25], "little")
        return (1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
    if chunk == b"VP8 " and raw[23:26] == b"\x9d\x01\x2a":
        return (int.from_bytes(raw[26:28], "little") & 0x3FFF,
                int.from_bytes(raw[28:30], "little") & 0x3FFF)
    return None


_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}


def decode_cost(img: Image.Image, header_size: tuple[int, int]) -> int:
    """An upper estimate of the bytes decoding and shrinking ``img`` takes at its peak (``img``
    opened, a JPEG's draft already set; ``header_size`` the size the file declares)."""
    w, h = img.size
    pixels = w * h
    cost = pixels * _BYTES_PER_PIXEL.get(img.mode, 4)  # the decoded image, in Pillow's layout
    if img.format == "JPEG" and (img.info.get("progressive") or img.info.get("progression")):
        # a progressive JPEG keeps every DCT coefficient of the full image (2 bytes each)
        hw, hh = header_size
        cost += hw * hh * max(1, len(img.getbands())) * 2
    elif img.format == "WEBP":
        cost += pixels * 4 * 3  # libwebp: its canvas, its lossless buffers and the frame handed over
    elif img.format == "HEIF":
        cost += pixels * 6  # libheif's decoded planes (16 bits a sample for 10-bit HDR)
    factor = max(1, max(w, h) // MAX_EDGE)
    shrunk = math.ceil(w / factor) * math.ceil(h / factor) * 4
    return cost + shrunk * 2 + STRIP_PIXELS * 4 * 3 + 16 * 1024 * 1024


def _strip_to_rgb(strip: Image.Image, factor: int, alpha: bool) -> Image.Image:
    if strip.mode.startswith("I;16"):  # 16-bit grey: its top 8 bits (L would clip at 255)
        strip = strip.point(lambda v: v / 256).convert("L")
    elif strip.mode == "I":
        strip = strip.point(lambda v: v / 256).convert("L")
    if alpha:
        strip = strip.convert("RGBA")
        if factor > 1:
            strip = strip.reduce(factor)  # premultiplied by Pillow: no dark fringes
        bg = Image.new("RGB", strip.size, (255, 255, 255))
        bg.paste(strip, mask=strip.getchannel("A"))
        return bg
    strip = strip.convert("RGB")
    return strip.reduce(factor) if factor > 1 else strip


def shrink_to_rgb(img: Image.Image, factor: int) -> Image.Image:
    """``img`` (decoded, any mode) as RGB on white, reduced by ``factor`` (box averaging), made a
    strip of rows at a time: the only full-size image is the decoded one."""
    alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info)
    w, h = img.size
    if w * h <= STRIP_PIXELS:
        return _strip_to_rgb(img, factor, alpha)
    out = Image.new("RGB", (math.ceil(w / factor), math.ceil(h / factor)))
    rows = factor * max(1, STRIP_PIXELS // (w * factor))  # whole boxes per strip: same as one reduce
    for top in range(0, h, rows):
        part = _strip_to_rgb(img.crop((0, top, w, min(h, top + rows))), factor, alpha)
        out.paste(part, (0, top // factor))
    return out


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
