"""The datasets the analysis commands measure: CIFAR-10 from disk, or generated data."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tinytorch.data import (
    CIFAR10Dataset,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    TensorDataset,
)
from tinytorch.demo.synthetic import synthetic_cifar

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "augmentation", "load_source"]

CIFAR_MEAN = np.array([125.3, 123.0, 113.9])
CIFAR_STD = np.array([63.0, 62.1, 66.7])


def load_source(
    root: str | os.PathLike[str], synthetic: bool, size: int, md5: str | None = None
) -> tuple[Any, str]:
    """``(dataset, description)``: CIFAR-10's training split in ``root`` (no download; ``md5``:
    that of a mirror's archive in ``root``), or ``size`` generated CIFAR-shaped images."""
    if synthetic:
        return TensorDataset(*synthetic_cifar(size, seed=0)), f"{size:,} generated images [synthetic]"
    dataset = CIFAR10Dataset(root, train=True, download=False, md5=md5)
    return dataset, f"CIFAR-10 training split in {root} ({len(dataset):,} images)"


def augmentation() -> Compose:
    """The standard CIFAR training augmentation, per batch: pad-4 crop, flip, normalize."""
    return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(CIFAR_MEAN, CIFAR_STD)])
