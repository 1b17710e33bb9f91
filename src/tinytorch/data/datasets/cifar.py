"""CIFAR-10 and CIFAR-100, downloaded with verification and cached for instant reloads.

Getting the data (:func:`prepare_cifar`), cheapest source first:

1. a verified array cache in ``root/<folder>/tinytorch-cache/<split>/`` (memory-mapped: well
   under a second, and shared through the page cache by every worker);
2. the extracted official files in ``root/<folder>/`` (parsed with a restricted unpickler,
   then cached);
3. the archive ``root/<archive>`` (MD5-checked, then safely extracted);
4. a download of the archive (``download=True``) from ``url=``, else ``$TINYTORCH_CIFAR10_URL``
   (``$TINYTORCH_CIFAR100_URL``), else the official address, verified against ``md5=``, else
   ``$TINYTORCH_CIFAR10_MD5`` (``..._CIFAR100_MD5``), else the official checksum.

No network is touched when any of 1-3 is present and verifies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.base import Dataset, map_samples, timed_sample_transform
from tinytorch.data.datasets.indexing import check_index, check_indices
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.storage.array_cache import fingerprint, load_arrays, save_arrays
from tinytorch.data.storage.cifar_format import (
    CIFAR10,
    CIFAR100,
    CifarSpec,
    CifarSplit,
    read_split,
    split_files,
)
from tinytorch.data.storage.download import ChecksumError, download, file_md5
from tinytorch.data.storage.extract import extract_tar

__all__ = ["CIFAR10Dataset", "CIFAR100Dataset", "prepare_cifar"]

CACHE_DIR = "tinytorch-cache"


def prepare_cifar(
    spec: CifarSpec,
    root: str | os.PathLike[str],
    *,
    train: bool,
    download_ok: bool,
    url: str | None = None,
    md5: str | None = None,
    progress: bool | None = None,
) -> CifarSplit:
    """Return a split of ``spec`` from the cheapest source that verifies (see module docs).

    Raises:
        FileNotFoundError: nothing usable in ``root`` and ``download_ok`` is False; the
            message says where it looked and what to do.
        ChecksumError: the archive in ``root`` has the wrong MD5 and may not be replaced, or
            the downloaded one has the wrong MD5 (it is removed).
        DownloadError: the download failed; the message says how to supply the archive by hand.
        CorruptDatasetError, ForbiddenPickleError, UnsafeArchiveError: a bad file, named.
    """
    root = Path(root).expanduser()
    url = url or os.environ.get(f"{spec.env_prefix}_URL") or spec.url
    md5 = (md5 or os.environ.get(f"{spec.env_prefix}_MD5") or spec.md5).lower()
    folder = root / spec.folder
    cache = folder / CACHE_DIR / ("train" if train else "test")
    if folder.is_dir():
        cached = _load_cache(spec, folder, cache, train)
        if cached is not None:
            return cached
        data = read_split(spec, folder, train)
    else:
        archive = _obtain_archive(spec, root, url, md5, download_ok, progress)
        extract_tar(archive, root, spec.folder)
        try:
            data = read_split(spec, folder, train)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)  # leave nothing a later run could trust
            raise
    with contextlib.suppress(OSError):  # a read-only root still works, parsing every time
        save_arrays(
            cache,
            {"images": data.images, **data.labels},
            _cache_source(spec, folder, train),
            meta={"names": data.names},
        )
    # Serve the memory-mapped copy when the cache was written: one copy in the page cache,
    # shared by every worker, instead of a private one per process.
    return _load_cache(spec, folder, cache, train) or data


def _obtain_archive(
    spec: CifarSpec, root: Path, url: str, md5: str, download_ok: bool, progress: bool | None
) -> Path:
    """The verified archive in ``root``, downloaded first when allowed and needed."""
    archive = root / spec.archive
    if _archive_verifies(archive, md5, may_replace=download_ok):
        return archive
    if not download_ok:
        raise FileNotFoundError(
            f"{spec.name} is not in {root}: looked for the folder {root / spec.folder} and the "
            f"archive {archive}. Pass download=True, or download {url} (md5 {md5}) yourself "
            f"and put it at {archive}"
        )
    root.mkdir(parents=True, exist_ok=True)
    hint = (
        f"No network? Download {url} (md5 {md5}) on another machine and put it at {archive}, "
        f"or choose a mirror with url=/md5= or ${spec.env_prefix}_URL and ${spec.env_prefix}_MD5"
    )
    return download(url, archive, md5=md5, progress=progress, manual_hint=hint)


def _archive_verifies(archive: Path, md5: str, *, may_replace: bool) -> bool:
    if not archive.is_file():
        return False
    actual = file_md5(archive)
    if actual == md5:
        return True
    if may_replace:
        archive.unlink()  # a fresh download replaces it
        return False
    raise ChecksumError(
        f"{archive} has md5 {actual}, expected {md5}: it is incomplete or another file. Delete "
        "it and run again with download=True, or pass the md5 of your mirror's archive"
    )


def _cache_source(spec: CifarSpec, folder: Path, train: bool) -> dict[str, Any]:
    files = fingerprint(split_files(spec, folder, train))
    return {"dataset": spec.name, "split": "train" if train else "test", "files": files}


def _load_cache(spec: CifarSpec, folder: Path, cache: Path, train: bool) -> CifarSplit | None:
    try:
        source = _cache_source(spec, folder, train)
    except FileNotFoundError:
        return None
    loaded = load_arrays(cache, source)
    if loaded is None:
        return None
    arrays, meta = loaded
    if not {"images", *spec.label_keys} <= arrays.keys() or "names" not in meta:
        return None
    labels = {k: arrays[k] for k in spec.label_keys}
    return CifarSplit(images=arrays["images"], labels=labels, names=meta["names"])


class CIFAR10Dataset(Dataset[tuple[NDArray[np.uint8], int]]):
    """CIFAR-10: 60,000 32x32 colour images in 10 classes (50,000 train, 10,000 test).

    Args:
        root: directory holding (or to receive) the archive and the extracted files.
        train: the training split (50,000 images) or the test split (10,000).
        download: download the archive when it is not in ``root``.
        transform: applied to each image, ``(3, 32, 32) uint8`` in, per sample.
        url: archive address (a mirror); default ``$TINYTORCH_CIFAR10_URL`` or the official one.
        md5: the archive's MD5; default ``$TINYTORCH_CIFAR10_MD5`` or the official one.
        target_transform: applied to each label (an int), per sample.
        progress: download progress bar; ``None`` shows it when stderr is a terminal.

    Attributes:
        data: ``(N, 3, 32, 32)`` uint8, C-contiguous, read-only (memory-mapped from the cache).
        targets: ``(N,)`` int64 class indices; ``labels`` is the same array.
        classes: the class names, ``classes[targets[i]]``.

    ``dataset[i]`` is ``(image (3, 32, 32) uint8, label int)``. ``__getitems__`` reads a batch
    with one ``np.take`` when there are no per-sample transforms.
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
        self.root = Path(root)
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        split = prepare_cifar(
            self.spec, root, train=train, download_ok=download, url=url, md5=md5, progress=progress
        )
        self.data: NDArray[np.uint8] = split.images
        self.targets: NDArray[np.int64] = split.labels[self.spec.label_keys[0]]
        self.classes: list[str] = split.names[self.spec.names_keys[0]]
        self._split = split

    @property
    def labels(self) -> NDArray[np.int64]:
        """The same array as :attr:`targets` (the seed's name)."""
        return self.targets

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
