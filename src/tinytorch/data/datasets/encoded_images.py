"""What every dataset of labelled, encoded images shares: decoding a batch in parallel.

:class:`EncodedImageDataset` is the read path of :class:`~tinytorch.data.ImageFolder` (a folder
of files) and :class:`~tinytorch.data.ImageShards` (the same files' bytes in shards). A
subclass says where sample ``i``'s encoded image and label come from (``_sources``) and how one
source becomes an image (``_load``); this class does the rest, the same way for both, so a
folder and its shards give the same bytes: the files of a batch decoded in the dataset's own
threads with the GIL released (:class:`~tinytorch.data.datasets.thread_map.ThreadMap`), the
per-sample ``transform`` run in those threads with the sample's own generator, bad files raised
or skipped (``on_error``) by batch position, and a batch of one-size images stacked
``(N, C, H, W)`` into the batch's memory.
"""

from __future__ import annotations

import contextvars
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.base import Dataset, timed_sample_transform
from tinytorch.data.datasets.indexing import check_index, check_indices
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.datasets.thread_map import ThreadMap
from tinytorch.data.memory import batch_empty
from tinytorch.data.seeding import BatchContext, batch_context, get_batch_context
from tinytorch.data.storage.decode import ImageDecodeError, ImageDecoder
from tinytorch.data.validate import check_int

__all__ = ["EncodedImageDataset", "OnError", "SkippedImageWarning"]

OnError = Literal["raise", "skip"]
_Self = TypeVar("_Self", bound="EncodedImageDataset")


class SkippedImageWarning(UserWarning):
    """A file that could not be decoded was left out of its batch (``on_error="skip"``)."""


