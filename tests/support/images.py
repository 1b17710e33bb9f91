"""Real image files made at run time with Pillow, for the decoder and ImageFolder tests.

Every picture is a smooth gradient plus a little noise from a fixed seed, so JPEG
compresses it as it would a photo and the pixels are the same on every run.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB picture: gradients and mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [255 * x / max(1, width - 1), 255 * y / max(1, height - 1), 128 + 100 * np.sin((x + y) / 7)],
        axis=-1,
    )
    noisy = base + rng.normal(0, 8, size=base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def jpeg(height: int, width: int, seed: int = 0, **options: object) -> bytes:
    """An RGB JPEG (quality 90 unless ``options`` say otherwise; ``progressive=True`` works)."""
    options.setdefault("quality", 90)
    return encode(Image.fromarray(picture(height, width, seed)), "JPEG", **options)


def variants(seed: int = 0) -> dict[str, bytes]:
    """One file of every kind the decoders must handle, by a descriptive name."""
    rgb = Image.fromarray(picture(24, 40, seed))
    rgba = Image.fromarray(
        np.dstack([picture(20, 30, seed), np.linspace(0, 255, 600).reshape(20, 30)]).astype(np.uint8)
    )
    good = jpeg(30, 44, seed)
    return {
        "rgb.jpg": good,
        "big.jpg": jpeg(64, 96, seed + 1),
        "progressive.jpg": jpeg(33, 47, seed + 2, progressive=True),
        "gray.jpg": encode(rgb.convert("L"), "JPEG", quality=90),
        "cmyk.jpg": encode(rgb.convert("CMYK"), "JPEG", quality=90),
        "subsampled444.jpg": jpeg(17, 23, seed + 3, subsampling=0),
        "alpha.png": encode(rgba, "PNG"),
        "gray.png": encode(rgb.convert("L"), "PNG"),
        "palette.png": encode(rgb.convert("P"), "PNG"),
        "rgb.bmp": encode(rgb, "BMP"),
        "rgb.webp": encode(rgb, "WEBP", lossless=True),
    }


def broken() -> dict[str, bytes]:
    """Files that are not decodable images, by name."""
    good = jpeg(30, 44)
    png = encode(Image.fromarray(picture(20, 30)), "PNG")
    return {
        "truncated.jpg": good[: len(good) // 2],
        "truncated.png": png[: len(png) // 2],
        "not_an_image.jpg": b"this is a text file, not a JPEG\n" * 4,
        "empty.jpg": b"",
    }


def damaged_dds() -> bytes:
    """A DDS file with its pixel-format flags damaged: Pillow identifies it, then raises
    ``NotImplementedError`` ("Unknown pixel format flags"), not an ``OSError``."""
    data = bytearray(encode(Image.fromarray(picture(8, 8)), "DDS"))
    struct.pack_into("<I", data, 80, 16384)  # DDS_PIXELFORMAT.dwFlags: no known flag
    return bytes(data)


def bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A small PNG whose header declares ``width x height`` pixels (a decompression bomb).

    An 8x8 PNG with its IHDR chunk rewritten (and its CRC recomputed), so it costs nothing to
    make; decoding it would fail later, but a decoder must refuse it from the header.
    """
    data = bytearray(encode(Image.new("1", (8, 8)), "PNG"))
    at = data.index(b"IHDR")
    struct.pack_into(">II", data, at + 4, width, height)
    struct.pack_into(">I", data, at + 17, zlib.crc32(bytes(data[at : at + 17])))
    return bytes(data)


def write_folder(root: Path, files: dict[str, dict[str, bytes]]) -> Path:
    """``root/<class>/<name>`` for ``files[class][name]``; returns ``root``."""
    for cls, members in files.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for name, data in members.items():
            target = root / cls / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return root


def pillow_rgb(data: bytes) -> np.ndarray:
    """torchvision's default loader on ``data`` (``Image.open(f).convert("RGB")``) as ``(3, H, W)``."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).transpose(2, 0, 1)


# A class-folder tree for the listing order (file contents do not matter).
ORDER_FILES = [
    "b_class/z.jpg",
    "b_class/A.JPG",
    "b_class/sub/y.png",
    "b_class/sub2/x.jpeg",
    "b_class/sub/deeper/w.jpg",
    "b_class/notes.txt",
    "b_class/a.jpg",
    "b_class/sub-dash/v.jpg",
    "a_class/2.png",
    "a_class/10.png",
    "a_class/.hidden.jpg",
    "C_upper/k.bmp",
    "C_upper/k.gif",
    "readme.jpg",
]
# torchvision 0.29.1's ImageFolder(root, loader=lambda p: p).samples on ORDER_FILES, paths made
# relative (computed once in /work/venv-bench): sorted classes (upper case first), sorted
# os.walk tuples ("sub" < "sub-dash" < "sub/deeper"), sorted names, case-insensitive suffixes.
TORCHVISION_ORDER = [
    ("C_upper/k.bmp", 0),
    ("a_class/.hidden.jpg", 1),
    ("a_class/10.png", 1),
    ("a_class/2.png", 1),
    ("b_class/A.JPG", 2),
    ("b_class/a.jpg", 2),
    ("b_class/z.jpg", 2),
    ("b_class/sub/y.png", 2),
    ("b_class/sub-dash/v.jpg", 2),
    ("b_class/sub/deeper/w.jpg", 2),
    ("b_class/sub2/x.jpeg", 2),
]
