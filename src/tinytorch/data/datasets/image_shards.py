"""Image folders as encoded shards: ``write_image_shards`` and ``ImageShards``.

A folder of image files (``ImageFolder``'s layout) becomes a few large shard files that hold
each file's bytes as they are, its label and its path, plus the class names in the manifest's
metadata (``tinytorch-data convert imagefolder SRC DST`` runs :func:`write_image_shards`)::

    field    kind                  value
    image    bytes                 the file's bytes, unchanged (JPEG, PNG, ...)
    label    int64                 the class index (ImageFolder's target)
    path     str                   the file's path relative to the folder (for messages)
    manifest metadata["classes"]   the class names, ``classes[label]``

:class:`ImageShards` reads them back and decodes in the dataset's threads exactly as
:class:`~tinytorch.data.ImageFolder` decodes the files (the same decoder, the same
per-sample ``transform`` semantics, the same ``on_error`` rules: both are
:class:`~tinytorch.data.datasets.encoded_images.EncodedImageDataset`), so its samples are
byte-identical to the folder's. What changes is storage: a batch's encoded images are one
gather from memory-mapped shards instead of one ``open`` + ``read`` per file, the shards stream
sequentially with :class:`~tinytorch.data.WindowedShuffleSampler` (a window of shards at a time,
the next one read ahead), and a dataset of a million files is a few dozen files to copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.encoded_images import EncodedImageDataset, OnError
from tinytorch.data.datasets.image_folder import ImageFolder
from tinytorch.data.datasets.sharded import ShardedDataset, write_shards
from tinytorch.data.storage.decode import (
    MAX_IMAGE_PIXELS,
    DecoderName,
    ImageDecodeError,
    ImageDecoder,
    read_file,
)
from tinytorch.data.storage.regular_files import NotRegularFileError, open_regular
from tinytorch.data.storage.shards import CorruptShardError, Manifest, ShardError
from tinytorch.data.validate import check_int

__all__ = ["ImageShards", "check_outside", "write_image_shards"]

IMAGE, LABEL, PATH = "image", "label", "path"
_RECONVERT = "Convert the folder again (tinytorch-data convert imagefolder SRC DST --overwrite)"
_HOW = (
    "write image shards with write_image_shards() or `tinytorch-data convert imagefolder SRC DST`, "
    "or give write_shards() dict samples {'image': bytes, 'label': int} and "
    "metadata={'classes': [...]}"
)


def write_image_shards(
    folder: ImageFolder | str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    samples_per_shard: int | None = None,
    bytes_per_shard: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    shuffle_seed: int | None = None,
) -> Manifest:
    """Write an image folder's files as shards that :class:`ImageShards` reads.

    Each file's bytes are stored as they are (nothing is decoded or re-encoded: a bad file
    stays bad, and is reported when read, as the folder's would be), with its label and its
    path relative to the folder, in the folder's order (sample ``i`` of the shards is sample
    ``i`` of the folder) or, with ``shuffle_seed``, in a random order; the class names go in
    the manifest's metadata. The write is atomic (see :func:`~tinytorch.data.write_shards`).

    The folder's order is sorted by class, so each shard then holds one class or a few: fine
    for random access (``shuffle=True``, ``IndexShuffleSampler``), but a
    :class:`~tinytorch.data.WindowedShuffleSampler` window of ``k`` shards would mix only a few
    classes per batch. For streaming, write with ``shuffle_seed`` (WebDataset's advice too).

    Args:
        folder: an :class:`~tinytorch.data.ImageFolder` (its ``samples``, ``classes`` and
            ``root``; its ``loader``, transforms and decoder settings do not apply), or the
            path of one (listed with ``ImageFolder``'s defaults).
        directory: where the shards go: new, empty, or (with ``overwrite``) a shard dataset.
        samples_per_shard / bytes_per_shard: when a shard is full (default 64 MiB).
        overwrite: replace a shard dataset already in ``directory``.
        progress: a tqdm bar; ``None`` shows it when stderr is a terminal.
        shuffle_seed: write the files in the order ``numpy.random.default_rng(shuffle_seed)
            .permutation(len(folder))`` (recorded in the metadata); ``None``: the folder's order.

    Returns:
        The manifest written.

    Raises:
        FileNotFoundError: no folder, or ImageFolder's listing errors (an empty class).
        ImageDecodeError: a file could not be read (it names the file).
        FileExistsError, OSError: as :func:`~tinytorch.data.write_shards`.
        ValueError: ``directory`` is ``folder`` or inside it (it would become a class).
    """
    source = folder if isinstance(folder, ImageFolder) else ImageFolder(folder)
    root = os.path.abspath(source.root)
    check_outside(root, directory)
    classes = _classes_by_index(source)
    metadata: dict[str, Any] = {"classes": classes}
    order = None
    if shuffle_seed is not None:
        seed = check_int(shuffle_seed, "shuffle_seed", minimum=0)
        order = np.random.default_rng(seed).permutation(len(source))
        metadata["shuffle_seed"] = seed
    return write_shards(
        _FolderRecords(source, root, order),
        directory,
        samples_per_shard=samples_per_shard,
        bytes_per_shard=bytes_per_shard,
        overwrite=overwrite,
        progress=progress,
        metadata=metadata,
    )


def check_outside(folder: str | os.PathLike[str], directory: str | os.PathLike[str]) -> None:
    """Refuse a shard ``directory`` that is ``folder`` or inside it (it would be listed as a class).

    Raises:
        ValueError: naming both.
    """
    root = os.path.realpath(folder)
    target = os.path.realpath(directory)
    if target == root or target.startswith(root.rstrip(os.sep) + os.sep):
        raise ValueError(
            f"the shards cannot go into {directory}: it is inside the image folder {folder}, where "
            "it would be listed as a class; choose a directory outside it"
        )


def _classes_by_index(folder: ImageFolder) -> list[str]:
    """``classes[i]`` is the name of label ``i`` (checked: labels ``0..C-1``, one name each)."""
    by_index = sorted((i, name) for name, i in folder.class_to_idx.items())
    if [i for i, _ in by_index] != list(range(len(by_index))):
        raise ValueError(
            f"the folder's class_to_idx must number its classes 0..{len(by_index) - 1}, got "
            f"{dict(folder.class_to_idx)}"
        )
    return [name for _, name in by_index]


class _FolderRecords:
    """The folder's samples as shard records, read file by file (has ``len``: the bar's total)."""

    def __init__(self, folder: ImageFolder, root: str, order: NDArray[np.int64] | None) -> None:
        self.folder, self.root, self.order = folder, root, order

    def __len__(self) -> int:
        return len(self.folder)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        samples = self.folder.samples
        for i in range(len(samples)) if self.order is None else self.order.tolist():
            path, label = samples[i]
            relative = os.path.relpath(os.path.abspath(path), self.root)
            # Stored as UTF-8 for messages: a name that is not valid UTF-8 keeps its bytes as \x..
            name = os.fsencode(relative).decode("utf-8", "backslashreplace")
            yield {IMAGE: read_file(path), LABEL: np.int64(label), PATH: name}


class ImageShards(EncodedImageDataset):
    """Images stored encoded in shards (:func:`write_image_shards`), decoded as ``ImageFolder``
    decodes the files.

    ``ImageShards(dst)`` over ``tinytorch-data convert imagefolder src dst`` returns the same
    samples, byte for byte, as ``ImageFolder(src)`` with the same settings: same classes and
    labels, same order, same decoder, same ``transform`` semantics, same errors for bad images.
    (Written with ``--shuffle SEED`` / ``shuffle_seed``, sample ``i`` is the folder's sample
    ``default_rng(SEED).permutation(n)[i]``.)

    Args:
        directory: the shard directory.
        transform, target_transform: per sample, as in :class:`~tinytorch.data.ImageFolder`
            (``transform`` runs in the decode threads with the sample's own generator).
        decoder, decode_size, max_pixels: as in ``ImageFolder`` (the same decoder).
        on_error: ``"raise"`` (default) or ``"skip"``, as in ``ImageFolder``; a stored image
            that does not decode raises :class:`ImageDecodeError` naming the shard, the row
            and the original file.
        num_threads: decode threads, as in ``ImageFolder``.
        verify, max_open_shards: as in :class:`~tinytorch.data.ShardedDataset` (what is
            checked before a shard's first read; how many shards stay in use: set it, at least
            twice the window, for streaming with :class:`~tinytorch.data.WindowedShuffleSampler`).

    Attributes:
        classes: class names, ``classes[label]``. ``class_to_idx``: name -> label.
        targets: ``(N,)`` int64 labels, read-only (read from the shards' label regions on first
            use).
        shards: the underlying :class:`~tinytorch.data.ShardedDataset` (its ``shard_starts``,
            ``num_shards``, ``read_ahead`` serve the windowed shuffle).

    ``ds[i]`` is ``(image, target)``: image ``(3, H, W)`` uint8 RGB, target ``int``;
    ``ds.__getitems__(indices)`` reads the batch's encoded images with one gather, decodes them
    in parallel, and returns ``StackedSamples`` (``(N, 3, H, W)`` uint8, ``(N,)`` int64) when
    the images share a shape and no ``target_transform`` is set, else a list of samples.

    Raises:
        ShardError: not a shard dataset, or one without the image fields or the class names.
        CorruptShardError: a manifest or shard that fails its checks (see ``ShardedDataset``),
            a label outside ``classes``, or class names that are not a list of strings.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        *,
        decoder: DecoderName = "auto",
        decode_size: int | tuple[int, int] | None = None,
        max_pixels: int | None = MAX_IMAGE_PIXELS,
        on_error: OnError = "raise",
        num_threads: int | None = None,
        verify: str | bool = "crc32",
        max_open_shards: int | None = None,
    ) -> None:
        decode = ImageDecoder.resolve(decoder, decode_size, max_pixels)
        self._setup(transform, target_transform, decode, on_error, num_threads)
        self.shards = ShardedDataset(directory, verify=verify, max_open_shards=max_open_shards)
        self.directory = self.shards.directory
        self.classes = _check_image_manifest(self.shards.manifest, self.directory / "manifest.json")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self._targets: NDArray[np.int64] | None = None

    # -- attributes ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.shards)

    @property
    def targets(self) -> NDArray[np.int64]:
        """``(N,)`` int64 labels, read-only: each shard's label region read once (8 bytes a
        sample; the images are not read)."""
        if self._targets is None:
            parts = [self._shard_labels(k) for k in range(self.shards.num_shards)]
            labels = np.concatenate(parts).astype(np.int64, copy=False)
            labels.setflags(write=False)
            self._targets = labels
        return self._targets

    @property
    def shard_starts(self) -> NDArray[np.int64]:
        """``(num_shards + 1,)``: first sample of each shard, then ``len(self)`` (for samplers)."""
        return self.shards.shard_starts

    @property
    def num_shards(self) -> int:
        return self.shards.num_shards

    def read_ahead(self, shards: Sequence[int]) -> Any:
        """Read ``shards`` into the page cache in the background (:meth:`ShardedDataset.read_ahead`)."""
        return self.shards.read_ahead(shards)

    def verify(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Check everything :meth:`ShardedDataset.verify` checks (every shard's size, layout
        and checksums, the manifest with its class names) and that every label names a class.

        Args:
            progress: called with ``(bytes done, bytes in all)`` after each shard.

        Raises:
            CorruptShardError: the first problem, naming the file and the field.
        """
        self.shards.verify(progress)
        for k in range(self.shards.num_shards):
            self._shard_labels(k)

    # -- reading ------------------------------------------------------------------------------

    def _sources(self, idx: NDArray[np.intp]) -> tuple[list[tuple[bytes, int]], NDArray[np.int64]]:
        columns = self.shards.__getitems__(idx).columns
        labels = np.asarray(columns[LABEL]).astype(np.int64, copy=False)
        self._check_labels(labels, idx)
        return list(zip(columns[IMAGE], idx.tolist(), strict=True)), labels

    def _load(self, source: tuple[bytes, int]) -> Any:
        """Decode one stored image, or return the :class:`ImageDecodeError` (runs in the threads)."""
        assert self.decode is not None
        data, index = source
        try:
            return self.decode(data)
        except ImageDecodeError:
            # Only now is the name worth building (shard, row, original file): decode again
            # with it, which raises the same error (decoding is a function of the bytes), named.
            try:
                return self.decode(data, self._where(index))
            except ImageDecodeError as e:
                return e

    def _where(self, index: int) -> str:
        """``DIR/shard-00003.tts row 17 (from cat/001.jpg)``: where sample ``index``'s bytes are."""
        shard, row = (int(a[0]) for a in self.shards.index.locate(np.array([index])))
        name = str(self.directory / self.shards.manifest.shards[shard].file)
        origin = ""
        if any(f.name == PATH for f in self.shards.manifest.fields):
            origin = f" (from {self.shards[index][PATH]})"
        return f"{name} row {row}{origin}"

    def _check_labels(self, labels: NDArray[np.int64], idx: NDArray[np.intp]) -> None:
        bad = (labels < 0) | (labels >= len(self.classes))
        if bad.any():
            p = int(np.flatnonzero(bad)[0])
            raise CorruptShardError(
                self._where(int(idx[p])),
                f"field {LABEL!r}",
                f"a class index in [0, {len(self.classes)}) (the manifest has {len(self.classes)} classes)",
                str(int(labels[p])),
                _RECONVERT,
            )

    def _shard_labels(self, k: int) -> NDArray[np.int64]:
        """Shard ``k``'s labels read straight from its file (checked against ``classes``)."""
        info = self.shards.manifest.shards[k]
        field = next(f for f in self.shards.manifest.fields if f.name == LABEL)
        dtype = np.dtype(field.dtype)
        path = self.directory / info.file
        try:
            fd = open_regular(path)  # the layout was checked against the file's size at open
        except NotRegularFileError as e:
            raise CorruptShardError(path, "file type", "a regular file", e.kind) from e
        try:
            raw = os.pread(fd, info.samples * dtype.itemsize, info.offsets[LABEL])
        finally:
            os.close(fd)
        if len(raw) != info.samples * dtype.itemsize:
            raise CorruptShardError(
                path, "size", f"at least {info.offsets[LABEL] + info.samples * dtype.itemsize} bytes", "less"
            )
        labels = np.frombuffer(raw, dtype=dtype).astype(np.int64)
        self._check_labels(labels, self.shards.shard_starts[k] + np.arange(info.samples))
        return labels

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the decode threads and release the shards' mappings (both reopen on the next read)."""
        super().close()
        self.shards.close()

    def __repr__(self) -> str:
        assert self.decode is not None
        return (
            f"ImageShards({str(self.directory)!r}, {len(self)} images in {self.num_shards} shards, "
            f"{len(self.classes)} classes, decoder={self.decode.decoder!r}, num_threads={self.num_threads})"
        )


def _check_image_manifest(manifest: Manifest, path: Path) -> list[str]:
    """The class names of an image shard dataset, after checking its fields and metadata.

    Raises:
        ShardError: the fields or the class names are missing (not an image shard dataset).
        CorruptShardError: they are there but of the wrong kind.
    """
    fields = {f.name: f for f in manifest.fields}
    image, label = fields.get(IMAGE), fields.get(LABEL)
    if manifest.structure != "dict" or image is None or label is None:
        raise ShardError(
            f"{path.parent} holds shards of fields {sorted(fields)} ({manifest.structure} samples), "
            f"not encoded images: ImageShards reads dict samples with an {IMAGE!r} and a {LABEL!r} "
            f"field. To make them, {_HOW}"
        )
    if image.kind != "bytes":
        raise CorruptShardError(path, f"field {IMAGE!r}", "kind 'bytes' (encoded images)", repr(image.kind))
    if label.kind != "array" or label.shape != () or np.dtype(label.dtype).kind not in "iu":
        raise CorruptShardError(
            path,
            f"field {LABEL!r}",
            "one integer per sample",
            f"{label.kind} {np.dtype(label.dtype) if label.kind == 'array' else ''} {label.shape}",
        )
    if "classes" not in manifest.metadata:
        raise ShardError(f"{path} has no class names (metadata 'classes'); {_HOW}")
    classes = manifest.metadata["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise CorruptShardError(path, "metadata['classes']", "a list of class names", repr(classes)[:80])
    if len(set(classes)) != len(classes):
        raise CorruptShardError(path, "metadata['classes']", "distinct class names", repr(classes)[:80])
    return list(classes)
