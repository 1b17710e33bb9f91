"""``Compose``: transforms in order, with adjacent steps fused by declared rules.

A fusion rule says: two adjacent steps of exactly these types run as one step that draws the
same random numbers in the same order and returns the same bytes (or, where a rule says so,
the same values up to 1 ulp). The rules are data (:data:`FUSION_RULES`), applied by one
function (:func:`fuse`); a transform knows nothing of them. Types are matched exactly, not
with ``isinstance``: a subclass may change what the step does, so it is fused only by a rule
that names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinytorch.data.seeding import draws_from_global_rngs
from tinytorch.data.transforms.base import Transform, resolve_batched, resolve_rng
from tinytorch.data.transforms.fused import CropFlipNormalize
from tinytorch.data.transforms.image import CropThenFlip, RandomCrop, RandomHorizontalFlip
from tinytorch.data.transforms.normalize import Normalize, ToFloat, ToFloatNormalize
from tinytorch.data.transforms.resize import RandomResizedCrop, ResizedCropThenFlip

__all__ = ["FUSION_RULES", "Compose", "FusionRule", "fuse"]


@dataclass(frozen=True)
class FusionRule:
    """Adjacent steps ``a, b`` with ``type(a) in first`` and ``type(b) in then`` become
    ``build(a, b)``, an equivalent single step."""

    first: tuple[type, ...]
    then: tuple[type, ...]
    build: Callable[[Any, Any], Transform]

    def matches(self, a: object, b: object) -> bool:
        return type(a) in self.first and type(b) in self.then


def _to_float_normalize(_: ToFloat, normalize: Normalize) -> Transform:
    return ToFloatNormalize(normalize.mean, normalize.std)


FUSION_RULES: tuple[FusionRule, ...] = (
    # One cast into the float32 output and one multiply-add; 1/255 folded into the scale
    # (values within 1 ulp of the two steps).
    FusionRule((ToFloat,), (Normalize,), _to_float_normalize),
    # One gather; flipped samples read through a mirrored view (same bytes).
    FusionRule((RandomCrop,), (RandomHorizontalFlip,), CropThenFlip),
    # One pass over whole planes for uint8 batches cropped to their own size (same bytes).
    FusionRule((CropThenFlip,), (Normalize, ToFloatNormalize), CropFlipNormalize),
    # Flipped outputs written mirrored as they leave the resampler (same bytes).
    FusionRule((RandomResizedCrop,), (RandomHorizontalFlip,), ResizedCropThenFlip),
)
"""The fusions ``Compose`` applies; patterns are disjoint, so their order does not matter."""


def fuse(steps: Sequence[Any], rules: Sequence[FusionRule] = FUSION_RULES) -> list[Any]:
    """``steps`` with adjacent pairs replaced by their fused step wherever a rule matches.

    One left-to-right pass: each step is pushed, then the last two are fused as long as a
    rule matches them, so a fused step can fuse again with the next one (crop, flip, to-float,
    normalize becomes one step).
    """
    fused: list[Any] = []
    for step in steps:
        fused.append(step)
        while len(fused) >= 2:
            rule = next((r for r in rules if r.matches(fused[-2], fused[-1])), None)
            if rule is None:
                break
            second = fused.pop()
            fused[-1] = rule.build(fused[-1], second)
    return fused


class Compose(Transform):
    """Apply ``transforms`` in order, all drawing from the same generator, in order.

    Adjacent steps are fused where that saves a pass over the data, from the same random
    draws (:data:`FUSION_RULES`): ``RandomCrop`` + ``RandomHorizontalFlip`` become one gather,
    ``ToFloat()`` + ``Normalize(mean, std)`` one cast into the preallocated float32 output
    followed by one in-place multiply-add (the 1/255 is folded into the scale, so values can
    differ from the two steps run alone by 1 ulp), and the crop and flip followed by the
    normalization one pass over whole image planes for uint8 batches cropped back to their own
    size (byte-identical to the two; see ``transforms/fused.py``).

    Args:
        transforms: callables; a :class:`Transform` is called as ``t(data, rng,
            batched=batched)``, anything else as ``f(data)``. Nested ``Compose`` are flattened.

    Attributes:
        transforms: the steps as given (flattened).
        steps: what runs, after fusion.
    """

    def __init__(self, transforms: Iterable[Any]) -> None:
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Iterable):
            raise TypeError(
                f"Compose takes a list of transforms, got {type(transforms).__name__}; "
                "write Compose([t1, t2, ...])"
            )
        flat: list[Any] = []
        for t in transforms:
            if isinstance(t, Compose):
                flat.extend(t.transforms)
            elif callable(t):
                flat.append(t)
            else:
                raise TypeError(f"Compose takes callables, got {type(t).__name__} {t!r}")
        self.transforms: list[Any] = flat
        self._steps: tuple[Any, ...] = tuple(fuse(flat))

    @property
    def uses_global_rngs(self) -> bool:  # type: ignore[override]
        return any(draws_from_global_rngs(step) for step in self.transforms)

    @property
    def steps(self) -> tuple[Any, ...]:
        """The steps that run: :attr:`transforms` after fusion."""
        return self._steps

    @property
    def random(self) -> bool:  # type: ignore[override]
        return any(getattr(t, "random", False) for t in self._steps)

    def __call__(
        self, data: Any, rng: np.random.Generator | None = None, *, batched: bool | None = None
    ) -> Any:
        if self.random:
            rng = resolve_rng(rng, "Compose")
        batched = resolve_batched(batched)
        for step in self._steps:
            data = step(data, rng, batched=batched) if isinstance(step, Transform) else step(data)
        return data

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"
