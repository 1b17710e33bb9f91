"""The transform protocol: one implementation, used on a sample or on a whole batch.

A :class:`Transform` works on a batch ``(N, *sample_shape)`` with no per-sample Python
loop; a single sample is processed as a batch of one. Random transforms split their work in
two: :meth:`Transform.draw` takes every random number for ``N`` samples from a
``numpy.random.Generator`` that is passed in, and :meth:`Transform.apply` is a
deterministic function of the batch and those parameters. So the output depends only on the
generator, which the loader derives from ``(seed, epoch, batch index)``.

Calling conventions (``t(data, rng=None)``):

* ``data`` is one image ``(C, H, W)`` or a batch ``(N, C, H, W)`` (``sample_ndim`` says
  which rank is a sample);
* ``data`` may be a tuple or list ``(images, labels, ...)``, as a DataLoader batch is: the
  first item is transformed and the others pass through (the convention of
  ``torchvision.transforms.v2``), so a transform can be a loader's ``batch_transform``;
* ``rng`` defaults to the current batch context's generator inside a DataLoader; a random
  transform called outside a loader without ``rng`` raises, naming the fix. Nothing reads
  numpy's global random state.

Fusion of adjacent steps lives with :class:`~tinytorch.data.transforms.compose.Compose`; this
module knows no concrete transform.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.seeding import get_batch_context

__all__ = ["Transform", "resolve_rng"]


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


class Transform:
    """Base class. Subclasses implement :meth:`apply` and, when random, :meth:`draw`.

    Class attributes:
        random: whether the transform draws random numbers.
        sample_ndim: rank of one sample (3 for ``(C, H, W)`` images).
    """

    random: ClassVar[bool] = False
    sample_ndim: ClassVar[int] = 3

    def draw(self, rng: np.random.Generator, n: int) -> Any:
        """All random parameters for ``n`` samples (deterministic transforms return ``None``)."""
        return None

    def apply(self, batch: NDArray[Any], params: Any) -> NDArray[Any]:
        """Transform ``batch`` ``(N, *sample_shape)`` with parameters from :meth:`draw`.

        Must not modify ``batch`` in place: it may be a view of a dataset's storage.
        """
        raise NotImplementedError

    def __call__(self, data: Any, rng: np.random.Generator | None = None) -> Any:
        if isinstance(data, (tuple, list)):
            if not data:
                raise ValueError(f"{type(self).__name__} got an empty {type(data).__name__}")
            first = self(data[0], rng)
            rest = list(data[1:])
            return (first, *rest) if isinstance(data, tuple) else [first, *rest]
        x = np.asarray(data)
        if x.ndim == self.sample_ndim:
            return self.apply(x[None], self._params(rng, 1))[0]
        if x.ndim == self.sample_ndim + 1:
            return self.apply(x, self._params(rng, len(x)))
        raise ValueError(
            f"{type(self).__name__} expects one sample of rank {self.sample_ndim} (e.g. (C, H, W)) "
            f"or a batch of rank {self.sample_ndim + 1} (e.g. (N, C, H, W)), got shape {x.shape}"
        )

    def _params(self, rng: np.random.Generator | None, n: int) -> Any:
        if not self.random:
            return None
        return self.draw(resolve_rng(rng, type(self).__name__), n)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
