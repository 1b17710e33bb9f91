"""CIFAR-10 and CIFAR-100, downloaded with verification and cached for instant reloads.

The files come from :func:`~tinytorch.data.storage.cifar_prepare.prepare_cifar`, cheapest source
first: the memory-mapped array cache, the extracted files, the archive in ``root``, a download.
See :class:`CIFAR10Dataset` for exactly what is checked when.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.base import Dataset, map_samples, timed_sample_transform
from tinytorch.data.datasets.indexing import check_index, check_indices
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.seeding import draws_from_global_rngs
from tinytorch.data.storage.cifar_format import CIFAR10, CIFAR100, CifarSpec, CifarSplit
from tinytorch.data.storage.cifar_prepare import (
    CACHE_DIR,
    open_cache,
    prepare_cifar,
    prepare_source,
    resolve_source,
)
from tinytorch.data.storage.integrity import CorruptDatasetError
from tinytorch.data.validate import check_bool

__all__ = ["CACHE_DIR", "CIFAR10Dataset", "CIFAR100Dataset", "prepare_cifar"]


class CIFAR10Dataset(Dataset[tuple[NDArray[np.uint8], int]]):
    """CIFAR-10: 60,000 32x32 colour images in 10 classes (50,000 train, 10,000 test).

    Args:
        root: directory holding (or to receive) the archive and the extracted files.
        train: the training split (50,000 images) or the test split (10,000).
        download: download the archive when it is not in ``root``, and repair extracted files
            that changed (below).
        transform: applied to each image, ``(3, 32, 32) uint8`` in, per sample.
        url: archive address (a mirror); default ``$TINYTORCH_CIFAR10_URL`` or the official one.
        md5: the archive's MD5 (32 hex digits); default ``$TINYTORCH_CIFAR10_MD5`` or the
            official one.
        target_transform: applied to each label (an int), per sample.
        progress: download progress bar; ``None`` shows it when stderr is a terminal.

    Attributes:
        data: ``(N, 3, 32, 32)`` uint8, C-contiguous, read-only (memory-mapped from the cache).
        targets: ``(N,)`` int64 class indices; ``labels`` is the same array.
        classes: the class names, ``classes[targets[i]]``.

    ``dataset[i]`` is ``(image (3, 32, 32) uint8, label int)``. ``__getitems__`` reads a batch
    with one ``np.take`` when there are no per-sample transforms.

    What is checked, and when:

    - **The archive** ``root/cifar-10-python.tar.gz``: its MD5, whenever it is about to be
      extracted from. One that does not match is *never deleted or replaced*, with or without
      ``download``: :class:`~tinytorch.data.ChecksumError` gives both checksums, the path and the
      fix (``md5=`` / ``$TINYTORCH_CIFAR10_MD5`` for a mirror's archive). A download goes to
      ``<archive>.part`` and is moved into place only after its MD5 matched; a ``.part`` that does
      not match is the one file removed. Members are checked before anything is written (no
      absolute paths, ``..``, links or devices), and the folder appears only when complete.
    - **The extracted files** (``root/cifar-10-batches-py/``): size and SHA-256 of each, recorded
      from the archive at extraction (``tinytorch-cache/files.json``), checked whenever the cache
      is built, i.e. when a file's size or modification time differs from the cache's record of
      them; then parsed with an unpickler that refuses anything but numpy arrays, and checked
      for shape, dtype, counts and label range. A file that is missing or differs is restored
      from the verified archive with ``download=True``; without it the error names the file.
    - **The cache** (``tinytorch-cache/{train,test}/``), at every construction: the manifest,
      each file's size and ``.npy`` header, the labels' range (vectorized) and the class names;
      the CRC-32 of every file (recorded when it was written) whenever a ``stat`` shows the file
      is not the one verified last time (first open after a build or a copy, any write,
      truncation, replacement or ``touch``): a full read of the training split's 150 MB, tens of
      milliseconds; later constructions cost a ``stat`` per file (well under a millisecond). A
      cache that fails is rebuilt from the verified files, with a ``RuntimeWarning`` naming the
      file. Bit rot on the disk below the filesystem changes no ``stat`` and is not caught after
      the first check (the labels' range still is); delete ``tinytorch-cache`` to rebuild.
    - **While mapped**: :meth:`check_mapped_files` tells whether a cache file changed size
      under the mapping (a truncated mapped file kills the reader with SIGBUS).

    Every file is written to a temporary sibling, fsynced and renamed into place, so a failure
    never leaves a partial file or removes a good one.

    Raises:
        FileNotFoundError: the data (or an extracted file) is not in ``root`` and ``download`` is
            False.
        ChecksumError: the archive in ``root``, or the downloaded one, has another MD5.
        DownloadError: the download failed (the message says how to supply the archive by hand).
        CorruptDatasetError: an extracted file changed and ``download`` is False, or a file is
            malformed; ``path`` names it.
        ForbiddenPickleError, UnsafeArchiveError: a hostile file, named.
        NotADirectoryError, TypeError, ValueError: bad ``root``, ``url``, ``md5``, ``train`` or
            ``download``.
    """

    spec: CifarSpec = CIFAR10

    def __init__(
        self,
        root: str | os.PathLike[str] = "./data",
        train: bool = True,
        download: bool = True,
        transform: Callable[[Any], Any] | None = None,
        url: str | None = None,
        md5: str | None = None,
        *,
        target_transform: Callable[[Any], Any] | None = None,
        progress: bool | None = None,
    ) -> None:
        train = check_bool(train, "train")
        download = check_bool(download, "download")
        self._source = resolve_source(self.spec, root, url, md5)  # checks root, url, md5
        self.root = Path(root)
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        self._use(prepare_source(self._source, train=train, download_ok=download, progress=progress))

    def _use(self, split: CifarSplit) -> None:
        self.data: NDArray[np.uint8] = split.images
        self.targets: NDArray[np.int64] = split.labels[self.spec.label_keys[0]]
        self.classes: list[str] = split.names[self.spec.names_keys[0]]
        self._split = split

    def check_mapped_files(self) -> None:
        """Raise if a memory-mapped cache file changed size since it was mapped.

        Cheap (one ``fstat`` per file); for a process that died of SIGBUS, or to check before
        an epoch. Nothing happens when the arrays are in memory (read-only ``root``).

        Raises:
            CorruptDatasetError: names the file and both sizes (``path`` is the file).
        """
        for mapped in self._split.files:
            mapped.check_size()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (e.g. for spawned workers) as the path of its cache, mapped again on unpickling.

        The arrays travel by value instead when they are not the cache's (in memory, or replaced).
        """
        state = dict(self.__dict__)
        split = self._split
        mapped = (
            bool(split.files)
            and self.data is split.images
            and self.targets is split.labels[self.spec.label_keys[0]]
        )
        if mapped:
            for name in ("data", "targets", "_split"):
                state.pop(name, None)
            state["_remap"] = True
        else:
            state["_split"] = CifarSplit(split.images, split.labels, split.names)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        remap = state.pop("_remap", False)
        self.__dict__.update(state)
        if remap:
            split = open_cache(self._source, self.train)
            if split is None:
                raise CorruptDatasetError(
                    f"the cache in {self._source.cache(self.train)} no longer matches the extracted "
                    "files it was opened with: construct the dataset again",
                    path=self._source.cache(self.train),
                )
            self._use(split)

    @property
    def labels(self) -> NDArray[np.int64]:
        """The same array as :attr:`targets` (the seed's name)."""
        return self.targets

    @property
    def uses_global_rngs(self) -> bool:
        """Whether reading may draw from global generators: only through your transforms."""
        return draws_from_global_rngs(self.transform) or draws_from_global_rngs(self.target_transform)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        i = check_index(index, len(self.data), owner=type(self).__name__)
        return self._sample(self.data[i], int(self.targets[i]))

    def _sample(self, image: Any, label: Any) -> tuple[Any, Any]:
        if self.transform is not None:
            image = timed_sample_transform(self.transform, image)
        if self.target_transform is not None:
            label = timed_sample_transform(self.target_transform, label)
        return image, label

    def __getitems__(self, indices: Sequence[int] | NDArray[np.integer]) -> Any:
        idx = check_indices(indices, len(self.data), owner=type(self).__name__)
        images = np.take(self.data, idx, axis=0)
        labels = np.take(self.targets, idx)
        if self.transform is None and self.target_transform is None:
            return StackedSamples.of_tuples([images, labels])
        return map_samples(lambda p: self._sample(images[p], int(labels[p])), range(len(idx)))

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"{type(self).__name__}(root={str(self.root)!r}, {split}, {len(self)} images)"


class CIFAR100Dataset(CIFAR10Dataset):
    """CIFAR-100: 100 fine classes grouped into 20 coarse classes; same layout as CIFAR-10.

    Attributes (besides CIFAR-10's):
        targets: fine labels ``(N,)`` int64 (0-99); ``classes`` their names.
        coarse_targets: coarse labels ``(N,)`` int64 (0-19); ``coarse_classes`` their names.

    Mirrors are chosen with ``url=``/``md5=`` or ``$TINYTORCH_CIFAR100_URL`` /
    ``$TINYTORCH_CIFAR100_MD5``.
    """

    spec = CIFAR100

    @property
    def coarse_targets(self) -> NDArray[np.int64]:
        """Coarse (superclass) labels, ``(N,)`` int64."""
        return self._split.labels["coarse_labels"]

    @property
    def coarse_classes(self) -> list[str]:
        """The 20 superclass names."""
        return self._split.names["coarse_label_names"]
