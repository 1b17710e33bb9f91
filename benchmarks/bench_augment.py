"""One CIFAR-10-shaped training epoch with augmentation, against torch + torchvision.

50,000 x 3 x 32 x 32 uint8 images, batch 256, shuffled; pad-4 random crop + random horizontal
flip + per-channel normalize -> float32 NCHW. Images per second: every pipeline runs one epoch
per round, the pipelines taking turns (order reversed every other round), median over the
rounds; worker start-up is included except in the "persistent" rows (persistent_workers=True,
offered to both libraries). In the same run:

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
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

import tinytorch as tt
from common import in_turns, print_table

N, BATCH = 50_000, 256
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)


def epoch_seconds(make_epoch: Callable[[], Iterable[Any]]) -> float:
    start = time.perf_counter()
    seen = 0
    for batch in make_epoch():
        seen += len(batch[0])
    assert seen == N, seen
    return time.perf_counter() - start


def interleaved(pipelines: dict[str, Callable[[], Iterable[Any]]], rounds: int) -> dict[str, float]:
    """Images/s of each pipeline: one warm-up epoch each, then ``rounds`` rounds of one epoch
    per pipeline in turn (:func:`common.in_turns`); median per pipeline."""
    for make_epoch in pipelines.values():
        epoch_seconds(make_epoch)
    seconds = in_turns({name: lambda p=p: epoch_seconds(p) for name, p in pipelines.items()}, rounds)
    return {name: N / s for name, s in seconds.items()}


def tinytorch_pipeline(
    images: np.ndarray, labels: np.ndarray, workers: int, kind: str, persistent: bool = False
) -> Callable[[], Any]:
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
        kwargs = {"num_workers": workers, "worker_type": kind, "persistent_workers": persistent}
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
    """Copy already-normalized float32 batches into fresh output arrays: one write of the bytes.

    The source cycles over 8,192 images (96 MB, larger than the last-level cache, so it streams
    from memory) rather than holding all 50,000 as float32: 600 MB more in this process would
    make every fork of the non-persistent workers (ours and the peers') slower.
    """
    source = images[:8192].astype(np.float32)

    def epoch() -> Iterable[Any]:
        for start in range(0, N, BATCH):
            at = start % (len(source) - BATCH)
            out = np.empty((min(BATCH, N - start), 3, 32, 32), dtype=np.float32)
            np.copyto(out, source[at : at + len(out)])
            yield (out,)

    return epoch


def torch_pipelines(images: np.ndarray, labels: np.ndarray) -> dict[str, Callable[[], Iterable[Any]]]:
    """The peers' pipelines (loaders built once; persistent ones keep their workers)."""
    from torch.utils.data import DataLoader, Dataset

    pipelines: dict[str, Callable[[], Iterable[Any]]] = {}
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

    def add(label: str, dataset: Any) -> None:
        for workers, persistent in ((0, False), (2, False), (2, True)):
            loader = DataLoader(
                dataset, batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=persistent
            )
            name = f"{label}, {workers} workers" + (", persistent" if persistent else "")
            pipelines[name] = lambda loader=loader: loader

    add("(b) torch + per-sample numpy", NumpyAugmented())
    try:
        import torchvision.transforms as T
        from PIL import Image
    except ImportError:
        print("torchvision is not installed: skipping (a); see this script's docstring")
        return pipelines

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

    add("(a) torch + torchvision PIL", TorchvisionStyle())
    return pipelines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=N, dtype=np.int64)

    ours = {"tinytorch, 0 workers": tinytorch_pipeline(images, labels, 0, "")}
    for kind in ("thread", "process"):
        for persistent in (False, True):
            name = f"tinytorch, 2 {kind} workers" + (", persistent" if persistent else "")
            ours[name] = tinytorch_pipeline(images, labels, 2, kind, persistent)
    reference = {"(c) bare numpy write of the output": bare_numpy_write(images)}
    peers = {} if args.skip_torch else torch_pipelines(images, labels)
    rates = interleaved({**ours, **peers, **reference}, args.rounds)

    best_name = max(ours, key=rates.__getitem__)
    best = rates[best_name]
    rows = [(name, f"{rate:,.0f}", f"{best / rate:.1f}x") for name, rate in rates.items()]
    print(
        f"{platform.machine()}, {os.cpu_count()} cores; {N} images, batch {BATCH}; "
        f"median of {args.rounds} interleaved rounds; ratio = best tinytorch / row"
    )
    print_table(rows, ("pipeline", "images/s", "best tinytorch vs this"))
    print(f"best tinytorch: {best_name}")
    for peer in ("(a) torch + torchvision PIL", "(b) torch + per-sample numpy"):
        two = [rate for name, rate in rates.items() if name.startswith(f"{peer}, 2 workers")]
        if two:
            print(f"{peer}, best with 2 workers: best tinytorch is {best / max(two):.1f}x")
    print(
        f"fraction of the bandwidth reference (c) reached: {best / rates['(c) bare numpy write of the output']:.2f}"
    )


if __name__ == "__main__":
    main()
