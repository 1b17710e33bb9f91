"""One CIFAR-10-shaped training epoch with augmentation, against torch + torchvision.

50,000 x 3 x 32 x 32 uint8 images, batch 256, shuffled; pad-4 random crop + random horizontal
flip + per-channel normalize -> float32 NCHW. Images per second, median of 3 epochs, worker
start-up included. In the same run:

  tinytorch     DataLoader(TensorDataset) + batch_transform=Compose([...]) (vectorized)
  (a)           torch DataLoader + torchvision PIL transforms (RandomCrop(32, padding=4),
                RandomHorizontalFlip, ToTensor, Normalize), 0 and 2 workers
  (b)           torch DataLoader + per-sample numpy transforms + default_collate, 0 and 2 workers
  (c)           bare numpy: copy float32 output bytes once per batch (bandwidth reference)

torchvision is large and only needed here: run in its own environment,
    python -m venv .venv-bench && .venv-bench/bin/pip install torch==2.14.1 torchvision==0.29.1
    .venv-bench/bin/pip install -e . && .venv-bench/bin/python benchmarks/bench_augment.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

import tinytorch as tt
from common import print_table

N, BATCH = 50_000, 256
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)


def images_per_second(make_epoch: Callable[[], Iterable[Any]], epochs: int) -> float:
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        seen = 0
        for batch in make_epoch():
            seen += len(batch[0])
        times.append(time.perf_counter() - start)
        assert seen == N, seen
    return N / statistics.median(times)


def tinytorch_pipeline(images: np.ndarray, labels: np.ndarray, workers: int, kind: str) -> Callable[[], Any]:
    augment = tt.Compose(
        [
            tt.RandomCrop(32, padding=4),
            tt.RandomHorizontalFlip(),
            tt.ToFloat(),
            tt.Normalize(MEAN, STD),
        ]
    )
    kwargs: dict[str, Any] = {}
    if workers:
        kwargs = {"num_workers": workers, "worker_type": kind}
    loader = tt.DataLoader(
        tt.TensorDataset(images, labels),
        batch_size=BATCH,
        shuffle=True,
        seed=0,
        batch_transform=augment,
        **kwargs,
    )
    return lambda: loader


def bare_numpy_write(images: np.ndarray) -> Callable[[], Any]:
    """Copy already-normalized float32 batches into fresh output arrays: one write of the bytes."""
    source = images.astype(np.float32)

    def epoch() -> Iterable[Any]:
        for start in range(0, N, BATCH):
            out = np.empty((min(BATCH, N - start), 3, 32, 32), dtype=np.float32)
            np.copyto(out, source[start : start + BATCH])
            yield (out,)

    return epoch


def torch_pipelines(images: np.ndarray, labels: np.ndarray, epochs: int) -> dict[str, float]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    results: dict[str, float] = {}
    hwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))  # torchvision's CIFAR10 stores HWC

    class NumpyAugmented(Dataset):  # type: ignore[type-arg]
        def __init__(self) -> None:
            self.rng = np.random.default_rng(0)

        def __len__(self) -> int:
            return N

        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            padded = np.pad(images[i], ((0, 0), (4, 4), (4, 4)))
            top, left = self.rng.integers(0, 9, 2)
            crop = padded[:, top : top + 32, left : left + 32]
            if self.rng.random() < 0.5:
                crop = crop[:, :, ::-1]
            out = (crop.astype(np.float32) / 255 - MEAN[:, None, None]) / STD[:, None, None]
            return out, int(labels[i])

    for workers in (0, 2):
        loader = DataLoader(NumpyAugmented(), batch_size=BATCH, shuffle=True, num_workers=workers)
        results[f"(b) torch + per-sample numpy, {workers} workers"] = images_per_second(
            lambda loader=loader: loader, epochs
        )
    try:
        import torchvision.transforms as T
        from PIL import Image
    except ImportError:
        print("torchvision is not installed: skipping (a); see this script's docstring")
        return results

    transform = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(MEAN.tolist(), STD.tolist()),
        ]
    )

    class TorchvisionStyle(Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return N

        def __getitem__(self, i: int) -> tuple[Any, int]:
            return transform(Image.fromarray(hwc[i])), int(labels[i])

    for workers in (0, 2):
        loader = DataLoader(TorchvisionStyle(), batch_size=BATCH, shuffle=True, num_workers=workers)
        results[f"(a) torch + torchvision PIL, {workers} workers"] = images_per_second(
            lambda loader=loader: loader, epochs
        )
    torch.set_num_threads(os.cpu_count() or 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=N, dtype=np.int64)

    ours: dict[str, float] = {}
    ours["tinytorch, 0 workers"] = images_per_second(tinytorch_pipeline(images, labels, 0, ""), args.epochs)
    for kind in ("thread", "process"):
        try:
            ours[f"tinytorch, 2 {kind} workers"] = images_per_second(
                tinytorch_pipeline(images, labels, 2, kind), args.epochs
            )
        except (TypeError, NotImplementedError) as e:
            print(f"tinytorch {kind} workers unavailable: {e}")
    reference = {
        "(c) bare numpy write of the output": images_per_second(bare_numpy_write(images), args.epochs)
    }
    peers = {} if args.skip_torch else torch_pipelines(images, labels, args.epochs)

    best = max(ours.values())
    rows = [
        (name, f"{rate:,.0f}", f"{best / rate:.1f}x") for name, rate in {**ours, **peers, **reference}.items()
    ]
    print(
        f"{platform.machine()}, {os.cpu_count()} cores; {N} images, batch {BATCH}; "
        f"median of {args.epochs} epochs; ratio = best tinytorch / row"
    )
    print_table(rows, ("pipeline", "images/s", "best tinytorch vs this"))
    print(
        f"fraction of the bandwidth reference (c) reached: {best / reference['(c) bare numpy write of the output']:.2f}"
    )


if __name__ == "__main__":
    main()
