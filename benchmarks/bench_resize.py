"""Resampling photos: how tinytorch's Resize/RandomResizedCrop resample, and what else could.

Part 1 (the choice, issue 17 item 3): one 500 x 375 uint8 RGB photo, (3, 375, 500), to
224 x 224 with an antialiased bilinear filter, ms per image, one core:

  Pillow, per plane      what resample.py does: three "L" images read from the (C, H, W)
                         planes without a copy
  Pillow, RGB            one RGB image: transpose to (H, W, 3), resize, transpose back
  numpy, separable       the same triangle filter as gathers + multiply-adds, per axis
  numpy, matmul          the same filter as two dense weight matrices (BLAS, one thread)

Part 2: RandomResizedCrop(224) + RandomHorizontalFlip on a batch of 256 decoded photos of
different sizes (500 x 375, 375 x 500, 500 x 333), images/s, against torchvision v2's
RandomResizedCrop + RandomHorizontalFlip per image (uint8 tensors; PIL images) when
torchvision is installed (see bench_augment.py's docstring for its environment).

Every variant runs in turn, order reversed every other round (common.in_turns); medians.
    python benchmarks/bench_resize.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import tinytorch as tt
from common import in_turns, print_table
from tinytorch.data.transforms.resample import Boxes, resized_crops

H, W, OUT = 375, 500, 224


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth image with noise: what a decoded photo looks like to a resampler."""
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / 17.0 + seed) + np.cos(y / 23.0)) * 60 + 128
    noise = np.random.default_rng(seed).normal(0, 20, (3, h, w))
    return np.clip(base[None] + noise, 0, 255).astype(np.uint8)


def triangle_weights(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights ``(out, taps)`` of an antialiased triangle filter (Pillow's bilinear)."""
    scale = size / out
    support = max(scale, 1.0)
    centres = (np.arange(out) + 0.5) * scale
    first = np.floor(centres - support).astype(np.int64)
    taps = int(np.ceil(support)) * 2 + 1
    index = first[:, None] + np.arange(taps)[None]
    weight = np.clip(1 - np.abs((index + 0.5 - centres[:, None]) / support), 0, None)
    weight = np.where((index >= 0) & (index < size), weight, 0)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.clip(index, 0, size - 1), weight.astype(np.float32)


def numpy_separable(image: np.ndarray) -> np.ndarray:
    rows, row_weights = triangle_weights(H, OUT)
    cols, col_weights = triangle_weights(W, OUT)
    x = image.astype(np.float32)
    across = np.zeros((3, H, OUT), np.float32)
    for k in range(cols.shape[1]):
        across += x[..., cols[:, k]] * col_weights[:, k]
    out = np.zeros((3, OUT, OUT), np.float32)
    for k in range(rows.shape[1]):
        out += across[:, rows[:, k], :] * row_weights[:, k][:, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def numpy_matmul(image: np.ndarray) -> np.ndarray:
    rows, row_weights = triangle_weights(H, OUT)
    cols, col_weights = triangle_weights(W, OUT)
    down = np.zeros((OUT, H), np.float32)
    np.add.at(down, (np.arange(OUT)[:, None], rows), row_weights)
    across = np.zeros((OUT, W), np.float32)
    np.add.at(across, (np.arange(OUT)[:, None], cols), col_weights)
    out = down @ (image.astype(np.float32) @ across.T)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def pillow_rgb(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    rgb = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), "RGB")
    return np.asarray(rgb.resize((OUT, OUT), Image.Resampling.BILINEAR)).transpose(2, 0, 1).copy()


def pillow_planes(image: np.ndarray) -> np.ndarray:
    whole = Boxes(*(np.array([v]) for v in (0, 0, H, W)))
    return resized_crops([image], whole, (OUT, OUT))[0]


def per_image_ms(fn: Callable[[np.ndarray], np.ndarray], images: list[np.ndarray]) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        for image in images:
            fn(image)
        return (time.perf_counter() - start) / len(images) * 1e3

    return measure


def batch_rate(fn: Callable[[], Any], n: int) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        fn()
        return n / (time.perf_counter() - start)

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {os.cpu_count()} cores; medians of {args.rounds} interleaved rounds, one thread"
    )

    images = [photo(H, W, seed) for seed in range(16)]
    reference = pillow_planes(images[0]).astype(int)
    kinds = {
        "Pillow, per plane (tinytorch)": pillow_planes,
        "Pillow, RGB with transposes": pillow_rgb,
        "numpy, separable gathers": numpy_separable,
        "numpy, two matmuls": numpy_matmul,
    }
    with threadpool_limits(1):
        ms = in_turns({name: per_image_ms(fn, images) for name, fn in kinds.items()}, args.rounds)
    rows = []
    for name, fn in kinds.items():
        difference = int(np.abs(fn(images[0]).astype(int) - reference).max())
        rows.append(
            (
                name,
                f"{ms[name]:.2f}",
                f"{ms[name] / ms['Pillow, per plane (tinytorch)']:.2f}x",
                str(difference),
            )
        )
    print("\n500 x 375 -> 224 x 224, bilinear with antialiasing, uint8")
    print_table(rows, ("resampler", "ms/image", "vs tinytorch", "max |diff| vs tinytorch"))

    sizes = [(375, 500), (500, 375), (333, 500)]
    batch = [photo(*sizes[i % 3], seed=i) for i in range(256)]
    augment = tt.Compose([tt.RandomResizedCrop(224), tt.RandomHorizontalFlip()])
    rng = np.random.default_rng(0)
    rates: dict[str, Callable[[], float]] = {
        "tinytorch RandomResizedCrop + flip, list -> (N, 3, 224, 224)": batch_rate(
            lambda: augment(batch, rng), len(batch)
        )
    }
    try:
        import torch
        import torchvision.transforms.v2 as T
        from PIL import Image

        torch.set_num_threads(1)
        tv = T.Compose([T.RandomResizedCrop(224, antialias=True), T.RandomHorizontalFlip()])
        tensors = [torch.from_numpy(x) for x in batch]
        pils = [Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0))) for x in batch]
        rates["torchvision v2, uint8 tensors, per image + stack"] = batch_rate(
            lambda: torch.stack([tv(t) for t in tensors]), len(batch)
        )
        rates["torchvision v2, PIL images, per image"] = batch_rate(lambda: [tv(p) for p in pils], len(batch))
    except ImportError:
        print("torchvision is not installed: no peer rows in part 2")
    with threadpool_limits(1):
        result = in_turns(rates, args.rounds)
    ours = result[next(iter(rates))]
    print("\nbatch of 256 photos of 3 sizes, RandomResizedCrop(224) + RandomHorizontalFlip")
    print_table(
        [(name, f"{rate:,.0f}", f"{ours / rate:.2f}x") for name, rate in result.items()],
        ("pipeline", "images/s", "tinytorch vs this"),
    )


if __name__ == "__main__":
    main()