class EncodedImageDataset(Dataset[tuple[Any, Any]]):
    """Base of the image datasets: ``(image, target)`` samples decoded on read.

    Subclasses call :meth:`_setup` in their constructor and implement ``__len__``,
    :meth:`_sources` and :meth:`_load`. The public behaviour (documented on the subclasses):
    ``ds[i]`` is ``(image, target)``; ``ds.__getitems__(indices)`` decodes in parallel and
    returns :class:`StackedSamples` (images ``(N, C, H, W)``, targets ``(N,)`` int64) when every
    image has one shape and dtype and no ``target_transform`` is set, else a list of
    ``(image, target)``.

    Attributes:
        transform, target_transform: per-sample callables, as in torchvision.
        decode: the :class:`ImageDecoder` (``None`` where a user's ``loader`` decodes).
        on_error: ``"raise"`` or ``"skip"``.
    """

    transform: Callable[[Any], Any] | None
    target_transform: Callable[[Any], Any] | None
    decode: ImageDecoder | None
    on_error: OnError
    _threads: ThreadMap

    def _setup(
        self,
        transform: Callable[[Any], Any] | None,
        target_transform: Callable[[Any], Any] | None,
        decode: ImageDecoder | None,
        on_error: str,
        num_threads: int | None,
    ) -> None:
        """Check and store the settings every image dataset has (threads start on first use)."""
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.transform = transform
        self.target_transform = target_transform
        self.decode = decode
        self.on_error = on_error  # type: ignore[assignment]
        threads = None if num_threads is None else check_int(num_threads, "num_threads")
        self._threads = ThreadMap(threads)  # None: decided where it decodes (default_num_threads)

    # -- what a subclass provides ---------------------------------------------------------

    def _sources(self, idx: NDArray[np.intp]) -> tuple[list[Any], NDArray[np.int64]]:
        """For checked indices ``idx``: one source per sample (what :meth:`_load` takes) and
        the ``(N,)`` int64 targets. Runs in the calling thread."""
        raise NotImplementedError

    def _load(self, source: Any) -> Any:
        """One source's image (``(C, H, W)``), or the :class:`ImageDecodeError` it raised
        (returned, not raised). Runs in the decode threads: must be thread-safe."""
        raise NotImplementedError

    # -- reading --------------------------------------------------------------------------

    @property
    def num_threads(self) -> int:
        """Decode threads in this process (``0``/``1``: the calling thread decodes)."""
        return self._threads.threads

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        i = check_index(index, len(self), owner=type(self).__name__)
        sources, targets = self._sources(np.array([i], dtype=np.intp))
        image = self._load(sources[0])
        if isinstance(image, ImageDecodeError):
            raise _with_index(image, i)
        return self._sample(image, int(targets[0]))

    def __getitems__(self, indices: Sequence[int] | NDArray[np.integer]) -> Any:
        """Read a batch: images decoded in parallel, in order; see the class docs for the result.

        Raises:
            ImageDecodeError: with ``on_error="raise"``, for the first image of the batch (in
                batch order) that cannot be read or decoded; names it and the sample index.
        """
        idx = check_indices(indices, len(self), owner=type(self).__name__)
        context = get_batch_context()
        sources, targets = self._sources(idx)
        if self.transform is None:
            images = self._threads.map(self._load, sources)
        else:
            start = time.perf_counter()
            results = self._threads.map(self._read, [(p, s, context) for p, s in enumerate(sources)])
            if context is not None:
                _share_time(context, time.perf_counter() - start, results)
            images = [image for image, _, _ in results]
        keep = [p for p, image in enumerate(images) if not isinstance(image, ImageDecodeError)]
        if len(keep) < len(images):
            images = self._drop_failures(images, idx, keep)
            targets = targets[keep]
        if self.target_transform is not None:
            labels = self._per_sample(self.target_transform, targets.tolist(), keep)
            return list(zip(images, labels, strict=True))
        stacked = _stack_if_uniform(images)
        if stacked is not None:
            return StackedSamples.of_tuples([stacked, targets])
        return list(zip(images, targets.tolist(), strict=True))

    def _read(self, job: tuple[int, Any, BatchContext | None]) -> tuple[Any, float, float]:
        """Decode one source and apply ``transform`` (in a decode thread): (image, seconds
        decoding, seconds transforming).

        The transform runs in a fresh ``contextvars`` context holding only the sample's batch
        context (position = its place in the requested batch), so its randomness is the one it
        would get in the loading thread, and nothing else of the caller's context (a worker's
        shared-memory arena) is used from two threads.
        """
        position, source, context = job
        start = time.perf_counter()
        image = self._load(source)
        decoded = time.perf_counter()
        if self.transform is None or isinstance(image, ImageDecodeError):
            return image, decoded - start, 0.0
        if context is not None and context.position is None:
            context = context.for_sample(position)
        image = contextvars.Context().run(_transform_in, context, self.transform, image)
        return image, decoded - start, time.perf_counter() - decoded

    def _drop_failures(self, images: list[Any], idx: NDArray[np.intp], keep: list[int]) -> list[Any]:
        """The images at ``keep``; raises the first failure with ``on_error="raise"``."""
        failures = [(p, image) for p, image in enumerate(images) if isinstance(image, ImageDecodeError)]
        if self.on_error == "raise":
            position, error = failures[0]
            raise _with_index(error, int(idx[position]))
        for position, error in failures:
            warnings.warn(f"skipped sample {int(idx[position])}: {error}", SkippedImageWarning, stacklevel=3)
        context = get_batch_context()
        if context is not None:
            context.skipped += len(failures)
        return [images[p] for p in keep]

    def _per_sample(self, fn: Callable[[Any], Any], values: list[Any], positions: list[int]) -> list[Any]:
        """``fn`` per value in the calling thread, each in its sample's batch context."""
        context = get_batch_context()
        if context is None or context.position is not None:
            return [fn(v) for v in values]
        out = []
        try:
            for position, value in zip(positions, values, strict=True):
                context.position = position  # a skipped sample does not shift the others' randomness
                out.append(timed_sample_transform(fn, value))
        finally:
            context.position = None
        return out

    def _sample(self, image: Any, target: int) -> tuple[Any, Any]:
        if self.transform is not None:
            image = timed_sample_transform(self.transform, image)
        if self.target_transform is not None:
            target = timed_sample_transform(self.target_transform, target)
        return image, target

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the decode threads (they restart if the dataset is read again)."""
        self._threads.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _transform_in(context: BatchContext | None, transform: Callable[[Any], Any], image: Any) -> Any:
    if context is None:
        return transform(image)
    with batch_context(context):
        return transform(image)


def _share_time(context: BatchContext, wall: float, results: list[tuple[Any, float, float]]) -> None:
    """Charge the per-sample transforms their share of the parallel section's wall time.

    Decoding and transforms overlap in the threads, so their summed thread times exceed the
    wall time; the statistics split the wall time in proportion (read = the rest).
    """
    decoding = sum(r[1] for r in results)
    transforming = sum(r[2] for r in results)
    if decoding + transforming > 0:
        context.sample_transform_seconds += wall * transforming / (decoding + transforming)


def _with_index(error: ImageDecodeError, index: int) -> ImageDecodeError:
    """The same error, its message starting with the sample index."""
    out = type(error)(f"sample {index}: {error}", path=error.path, index=index)
    out.__cause__ = error.__cause__ or error
    return out


def _stack_if_uniform(images: list[Any]) -> NDArray[Any] | None:
    """``(N, *shape)`` when every image is an array of one shape and dtype, else ``None``."""
    if not images or not all(isinstance(image, np.ndarray) for image in images):
        return None
    first = images[0]
    if any(image.shape != first.shape or image.dtype != first.dtype for image in images):
        return None
    out = batch_empty((len(images), *first.shape), first.dtype)  # in the batch's shared memory
    return np.stack(images, out=out)  # C-contiguous (N, C, H, W), whatever the decoder's layout
