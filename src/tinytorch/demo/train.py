"""The demo's training run: CIFAR-10 through the full pipeline into a numpy classifier.

Obtain the data -> fit the Normalizer by streaming -> train and test loaders (augmentation,
shuffling, workers) -> a small numpy model trained with SGD -> test accuracy, loader
throughput and the share of each step spent waiting for data, after every epoch.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinytorch.data import (
    CIFAR10Dataset,
    Compose,
    DataLoader,
    Normalize,
    Normalizer,
    RandomCrop,
    RandomHorizontalFlip,
    Subset,
    TensorDataset,
)
from tinytorch.demo.model import MLP, SGD, SoftmaxRegression, cross_entropy
from tinytorch.demo.synthetic import synthetic_cifar

__all__ = ["DemoConfig", "EpochResult", "default_workers", "run_demo"]


def default_workers() -> int:
    """Thread workers for this machine: one per core beyond the one the model's math uses."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs. The defaults are the README's ``tinytorch-data demo``."""

    root: str = "./data"
    synthetic: bool = False
    epochs: int = 15
    model: str = "mlp"
    hidden: int = 1024
    batch_size: int = 128
    lr: float = 0.02
    workers: int | None = None
    seed: int = 0
    url: str | None = None
    md5: str | None = None
    progress: bool | None = None
    synthetic_train: int = 50_000
    synthetic_test: int = 10_000
    shuffle: bool = True
    sort_by_label: bool = False
    """Present the training set ordered by class (as some raw datasets are stored): with
    ``shuffle=False`` this shows why training needs shuffling."""


@dataclass(frozen=True)
class EpochResult:
    """One epoch's outcome."""

    epoch: int
    train_loss: float
    test_accuracy: float
    images_per_second: float
    wait_share: float
    seconds: float


def _datasets(config: DemoConfig) -> tuple[Any, Any, str]:
    train: Any
    test: Any
    if config.synthetic:
        train = TensorDataset(*synthetic_cifar(config.synthetic_train, seed=config.seed + 1))
        test = TensorDataset(*synthetic_cifar(config.synthetic_test, seed=config.seed + 2))
        return train, test, "generated, learnable CIFAR-shaped data (NOT CIFAR-10)"
    train, test = (
        CIFAR10Dataset(
            config.root,
            train=split,
            download=True,
            url=config.url,
            md5=config.md5,
            progress=config.progress,
        )
        for split in (True, False)
    )
    return train, test, f"CIFAR-10 in {config.root}"


def _model(config: DemoConfig) -> MLP | SoftmaxRegression:
    if config.model == "softmax":
        return SoftmaxRegression(3072, 10, seed=config.seed)
    if config.model == "mlp":
        return MLP(3072, config.hidden, 10, seed=config.seed)
    raise ValueError(f"model must be 'mlp' or 'softmax', got {config.model!r}")


def run_demo(config: DemoConfig, out: Callable[[str], None] = print) -> list[EpochResult]:
    """Train and evaluate as described in the module docstring; returns one result per epoch.

    Raises:
        DownloadError, FileNotFoundError, ChecksumError: CIFAR-10 could not be obtained.
    """
    tag = "[synthetic] " if config.synthetic else ""
    started = time.perf_counter()
    train, test, source = _datasets(config)
    if config.sort_by_label:
        train = Subset(train, np.argsort(_labels(train), kind="stable"))
        source += ", training set sorted by label"
    out(f"{tag}data: {source}: {len(train):,} training and {len(test):,} test images")

    normalizer = Normalizer(mode="per_channel").fit(DataLoader(train, batch_size=4096, stats=False))
    mean, std = normalizer.mean, normalizer.std
    out(
        f"{tag}normalizer fitted by streaming: per-channel mean {np.round(mean, 1).tolist()}, "
        f"std {np.round(std, 1).tolist()}"
    )

    workers = default_workers() if config.workers is None else config.workers
    normalize = Normalize(mean, std)
    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), normalize])
    train_loader = DataLoader(
        train,
        batch_size=config.batch_size,
        shuffle=config.shuffle,
        seed=config.seed,
        batch_transform=augment,
        num_workers=workers,
        worker_type="thread",
        persistent_workers=workers > 0,
    )
    test_loader = DataLoader(test, batch_size=1000, batch_transform=normalize)
    model = _model(config)
    optimizer = SGD(model.params, lr=config.lr)
    shape = "softmax regression 3072-10" if config.model == "softmax" else f"MLP 3072-{config.hidden}-10"
    out(
        f"{tag}model: {shape} in numpy, SGD momentum 0.9, lr {config.lr} (cosine); loader: batch "
        f"{config.batch_size}, {'shuffled' if config.shuffle else 'NOT shuffled'}, crop+flip+normalize "
        f"per batch, {workers} thread workers"
    )

    show = sys.stderr.isatty() if config.progress is None else config.progress
    results = []
    steps = config.epochs * len(train_loader)
    step = 0
    from tqdm import tqdm

    with train_loader:
        for epoch in range(config.epochs):
            epoch_start = time.perf_counter()
            losses = []
            bar = tqdm(
                train_loader,
                desc=f"{tag}epoch {epoch + 1}/{config.epochs}",
                disable=not show,
                leave=False,
                unit="batch",
            )
            for images, labels in bar:
                optimizer.lr = config.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
                logits, cache = model.forward(images.reshape(len(images), -1))
                loss, grad = cross_entropy(logits, labels)
                optimizer.step(model.backward(grad, cache))
                losses.append(loss)
                step += 1
            stats = train_loader.stats()
            accuracy = evaluate(model, test_loader)
            result = EpochResult(
                epoch + 1,
                float(np.mean(losses)),
                accuracy,
                stats.samples_per_second if stats else 0.0,
                stats.wait_share if stats else 0.0,
                time.perf_counter() - epoch_start,
            )
            results.append(result)
            out(
                f"{tag}epoch {result.epoch}/{config.epochs}: train loss {result.train_loss:.3f}, "
                f"test accuracy {result.test_accuracy:.1%}, loader {result.images_per_second:,.0f} "
                f"images/s, waiting for data {result.wait_share:.0%} of each step "
                f"({result.seconds:.0f} s)"
            )
    out(
        f"{tag}final test accuracy {results[-1].test_accuracy:.1%} after {config.epochs} epochs "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return results


def _labels(dataset: Any) -> np.ndarray[Any, Any]:
    if isinstance(dataset, TensorDataset):
        return np.asarray(dataset.arrays[1])
    return np.asarray(dataset.targets)


def evaluate(model: MLP | SoftmaxRegression, loader: DataLoader[Any]) -> float:
    """Share of correctly classified samples."""
    correct = total = 0
    for images, labels in loader:
        logits, _ = model.forward(images.reshape(len(images), -1))
        correct += int((logits.argmax(axis=1) == labels).sum())
        total += len(labels)
    return correct / total
