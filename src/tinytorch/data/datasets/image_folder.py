"""``ImageFolder``: a folder of image files, one sub-folder per class (torchvision's layout).

::

    root/cat/001.jpg      -> (image, 0)
    root/cat/x/002.png    -> (image, 0)    sub-folders of a class belong to it
    root/dog/003.jpeg     -> (image, 1)

The listing follows torchvision's ``find_classes`` and ``make_dataset`` exactly (same classes,
same indices, same file order, same errors), so a torch script switches by changing its import.
What differs is the read path: a batch's files are read and decoded in the dataset's own thread
pool with the GIL released (:mod:`tinytorch.data.storage.decode`: simplejpeg for JPEG, Pillow
for the rest), and a batch of images of one size comes back stacked, so ``default_collate`` has
nothing left to do. Paths are stored packed (no Python object per file, so forked workers keep
sharing them) and ``targets`` is an int64 array.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.encoded_images import EncodedImageDataset, OnError, SkippedImageWarning
from tinytorch.data.datasets.folder_listing import find_classes, make_dataset
from tinytorch.data.storage.decode import (
    IMG_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    DecoderName,
    ImageDecodeError,
    ImageDecoder,
    image_to_chw,
    read_file,
    unreadable,
)
from tinytorch.data.storage.regular_files import check_regular

__all__ = ["ImageFolder", "SkippedImageWarning"]


class ImageFolder(EncodedImageDataset):
    """Images in ``root/<class>/**/<file>``, labelled by class folder (torchvision's ``ImageFolder``).

    Args:
        root: the folder of class folders.
        transform: applied to each image ``(3, H, W)`` uint8, per sample, as in torchvision. It
            runs in the decode threads right after its file is decoded (so it must be
            thread-safe; ``num_threads=0`` runs it in the loading thread), with the sample's own
            generator from :func:`get_batch_context` (position = its place in the batch). Use
            it to bring images of different sizes to one (a resize or crop); for work on
            same-size images, the loader's vectorized ``batch_transform`` is cheaper.
        target_transform: applied to each label (an ``int``).
        loader: ``loader(path) -> image`` replaces the built-in decoder. It may return a PIL
            image (converted to an array as it is: its mode is the loader's choice, e.g.
            torchvision's ``pil_loader`` gives RGB) or a ``(C, H, W)`` array / tensor. It is
            called from the decode threads, so it must be thread-safe (``num_threads=0``
            calls it in the loading thread). ``decode_size``, ``max_pixels`` and ``decoder``
            do not apply to it.
        is_valid_file: ``f(path) -> bool`` selects the files instead of ``extensions``.
        allow_empty: keep class folders with no valid file (torchvision raises by default).
        extensions: lower-case suffixes of the files to list; default
            :data:`~tinytorch.data.storage.decode.IMG_EXTENSIONS` (torchvision's), or none
            when ``is_valid_file`` is given.
        decoder: ``"auto"`` (simplejpeg for JPEG when installed, else Pillow), ``"simplejpeg"``
            or ``"pillow"`` (exactly torchvision's default loader): see
            :mod:`tinytorch.data.storage.decode` for what each returns.
        decode_size: ``h`` or ``(h, w)``: a JPEG of ``H x W`` decodes at 1/k scale, the largest
            ``k`` of 2, 4, 8 with ``H >= k * h`` and ``W >= k * w`` (e.g. ``h, w`` the output
            size of a later ``Resize`` or ``RandomResizedCrop``): much faster for large photos,
            not the same pixels as a full decode followed by a resize. ``None`` (default): full
            size.
        max_pixels: images with more pixels are refused (decompression bombs); ``None``: no limit.
        on_error: what a file that cannot be read or decoded (or is not a regular file: a
            FIFO, device or directory is refused before it is opened) does in a batch read
            (``__getitems__``): ``"raise"`` (default) raises :class:`ImageDecodeError` naming the
            file and the sample index; ``"skip"`` leaves the sample out, so the batch is shorter
            (never filled with another sample), warns with :class:`SkippedImageWarning` and adds
            the count to the batch context's ``skipped`` (the loader's statistics). ``ds[i]``
            always raises: a single sample cannot be skipped.
        num_threads: decode threads of this dataset (``None``: the cores available, at most 8,
            and in each of a loader's ``n`` process workers ``cores // n`` of them, so workers do
            not oversubscribe the cores; ``0`` or ``1``: decode in the calling thread). Started at
            the first batch read, stopped by :meth:`close` (or ``with``, or garbage collection);
            never pickled to workers.

    Attributes:
        classes: class names, sorted. ``class_to_idx``: name -> index.
        samples / imgs: ``[(path, class_index), ...]`` in file order (a read-only list built
            on first use; assigning a new list re-labels the dataset, as with torchvision).
        targets: ``(N,)`` int64 class indices, a read-only array (torchvision: a list).
            Assigning a new sequence relabels the samples that are read (torchvision's reads
            keep using ``samples`` and ignore it).

    ``ds[i]`` is ``(image, target)``: image ``(3, H, W)`` uint8 RGB (channels first, R, G, B;
    a view of the decoder's channels-last buffer), target ``int``. ``ds.__getitems__(indices)``
    decodes the files in parallel and returns :class:`StackedSamples` (images
    ``(N, 3, H, W)`` uint8, targets ``(N,)`` int64) when all images share a shape and no
    ``target_transform`` is set, else a list of ``(image, target)``. Decoding uses no random
    numbers: a batch's bytes depend only on the files and the settings, never on
    ``num_threads`` or the loader's workers.

    Raises:
        FileNotFoundError: ``root`` missing or without class folders, or a class without valid
            files (unless ``allow_empty``).
        ValueError: bad arguments; an extension Pillow cannot decode (without ``loader``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        loader: Callable[[str], Any] | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
        *,
        extensions: str | Iterable[str] | None = None,
        decoder: DecoderName = "auto",
        decode_size: int | tuple[int, int] | None = None,
        max_pixels: int | None = MAX_IMAGE_PIXELS,
        on_error: OnError = "raise",
        num_threads: int | None = None,
    ) -> None:
        if extensions is None and is_valid_file is None:
            extensions = IMG_EXTENSIONS
        suffixes = _check_extensions(extensions, decodable=loader is None)
        decode = ImageDecoder.resolve(decoder, decode_size, max_pixels) if loader is None else None
        self._setup(transform, target_transform, decode, on_error, num_threads)
        self.root = os.path.expanduser(os.fspath(root))
        self.loader = loader
        self.extensions = suffixes
        self.classes, self.class_to_idx = find_classes(self.root)
        self.samples = make_dataset(
            self.root, self.class_to_idx, suffixes, is_valid_file=is_valid_file, allow_empty=allow_empty
        )

    _samples: list[tuple[str, int]] | None
    _path_bytes: bytes
    _path_offsets: NDArray[np.int64]
    _targets: NDArray[np.int64]

    # -- torchvision's attributes -------------------------------------------------------

    @property
    def samples(self) -> list[tuple[str, int]]:
        """``[(path, class_index), ...]``: a read-only list, built on first use.

        Changing it in place raises (the dataset would not see the change); assign a new list
        instead (``ds.samples = [s for s in ds.samples if ...]``), as with torchvision.
        """
        if self._samples is None:
            paths = [self._path(i) for i in range(len(self))]
            self._samples = _ReadOnlyList(zip(paths, self._targets.tolist(), strict=True))
        return self._samples

    @samples.setter
    def samples(self, samples: Sequence[tuple[str, int]]) -> None:
        pairs = [(os.fspath(p), int(t)) for p, t in samples]
        # All paths in one bytes object plus offsets: no Python object per file, so forked
        # workers keep sharing the pages (docs/architecture.md, "Copy-on-read"); os.fsencode
        # keeps names that are not valid UTF-8.
        encoded = [os.fsencode(p) for p, _ in pairs]
        self._path_bytes = b"".join(encoded)
        self._path_offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=self._path_offsets[1:])
        labels = np.array([t for _, t in pairs], dtype=np.int64)
        labels.setflags(write=False)
        self._targets = labels
        self._samples = None

    @property
    def targets(self) -> NDArray[np.int64]:
        """``(N,)`` int64 class indices (read-only array; assign a new sequence to relabel)."""
        return self._targets

    @targets.setter
    def targets(self, targets: Sequence[int] | NDArray[np.integer]) -> None:
        # Unlike torchvision (whose reads use samples[i][1] and ignore a new targets), the
        # labels read are these, so relabelling works as it reads.
        labels = np.array(targets, dtype=np.int64)
        if labels.shape != (len(self),):
            raise ValueError(
                f"ImageFolder.targets needs one label per sample, shape ({len(self)},); got shape "
                f"{labels.shape}"
            )
        labels.setflags(write=False)
        self._targets = labels
        self._samples = None

    @property
    def imgs(self) -> list[tuple[str, int]]:
        """The same list as :attr:`samples` (torchvision's older name)."""
        return self.samples

    @imgs.setter
    def imgs(self, samples: Sequence[tuple[str, int]]) -> None:
        self.samples = samples

    # -- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._path_offsets) - 1

    def _path(self, i: int) -> str:
        return os.fsdecode(self._path_bytes[self._path_offsets[i] : self._path_offsets[i + 1]])

    def _sources(self, idx: NDArray[np.intp]) -> tuple[list[str], NDArray[np.int64]]:
        starts, ends = self._path_offsets[idx].tolist(), self._path_offsets[idx + 1].tolist()
        blob = self._path_bytes
        return [os.fsdecode(blob[a:b]) for a, b in zip(starts, ends, strict=True)], self._targets[idx]

    def _load(self, path: str) -> Any:
        """One file's image, or the :class:`ImageDecodeError` it raised (runs in the decode threads)."""
        if self.loader is None:
            assert self.decode is not None
            try:
                return self.decode(read_file(path), path)
            except ImageDecodeError as e:
                return e
        try:
            check_regular(path)  # a FIFO or device would hang the loader or never end
        except OSError as e:
            error = unreadable(path, e)
            error.__cause__ = e
            return error
        try:
            image = self.loader(path)
        except _LOADER_FILE_ERRORS as e:
            error = ImageDecodeError(f"the loader failed on {path}: {type(e).__name__}: {e}", path=path)
            error.__cause__ = e
            return error
        return image_to_chw(image, path)  # a wrong return type is a bug, never skipped

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_samples"] = None  # rebuilt on demand; the packed paths travel instead
        return state

    def __repr__(self) -> str:
        return (
            f"ImageFolder(root={self.root!r}, {len(self)} images, {len(self.classes)} classes, "
            f"decoder={'loader' if self.decode is None else self.decode.decoder!r}, "
            f"num_threads={self.num_threads})"
        )


# What a loader (Pillow's, as torchvision's pil_loader uses it) raises for a bad file: these become
# ImageDecodeError (so on_error="skip" skips the file). Others (TypeError, AttributeError...) are
# taken for bugs in the loader and raised as they are: skipping would hide them.
_LOADER_FILE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, NotImplementedError, struct.error)


class _ReadOnlyList(list):  # type: ignore[type-arg]
    """A list that refuses changes in place, saying what to do instead."""

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise TypeError(
            "ImageFolder.samples cannot be changed in place (the dataset would not see it); "
            "assign a new list instead: ds.samples = [s for s in ds.samples if ...]"
        )

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse


def _check_extensions(
    extensions: str | Iterable[str] | None, *, decodable: bool
) -> str | tuple[str, ...] | None:
    """The suffixes as given (torchvision's matching), each checked to be one Pillow decodes."""
    if extensions is None:
        return None
    suffixes = extensions if isinstance(extensions, str) else tuple(extensions)
    items = (suffixes,) if isinstance(suffixes, str) else suffixes
    if not items or not all(isinstance(s, str) and s for s in items):
        raise ValueError(f"extensions must be non-empty strings such as '.jpg', got {extensions!r}")
    if decodable:
        from PIL import Image

        known = set(Image.registered_extensions())
        unknown = [s for s in items if "." + s.lower().rsplit(".", 1)[-1] not in known]
        if unknown:
            raise ValueError(
                f"ImageFolder cannot decode files ending in {', '.join(map(repr, unknown))}: Pillow "
                f"{_pillow_version()} reads {', '.join(sorted(s for s in known if s in _COMMON))} and "
                "more. Pass loader= a function that reads them (returning a PIL image or a "
                "(C, H, W) array), install a Pillow plugin for the format, or leave them out of "
                "extensions="
            )
    return suffixes


_COMMON = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _pillow_version() -> str:
    import PIL

    return str(PIL.__version__)
