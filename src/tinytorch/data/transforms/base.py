"""The transform protocol: one implementation, used on a sample or on a whole batch.

A :class:`Transform` works on a batch ``(N, *sample_shape)`` with no per-sample Python
loop; a single sample is processed as a batch of one. Random transforms split their work in
two: :meth:`Transform.draw` takes every random number for ``N`` samples from a
``numpy.random.Generator`` that is passed in, and :meth:`Transform.apply` is a
deterministic function of the batch and those parameters. So the output depends only on the
generator, which the loader derives from ``(seed, epoch, batch index)``.

Calling conventions (``t(data, rng=None, *, batched=None)``):

* ``data`` is one image ``(C, H, W)`` or a batch ``(N, C, H, W)``: image transforms always
  take a channel axis, so a 3-D array is **one** image, never a batch of ``N`` single-channel
  images (torchvision's convention). A batch of images of different sizes is a ``list`` of
  ``(C, H_i, W_i)`` arrays (a *list of samples*); the resizing transforms (``Resize``,
  ``CenterCrop``, ``RandomResizedCrop``) turn it into one ``(N, C, h, w)`` array, the others
  accept it when all sizes agree (it is stacked first);
* whether ``data`` is a batch is said by ``batched=``; when it is ``None``, inside a
  DataLoader the batch context says it (the loader's ``batch_transform`` and a batched
  ``__getitems__`` see batches; a dataset's per-sample ``transform=`` sees one sample), and
  outside a loader the rank does (``(C, H, W)`` one image, ``(N, C, H, W)`` a batch, a list
  of ``(C, H, W)`` arrays a batch). Input of another rank than the one expected is refused
  with the fix, so a batch of 2-D images ``(N, H, W)`` is never taken for one image with ``N``
  channels: add the channel axis (``x[:, None]``);
* ``data`` may be a tuple or list ``(images, labels, ...)``, as a DataLoader batch is: the
  first item is transformed and the others pass through (the convention of
  ``torchvision.transforms.v2``), so a transform can be a loader's ``batch_transform``. A
  tuple is always such a container. A list of arrays of the sample's rank is a list of
  samples (above) or a container, told apart by :func:`is_sample_list`: outside a batch
  (``batched=None``, outside a loader) it is samples; in a batch (a loader's batch stage, or
  ``batched=True``) it is samples when the arrays differ in shape (a ``collate_fn``'s list of
  photos), when it is a container's first item (``(photos, labels)``: its length must then
  be the batch length of the other items), or when a transform made it (:class:`SampleList`,
  e.g. ``Resize(256)``'s output). A list of arrays of **one** shape, as a whole batch, is the
  loader's list of fields (``[x]`` from a one-array ``TensorDataset``, ``[x, y]``), so a
  batch of 2-D images ``[x]`` with ``x`` ``(N, H, W)`` is refused with the fix like
  ``(x, labels)`` is, never taken for one image of ``N`` channels (a ``collate_fn`` that
  returns photos of one size as a bare list is refused too: stack them, or return them next
  to the labels);
* ``rng`` defaults to the current batch context's generator inside a DataLoader; a random
  transform called outside a loader without ``rng`` raises, naming the fix. Nothing reads
  numpy's global random state.

Fusion of adjacent steps lives with :class:`~tinytorch.data.transforms.compose.Compose`; this
module knows no concrete transform.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.seeding import get_batch_context

__all__ = [
    "Layout",
    "SampleList",
    "Transform",
    "batch_layout",
    "is_image_list",
    "is_sample_list",
    "resolve_batched",
    "resolve_rng",
    "stack_images",
]

Layout = Literal["sample", "batch", "list"]
"""What :func:`batch_layout` found: one sample, a batch array, or a list of samples."""


def resolve_rng(rng: np.random.Generator | None, owner: str) -> np.random.Generator:
    """``rng``, else the current batch context's generator, else a ``ValueError`` with the fix."""
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"{owner} takes rng=numpy.random.Generator, got {type(rng).__name__}; "
                "create one with numpy.random.default_rng(seed)"
            )
        return rng
    context = get_batch_context()
    if context is None:
        raise ValueError(
            f"{owner} is random and needs a generator: call it with "
            "rng=numpy.random.default_rng(seed), or use it inside a DataLoader (as a dataset "
            "transform= or the loader's batch_transform=), which passes one derived from "
            "(seed, epoch, batch index)"
        )
    return context.rng


