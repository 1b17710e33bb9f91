"""Decoding image files to ``(C, H, W)`` uint8 RGB arrays, with a library made for it.

Two decoders, chosen per file by its content (never by its extension):

* **simplejpeg** (libjpeg-turbo; the ``images`` extra: ``pip install "tinytorch-data[images]"``)
  for JPEG files in YCbCr or grayscale, baseline or progressive. Measured on this project's
  machine (``benchmarks/image_decoders.py``, docs/benchmarks.md) it was the fastest of Pillow,
  Pillow-SIMD, simplejpeg, PyTurboJPEG, OpenCV and torchvision.io: 5.8x Pillow on 32x32 CIFAR
  JPEGs, 1.6x on 500x375 ones, and it releases the GIL while it decodes.
* **Pillow** for everything else (PNG, BMP, TIFF, WebP, GIF..., CMYK/YCCK JPEGs), for JPEGs
  simplejpeg refuses (it is strict about damaged data Pillow accepts), and for every file when
  simplejpeg is not installed or ``decoder="pillow"``.

What both return is what torchvision's default loader gives (``Image.open(f).convert("RGB")``)
as a ``(3, H, W)`` uint8 array: channels in R, G, B order; grayscale is repeated into the three
channels; an alpha channel (RGBA, LA, a palette's transparency) is dropped, not composited; CMYK
is converted by Pillow's formula; 16-bit images follow Pillow's ``convert("RGB")``; an EXIF
orientation tag is not applied (torchvision's loader does not apply it either). The array is
a channels-first *view* of a channels-last buffer (``np.transpose``): index it as ``(C, H, W)``;
``np.stack`` of a batch of them is C-contiguous ``(N, C, H, W)``. Both decoders use
libjpeg-turbo's accurate integer IDCT and fancy upsampling, so a JPEG decodes to the same bytes
on either path when their libjpeg-turbo versions agree (tested); the pixels may differ by a
unit or two across libjpeg-turbo versions, as they do for Pillow itself.

**Decode-time downscaling** (``decode_size=(h, w)``): a JPEG is decoded at 1/2, 1/4 or 1/8 of
its size by libjpeg-turbo's DCT scaling: the largest ``k`` of 2, 4, 8 with ``H >= k * h`` and
``W >= k * w`` (Pillow's ``Image.draft`` rule, applied on both paths, so both give the same
size, ``ceil(H / k) x ceil(W / k)``; e.g. 375x500 with ``decode_size=187`` gives 188x250). It is much
cheaper than decoding in full and resizing, but the pixels are not those of a full decode
followed by a resize (the IDCT does the filtering): training and evaluation should use the same
setting. Other formats are decoded in full. Finer factors (5/8...) were slower than a full
decode here and are not used.

**Decompression bombs**: an image with more than ``max_pixels`` pixels (default: Pillow's
``Image.MAX_IMAGE_PIXELS``, 89,478,485) is refused from its header, before any pixel is
decoded, with :class:`ImageTooLargeError`. Pillow only warns between 1x and 2x its limit; we
refuse, because a warning in a worker process is easily lost. Pillow's own global limit still
applies on its path.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.storage.regular_files import NotRegularFileError, read_regular

__all__ = [
    "IMG_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "DecoderName",
    "ImageDecodeError",
    "ImageDecoder",
    "ImageTooLargeError",
    "decode_image",
    "fast_decoder_available",
    "image_to_chw",
    "read_image",
    "unreadable",
]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""torchvision's ``IMG_EXTENSIONS``: the files ``ImageFolder`` lists by default."""

MAX_IMAGE_PIXELS = 89_478_485
"""Pillow's default ``Image.MAX_IMAGE_PIXELS`` (about 0.25 GiB as RGB): the default limit."""

DecoderName = Literal["auto", "simplejpeg", "pillow"]

_JPEG_MAGIC = b"\xff\xd8"
_SCALES = (8, 4, 2)  # DCT scaling denominators used for decode_size (Pillow's draft() set)


