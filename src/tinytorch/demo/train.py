"""The demo's training run: CIFAR-10 through the full pipeline into a numpy classifier.

Obtain the data -> fit the Normalizer by streaming -> train and test loaders (augmentation,
shuffling, workers) -> a small numpy model trained with SGD -> test accuracy, loader
throughput and the share of each step spent waiting for data, after every epoch.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from tinytorch.analysis.machine import available_cores
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

__all__ = ["DemoConfig", "EpochResult", "blas_threads", "default_workers", "run_demo"]


def default_workers(cores: int | None = None) -> int:
    """Thread workers for ``cores`` (default: the cores this process may use): one per core
    beyond the one the model's math uses, at least 1, at most 4."""
    cores = available_cores() if cores is None else cores
    return max(1, min(4, cores - 1))


def blas_threads(workers: int, cores: int | None = None) -> int:
    """Threads for the BLAS library's matrix products: the cores the loader's workers leave.

    BLAS libraries (OpenBLAS, MKL) start one thread per core and spin while they wait for each
    other; next to busy loader workers (or another program) a spinning thread holds a core
    that the thread it waits for needs, and a step can take several times longer (measured
    with a busy neighbour on 2 cores: docs/analysis.md). ``cores - workers``, at least 1.
    """
    cores = available_cores() if cores is None else cores
    return max(1, cores - workers)


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
    blas_threads: int | None = None
    """Threads for the model's matrix products; ``None``: :func:`blas_threads` for the machine."""

    def __post_init__(self) -> None:
        positive = {
            "epochs": self.epochs,
            "hidden": self.hidden,
            "batch_size": self.batch_size,
            "synthetic_train": self.synthetic_train,
            "synthetic_test": self.synthetic_test,
        }
        if self.blas_threads is not None:
            positive["blas_threads"] = self.blas_threads
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"DemoConfig({name}=...) must be at least 1, got {value}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"DemoConfig(workers=...) must be 0 or more (or None), got {self.workers}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"DemoConfig(lr=...) must be a positive number, got {self.lr}")
        if self.model not in ("mlp", "softmax"):
            raise ValueError(f"DemoConfig(model=...) must be 'mlp' or 'softmax', got {self.model!r}")


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
    return MLP(3072, config.hidden, 10, seed=config.seed)


def run_demo(config: DemoConfig, out: Callable[[str], None] = print) -> list[EpochResult]:
    """Train and evaluate as described in the module docstring; returns one result per epoch.

    The BLAS library's threads are limited to :func:`blas_threads` (or ``config.blas_threads``)
    for the run, and restored afterwards (threadpoolctl).

    Raises:
        DownloadError, FileNotFoundError, ChecksumError: CIFAR-10 could not be obtained.
    """
    tag = "[synthetic] " if config.synthetic else ""
    cores = available_cores()
    workers = default_workers(cores) if config.workers is None else config.workers
    threads = blas_threads(workers, cores) if config.blas_threads is None else config.blas_threads
    with threadpool_limits(limits=threads, user_api="blas"):
        libraries = sorted({m["internal_api"] for m in threadpool_info() if m["user_api"] == "blas"})
        out(
            f"{tag}machine: {cores} cores; loader: {workers} thread worker{'s' * (workers != 1)}; "
            f"matrix products ({', '.join(libraries) or 'BLAS'}): {threads} "
            f"thread{'s' * (threads != 1)}" + (" (cores - workers)" if config.blas_threads is None else "")
        )
        return _train(config, workers, tag, out)


def _train(config: DemoConfig, workers: int, tag: str, out: Callable[[str], None]) -> list[EpochResult]:
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
        "per batch"
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
        f"{tag}final test accuracy {results[-1].test_accuracy:.1%} after {config.epochs} "
        f"epoch{'s' * (config.epochs != 1)} in {time.perf_counter() - started:.0f} s"
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