def resolve_batched(batched: bool | None) -> bool | None:
    """``batched`` if given, else what the DataLoader is making right now, else ``None``.

    Inside a loader, data seen while one sample is read (a dataset's ``transform=``) is one
    sample, and data seen while the batch as a whole is read, collated or transformed (a
    batched ``__getitems__``, ``batch_transform``) is a batch, unless the loader does not
    batch (``batch_size=None``). Outside a loader: ``None`` (the rank decides).
    """
    if batched is not None:
        if not isinstance(batched, (bool, np.bool_)):
            raise TypeError(f"batched must be True, False or None, got {type(batched).__name__} {batched!r}")
        return bool(batched)
    context = get_batch_context()
    if context is None:
        return None
    return context.batched and context.position is None


class SampleList(list):  # type: ignore[type-arg]
    """A list of samples a transform returned (e.g. ``Resize(256)`` on photos of different
    sizes): later steps take it as a batch of samples, never as a container of fields, even
    where its arrays happen to share one shape."""


def is_image_list(data: object, sample_ndim: int) -> bool:
    """Whether ``data`` is a non-empty ``list`` of arrays of rank ``sample_ndim``: shaped like a
    list of samples (:func:`is_sample_list` says whether it is one)."""
    return (
        isinstance(data, list)
        and len(data) > 0
        and all(isinstance(x, np.ndarray) and x.ndim == sample_ndim for x in data)
    )