class ImageDecodeError(OSError):
    """An image file could not be read or decoded (truncated, corrupt, not an image, unreadable).

    An ``OSError``, like Pillow's ``UnidentifiedImageError``, so code written for torchvision's
    loader catches it. The message names the file and, from a dataset, the sample index.

    Attributes:
        path: the file, or ``None`` for bytes decoded directly.
        index: the dataset's sample index, or ``None``.
    """

    def __init__(self, message: str, *, path: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:  # keeps path and index across process workers
        return _rebuild_error, (type(self), str(self), self.path, self.index)


def _rebuild_error(cls: type[ImageDecodeError], message: str, path: str | None, index: int | None) -> Any:
    return cls(message, path=path, index=index)


class ImageTooLargeError(ImageDecodeError):
    """An image whose header declares more pixels than allowed: a possible decompression bomb."""


def fast_decoder_available() -> bool:
    """Whether simplejpeg (the ``images`` extra) is installed (looked up once per process)."""
    return _simplejpeg_module() is not None


@dataclass(frozen=True)
class ImageDecoder:
    """How to decode: resolved once (by a dataset's constructor), then called per file.

    Attributes:
        decoder: ``"simplejpeg"`` (JPEGs with simplejpeg, the rest with Pillow) or
            ``"pillow"`` (every file with Pillow). Resolve ``"auto"`` with :meth:`resolve`.
        decode_size: ``(h, w)``: decode JPEGs at 1/k scale, the largest ``k`` of 2, 4, 8 with
            ``H >= k * h`` and ``W >= k * w`` (module docs); ``None`` decodes in full.
        max_pixels: refuse images with more pixels than this; ``None``: no limit of ours.

    Thread-safe and picklable; calls release the GIL while pixels are decoded.
    """

    decoder: Literal["simplejpeg", "pillow"] = "pillow"
    decode_size: tuple[int, int] | None = None
    max_pixels: int | None = MAX_IMAGE_PIXELS

    @classmethod
    def resolve(
        cls,
        decoder: str = "auto",
        decode_size: int | tuple[int, int] | None = None,
        max_pixels: int | None = MAX_IMAGE_PIXELS,
    ) -> ImageDecoder:
        """Check the arguments and pick the decoder (``"auto"``: simplejpeg when installed).

        Raises:
            ValueError: an unknown decoder name, or a size or limit that is not positive.
            ImportError: ``decoder="simplejpeg"`` and it is not installed (the message says how).
        """
        if decoder not in ("auto", "simplejpeg", "pillow"):
            raise ValueError(f"decoder must be 'auto', 'simplejpeg' or 'pillow', got {decoder!r}")
        if decoder == "simplejpeg" and not fast_decoder_available():
            raise ImportError(
                "decoder='simplejpeg' needs the simplejpeg package: pip install "
                '"tinytorch-data[images]" (or pass decoder="auto" to fall back to Pillow)'
            )
        _require_pillow()
        if decoder == "auto":
            decoder = "simplejpeg" if fast_decoder_available() else "pillow"
        return cls(decoder, _check_size(decode_size), _check_limit(max_pixels))  # type: ignore[arg-type]

    def __call__(self, data: bytes | bytearray | memoryview, path: str | None = None) -> NDArray[np.uint8]:
        """Decode one file's bytes to ``(3, H, W)`` uint8 RGB (see the module docs).

        Every exception the decoders raise for the file's content (Pillow's plugins raise
        ``NotImplementedError``, ``struct.error``, ``IndexError``... for damaged files, not only
        ``OSError``) becomes an :class:`ImageDecodeError` naming ``path``, the original as its
        ``__cause__``, so ``on_error="skip"`` skips every bad file. Not ``MemoryError``: with
        ``max_pixels`` bounding what a header may ask for, running out of memory is the
        machine's state (e.g. too many large images decoding at once), not the file's, and
        skipping would hide it.

        Raises:
            ImageTooLargeError: more than ``max_pixels`` pixels.
            ImageDecodeError: empty, truncated, corrupt, or not an image; names ``path``.
            MemoryError: out of memory while decoding.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"an image decoder takes the encoded file's bytes, got {type(data).__name__}; "
                "read a file with read_image(path) (or Path(path).read_bytes())"
            )
        try:
            return self._decode(data, path)
        except (ImageDecodeError, MemoryError):
            raise
        except Exception as e:
            where = path if path is not None else "image data"
            raise _decode_error(where, path, f"{type(e).__name__}: {e}", None) from e

    def _decode(self, data: bytes | bytearray | memoryview, path: str | None) -> NDArray[np.uint8]:
        if self.decoder == "simplejpeg" and data[:2] == _JPEG_MAGIC:
            try:
                hwc = self._simplejpeg(data, path)
            except ImageTooLargeError:
                raise
            except ValueError as e:  # unusual or damaged JPEG: Pillow is more lenient
                return _channels_first(self._pillow(data, path, e))
            if hwc is not None:
                chw: NDArray[np.uint8] = hwc.transpose(2, 0, 1)
                return chw
        if len(data) == 0:
            where = path if path is not None else "image data"
            raise ImageDecodeError(f"{where} is empty (0 bytes): not an image", path=path)
        return _channels_first(self._pillow(data, path, None))

    def _simplejpeg(self, data: Any, path: str | None) -> NDArray[np.uint8] | None:
        """``(H, W, 3)``, or ``None`` for a JPEG that Pillow is to decode (CMYK, YCCK)."""
        simplejpeg = _simplejpeg_module()
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if self.max_pixels is not None and width * height > self.max_pixels:
            self._check_pixels(width, height, path)
        if colorspace == "CMYK" or colorspace == "YCCK":
            return None  # Pillow's CMYK conversion is the reference (torchvision's loader)
        if self.decode_size is None:
            out: NDArray[np.uint8] = simplejpeg.decode_jpeg(data, "RGB")
            return out
        size = self._scaled_size(width, height)
        if size is None:
            out = simplejpeg.decode_jpeg(data, "RGB")
        else:
            out = simplejpeg.decode_jpeg(data, "RGB", min_width=size[0], min_height=size[1])
        return out

    def _pillow(self, data: Any, path: str | None, fast_error: Exception | None) -> Any:
        from PIL import Image, UnidentifiedImageError

        where = path if path is not None else "image data"
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:
            raise ImageTooLargeError(
                f"{where} is refused by Pillow's decompression-bomb limit ({e}); if the file is "
                "trusted, raise PIL.Image.MAX_IMAGE_PIXELS and max_pixels=",
                path=path,
            ) from e
        except UnidentifiedImageError as e:
            raise _decode_error(where, path, "not in any format Pillow reads", fast_error) from e
        except (OSError, ValueError, SyntaxError) as e:
            raise _decode_error(where, path, f"{type(e).__name__}: {e}", fast_error) from e
        with image:
            self._check_pixels(*image.size, path)
            if self.decode_size is not None and image.format == "JPEG" and self._scaled_size(*image.size):
                image.draft("RGB", self.decode_size[::-1])  # Pillow's rule is _scaled_size's
            try:
                rgb = image if image.mode == "RGB" else image.convert("RGB")
                return np.asarray(rgb)
            except (OSError, ValueError, SyntaxError, EOFError) as e:
                raise _decode_error(where, path, f"{type(e).__name__}: {e}", fast_error) from e

    def _check_pixels(self, width: int, height: int, path: str | None) -> None:
        if self.max_pixels is not None and width * height > self.max_pixels:
            where = path if path is not None else "image data"
            raise ImageTooLargeError(
                f"{where} declares {width}x{height} = {width * height:,} pixels, more than the "
                f"limit of {self.max_pixels:,} (a possible decompression bomb); if the file is "
                "trusted, raise the limit with max_pixels= (or max_pixels=None)",
                path=path,
            )

    def _scaled_size(self, width: int, height: int) -> tuple[int, int] | None:
        """``(w, h)`` after the DCT scaling ``decode_size`` allows, or ``None`` for full size."""
        if self.decode_size is None:
            return None
        want_h, want_w = self.decode_size
        for denom in _SCALES:  # the largest reduction that keeps both sides >= the request
            if width // want_w >= denom and height // want_h >= denom:
                return -(-width // denom), -(-height // denom)
        return None


_NOT_LOOKED_UP: Any = object()
_SIMPLEJPEG: Any = _NOT_LOOKED_UP
_SIMPLEJPEG_LOCK = threading.Lock()


def _simplejpeg_module() -> Any:
    """simplejpeg, or ``None`` when it cannot be imported; imported once, on first use.

    Importing this module imports no decoder. The lookup is cached (a failed import costs
    ~0.1 ms, too much per file) and made under a lock, so decode threads starting together
    all see one outcome.
    """
    global _SIMPLEJPEG
    if _SIMPLEJPEG is _NOT_LOOKED_UP:
        with _SIMPLEJPEG_LOCK:
            if _SIMPLEJPEG is _NOT_LOOKED_UP:
                try:
                    import simplejpeg
                except ImportError:
                    _SIMPLEJPEG = None
                else:
                    _SIMPLEJPEG = simplejpeg
    return _SIMPLEJPEG


def _channels_first(hwc: NDArray[np.uint8]) -> NDArray[np.uint8]:
    chw: NDArray[np.uint8] = hwc.transpose(2, 0, 1)
    return chw


def _decode_error(where: str, path: str | None, detail: str, fast_error: Exception | None) -> Exception:
    if fast_error is not None:
        detail += f" (simplejpeg: {fast_error})"
    return ImageDecodeError(
        f"{where} could not be decoded as an image ({detail}); the file is truncated, corrupt "
        "or not an image: replace or remove it (or pass on_error='skip' to the dataset)",
        path=path,
    )


def _check_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in pair):
        raise ValueError(
            f"decode_size must be a positive int or a (height, width) pair of positive ints, got {size!r}; "
            "e.g. decode_size=224 lets a JPEG decode at a reduced scale no smaller than 224x224"
        )
    return pair


def _check_limit(max_pixels: int | None) -> int | None:
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int or None (no limit), got {max_pixels!r}")
    return max_pixels


def _require_pillow() -> None:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ImportError(
            'decoding images needs Pillow: pip install "tinytorch-data[images]" (Pillow and simplejpeg)'
        ) from None


def decode_image(
    data: bytes | bytearray | memoryview,
    *,
    decoder: DecoderName = "auto",
    decode_size: int | tuple[int, int] | None = None,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> NDArray[np.uint8]:
    """Decode an image file's bytes to a ``(3, H, W)`` uint8 RGB array (see the module docs).

    Args:
        data: the encoded file (JPEG, PNG, and every format Pillow reads).
        decoder: ``"auto"`` (simplejpeg for JPEG when installed, Pillow otherwise),
            ``"simplejpeg"`` (the same, but an ``ImportError`` when it is missing) or
            ``"pillow"`` (always Pillow: exactly torchvision's default loader).
        decode_size: ``h`` or ``(h, w)``: let JPEGs decode at a reduced scale no smaller than
            this (module docs: what this changes in the pixels).
        max_pixels: refuse larger images (decompression bombs); ``None`` for no limit.

    Raises:
        ImageTooLargeError, ImageDecodeError: see :meth:`ImageDecoder.__call__`.
    """
    return ImageDecoder.resolve(decoder, decode_size, max_pixels)(data)


def read_image(
    path: str | os.PathLike[str],
    *,
    decoder: DecoderName = "auto",
    decode_size: int | tuple[int, int] | None = None,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> NDArray[np.uint8]:
    """Read and decode one image file to ``(3, H, W)`` uint8 RGB; errors name the file.

    Raises:
        ImageDecodeError: the file cannot be read (missing, a directory, no permission) or
            decoded; ``ImageTooLargeError`` for too many pixels.
    """
    decode = ImageDecoder.resolve(decoder, decode_size, max_pixels)
    name = os.fspath(path)
    return decode(read_file(name), name)


def read_file(path: str) -> bytes:
    """The bytes of ``path``; an unreadable file raises :class:`ImageDecodeError` naming it.

    Only a regular file is read (symlinks followed): a FIFO, device or directory is refused
    before it is opened (:func:`~tinytorch.data.storage.regular_files.read_regular`), so it can
    be skipped like any other bad file instead of hanging or reading forever.
    """
    try:
        return read_regular(path)
    except OSError as e:
        raise unreadable(path, e) from e


def unreadable(path: str, error: OSError) -> ImageDecodeError:
    """The :class:`ImageDecodeError` for a file that cannot be read (``raise ... from error``)."""
    if isinstance(error, NotRegularFileError):
        detail, fix = f"it {error.strerror}", "replace it with an image file or remove it"
    else:
        detail, fix = (
            f"{type(error).__name__}: {error.strerror or error}",
            "check that it exists and is readable",
        )
    return ImageDecodeError(f"{path} could not be read ({detail}); {fix}", path=path)


def image_to_chw(image: Any, path: str | None = None) -> NDArray[Any]:
    """A user loader's result as a ``(C, H, W)`` array (dtype kept).

    Accepts a PIL image (any mode: ``L`` becomes ``(1, H, W)``, ``RGBA`` ``(4, H, W)``; no
    conversion to RGB, which is the loader's business, as in torchvision's ``pil_loader``), or
    anything ``numpy.asarray`` takes (a numpy array or a CPU tensor) already ``(C, H, W)``, or
    ``(H, W)`` (becomes ``(1, H, W)``).

    Raises:
        TypeError: an array that is not 2-D or 3-D, or looks channels-last ``(H, W, C)``;
            the message says how to fix the loader.
    """
    where = path if path is not None else "the image"
    if hasattr(image, "getbands") and hasattr(image, "mode"):  # a PIL image
        array = np.asarray(image)
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    array = np.asarray(image)
    if array.ndim == 2:
        return array[None]
    if array.ndim != 3:
        raise TypeError(
            f"the loader returned an array of shape {array.shape} for {where}; it must return a PIL "
            "image or a (C, H, W) array"
        )
    if array.shape[0] not in (1, 3, 4) and array.shape[-1] in (1, 3, 4):
        raise TypeError(
            f"the loader returned an array of shape {array.shape} for {where}, which looks "
            "channels-last (H, W, C); return array.transpose(2, 0, 1) (and for OpenCV's BGR, "
            "array[..., ::-1] first), or a PIL image"
        )
    return array
