"""Generated, learnable CIFAR-shaped data for running the demo without the real dataset.

Each class has a smooth random colour template; an image is its class's template, shifted
by a few pixels, plus noise. A model has something to learn, and accuracy well above the 10%
of chance shows the whole pipeline works.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["synthetic_cifar"]


def synthetic_cifar(
    n: int, *, classes: int = 10, seed: int = 0, noise: float = 100.0
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """``n`` images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)`` int64 in ``[0, classes)``.

    Templates depend only on ``classes`` (the same for train and test splits); images and
    labels on ``seed``.
    """
    templates_rng = np.random.default_rng(12345)
    coarse = templates_rng.uniform(0, 255, size=(classes, 3, 4, 4))
    templates = np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3)  # (classes, 3, 32, 32)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n, dtype=np.int64)
    shifts = rng.integers(-3, 4, size=(n, 2))
    images = np.empty((n, 3, 32, 32), dtype=np.float32)
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            images[chosen] = np.roll(templates[labels[chosen]], (dy, dx), axis=(2, 3))
    images += rng.normal(0, noise, size=images.shape).astype(np.float32)
    return np.clip(images, 0, 255).astype(np.uint8), labels