def _batch_length(items: tuple[Any, ...]) -> int | None:
    """The batch length of a container's other items (labels ``(N,)``, a list of N names)."""
    for item in items:
        if isinstance(item, (list, tuple)):
            return len(item)
        shape = getattr(item, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    return None


def is_sample_list(
    data: object, sample_ndim: int, batched: bool | None, siblings: tuple[Any, ...] | None = None
) -> bool:
    """Whether the list ``data`` is a list of samples (a batch) rather than a container of
    fields: the one rule, stated in the module docs.

    Args:
        data: what a transform was given (or a container's first item).
        sample_ndim: rank of one sample.
        batched: from :func:`resolve_batched`.
        siblings: ``None`` for the data as given; a container's other items when ``data`` is
            its first item.
    """
    if not is_image_list(data, sample_ndim) or batched is False:
        return False
    if batched is None or isinstance(data, SampleList):
        return True
    assert isinstance(data, list)
    if siblings is not None:  # a field of a batch: a list there holds one entry per sample
        length = _batch_length(siblings)
        return length is None or length == len(data)
    return len({x.shape for x in data}) > 1  # one shape: the loader's list of fields


def batch_layout(data: Any, sample_ndim: int, batched: bool | None, owner: str) -> Layout:
    """Whether ``data`` is one sample, a batch array or a list of samples; refuses the rest.

    Args:
        data: an array(-like) or a list of arrays (not an ``(images, labels)`` container).
        sample_ndim: rank of one sample (3 for ``(C, H, W)`` images).
        batched: from :func:`resolve_batched`: ``True`` (a batch is expected), ``False`` (one
            sample is expected) or ``None`` (decided by the rank).
        owner: the transform's name, for messages.

    Raises:
        ValueError: the rank is not the one expected, naming the shape and the fix.
    """
    if is_image_list(data, sample_ndim):
        if batched is False:
            raise ValueError(f"{owner} expects one sample here, got a list of {len(data)} arrays")
        return "list"
    ndim = np.ndim(data)
    shape = np.shape(data)
    sample = "(C, H, W)" if sample_ndim == 3 else f"of rank {sample_ndim}"
    batch = "(N, C, H, W)" if sample_ndim == 3 else f"of rank {sample_ndim + 1}"
    if batched is None:
        if ndim == sample_ndim:
            return "sample"
        if ndim == sample_ndim + 1:
            return "batch"
        hint = (
            "; for single-channel images add the channel axis: x[None] for one (H, W) image, "
            "x[:, None] for a batch (N, H, W)"
            if sample_ndim == 3 and ndim == 2
            else ""
        )
        raise ValueError(
            f"{owner} expects one sample {sample} (rank {sample_ndim}) or a batch {batch} "
            f"(rank {sample_ndim + 1}), got shape {shape}{hint}"
        )
    if batched:
        if ndim == sample_ndim + 1:
            return "batch"
        hint = (
            f"; if these are {shape[0]} single-channel images, add the channel axis (x[:, None], "
            f"e.g. in the dataset) to make it {(shape[0], 1, *shape[1:])}"
            if ndim == sample_ndim and sample_ndim == 3
            else ""
        )
        raise ValueError(
            f"{owner} expects a batch {batch} here (a DataLoader's batch stage, or batched=True), "
            f"got shape {shape}{hint}; to transform one sample call it with batched=False"
        )
    if ndim == sample_ndim:
        return "sample"
    raise ValueError(
        f"{owner} expects one sample {sample} here (a dataset's per-sample transform inside a "
        f"DataLoader, or batched=False), got shape {shape}; to transform whole batches pass it "
        "as the loader's batch_transform=, or call it with batched=True"
    )


def _fields_of_2d_images(owner: str, data: list[Any] | tuple[Any, ...]) -> ValueError:
    """The error for a whole batch that is a list of one-shape ``(N, H, W)`` arrays."""
    shape = data[0].shape
    return ValueError(
        f"{owner} expects a batch (N, C, H, W) here (a DataLoader's batch stage, or batched=True), "
        f"got a list of {len(data)} array(s) of shape {shape}: a DataLoader batch is a list of fields "
        f"(e.g. [x] from a one-array TensorDataset), so its first field would be {shape[0]} "
        f"single-channel images (N, H, W); add the channel axis (x[:, None], e.g. in the dataset) "
        f"to make it {(shape[0], 1, *shape[1:])}. If it is a list of images (C, H, W) of one size "
        "made by a collate_fn, return np.stack(images), or the images next to their labels "
        "(images, labels)"
    )


def stack_images(images: list[NDArray[Any]], owner: str) -> NDArray[Any]:
    """One ``(N, *shape)`` array from a list of samples of one shape and dtype, else the fix."""
    first = images[0]
    for i, x in enumerate(images):
        if x.shape != first.shape or x.dtype != first.dtype:
            raise ValueError(
                f"{owner} got a list of samples of different shapes or dtypes (item 0: "
                f"{first.shape} {first.dtype}, item {i}: {x.shape} {x.dtype}); put Resize((h, w)), "
                "CenterCrop or RandomResizedCrop first: they turn images of different sizes into "
                "one (N, C, h, w) array"
            )
    return np.stack(images)


class Transform:
    """Base class. Subclasses implement :meth:`apply` and, when random, :meth:`draw`.

    Class attributes:
        random: whether the transform draws random numbers.
        sample_ndim: rank of one sample (3 for ``(C, H, W)`` images).
        takes_lists: whether :meth:`apply` accepts a list of samples of different sizes
            (otherwise such a list is stacked first, which needs one size).
    """

    uses_global_rngs = False
    """The library's transforms draw only from the generator they are given. A subclass of
    yours counts as drawing from the global generators anyway (see
    :func:`tinytorch.data.seeding.draws_from_global_rngs`): the loader cannot know what it calls."""

    random: ClassVar[bool] = False
    sample_ndim: ClassVar[int] = 3
    takes_lists: ClassVar[bool] = False

    def sample_rank(self) -> int:
        """Rank of one sample (:attr:`sample_ndim` unless a subclass knows better)."""
        return self.sample_ndim

    def draw(self, rng: np.random.Generator, n: int) -> Any:
        """All random parameters for ``n`` samples (deterministic transforms return ``None``)."""
        return None

    def apply(self, batch: Any, params: Any) -> Any:
        """Transform ``batch`` ``(N, *sample_shape)`` with parameters from :meth:`draw`.

        Must not modify ``batch`` in place: it may be a view of a dataset's storage.
        """
        raise NotImplementedError

    def __call__(
        self, data: Any, rng: np.random.Generator | None = None, *, batched: bool | None = None
    ) -> Any:
        """Transform one sample, a batch, or the first item of an ``(images, labels)`` batch.

        See the module docstring for how ``data`` and ``batched`` are read.
        """
        return self._transform(data, rng, resolve_batched(batched), None)

    def _transform(
        self,
        data: Any,
        rng: np.random.Generator | None,
        batched: bool | None,
        siblings: tuple[Any, ...] | None,
    ) -> Any:
        """:meth:`__call__` for ``data`` given as it is (``siblings`` ``None``) or as the first
        item of a container whose other items are ``siblings``."""
        name = type(self).__name__
        rank = self.sample_rank()
        if isinstance(data, tuple) or (
            isinstance(data, list) and not is_sample_list(data, rank, batched, siblings)
        ):
            if not data:
                raise ValueError(f"{name} got an empty {type(data).__name__}")
            if batched and siblings is None and rank == 3 and is_image_list(data, rank):
                raise _fields_of_2d_images(name, data)
            first = self._transform(data[0], rng, batched, tuple(data[1:]))
            rest = list(data[1:])
            return (first, *rest) if isinstance(data, tuple) else [first, *rest]
        layout = batch_layout(data, rank, batched, name)
        if layout == "list":
            batch = data if self.takes_lists else stack_images(data, name)
            out = self.apply(batch, self._params(rng, len(batch)))
            return SampleList(out) if isinstance(out, list) else out
        x = np.asarray(data)
        if layout == "sample":
            return self.apply(x[None], self._params(rng, 1))[0]
        return self.apply(x, self._params(rng, len(x)))

    def _params(self, rng: np.random.Generator | None, n: int) -> Any:
        if not self.random:
            return None
        return self.draw(resolve_rng(rng, type(self).__name__), n)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
