"""Epochs of real JPEG folders, tinytorch ImageFolder against torchvision ImageFolder + PIL + DataLoader.

(a) CIFAR-10 JPEGs (a subset of /work/data/cifar-images/train, the same files for both, linked
    into a temporary ImageFolder tree): pad-4 random crop + random horizontal flip + normalize.
(b) 500x375 JPEGs made at run time from CIFAR images (Pillow bicubic upscale, quality 90):
    RandomResizedCrop(224) + random horizontal flip + normalize.

Float32 NCHW batches of 256, shuffled. Images per second for one epoch, worker start-up
included; the pipelines take turns, one epoch each per round (order reversed every other
round), median over the rounds. torchvision runs from its own interpreter (/work/venv-bench)
in a subprocess, one epoch per round, timed inside it.

tinytorch's pipelines: ImageFolder (simplejpeg, decode threads) -> StackedSamples -> the
loader's batch_transform (vectorized crop/flip/normalize). For (b) the RandomResizedCrop is a
stand-in written here (per sample, Pillow's resize with torchvision's crop-box rule) until the
transforms stage has its own; it runs as ImageFolder(transform=...), so the images arrive
224x224 and are stacked.

    PYTHONPATH=src python benchmarks/bench_images.py              # both tasks
    PYTHONPATH=src python benchmarks/bench_images.py --task a --images 10000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CIFAR = Path("/work/data/cifar-images/train")
PEER_PYTHON = Path("/work/venv-bench/bin/python")
BATCH = 256
CIFAR_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR_STD = [0.2470, 0.2435, 0.2616]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


# -- data, made at run time --------------------------------------------------------------------


def cifar_subset(target: Path, images: int) -> Path:
    """``images`` CIFAR training JPEGs (every k-th file of each class) linked into ``target``."""
    classes = sorted(p for p in CIFAR.iterdir() if p.is_dir())
    per_class = images // len(classes)
    for cls in classes:
        files = sorted(cls.iterdir())
        step = max(1, len(files) // per_class)
        (target / cls.name).mkdir(parents=True)
        for f in files[::step][:per_class]:
            (target / cls.name / f.name).symlink_to(f)
    return target


def large_jpegs(target: Path, images: int, size: tuple[int, int] = (500, 375)) -> Path:
    """``images`` 500x375 JPEGs (quality 90) upscaled from CIFAR images, in class folders."""
    from PIL import Image

    classes = sorted(p for p in CIFAR.iterdir() if p.is_dir())
    per_class = images // len(classes)
    for cls in classes:
        (target / cls.name).mkdir(parents=True)
        for f in sorted(cls.iterdir())[:per_class]:
            image = Image.open(f).convert("RGB").resize(size, Image.Resampling.BICUBIC)
            image.save(target / cls.name / f.name, format="JPEG", quality=90)
    return target


# -- tinytorch ---------------------------------------------------------------------------------


class RandomResizedCropStandIn:
    """torchvision's RandomResizedCrop(224) on one ``(C, H, W)`` uint8 image (benchmark stand-in).

    Crop box drawn with torchvision's rule (10 tries of scale (0.08, 1) and log-uniform ratio
    (3/4, 4/3), then the central-crop fallback) from the sample's generator; resized with
    Pillow's bilinear filter (reducing_gap off, as torchvision's PIL path).
    """

    def __init__(self, size: int = 224) -> None:
        self.size = size

    def __call__(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        import tinytorch as tt

        rng = tt.get_batch_context().rng
        _, height, width = image.shape
        top, left, h, w = crop_box(rng, height, width)
        pil = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))
        out = pil.resize(
            (self.size, self.size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)
        )
        return np.asarray(out).transpose(2, 0, 1)


def crop_box(rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
    area = height * width
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < 3 / 4:
        w, h = width, round(width / (3 / 4))
    elif in_ratio > 4 / 3:
        h, w = height, round(height * (4 / 3))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def tinytorch_loader(
    task: str, root: Path, workers: int, kind: str, threads: int | None, decode_size: int | None = None
) -> Any:
    """(a): decode -> stacked uint8 -> batch crop/flip/normalize. (b): RandomResizedCrop per sample
    (in the decode threads) -> stacked uint8 -> batch flip/normalize."""
    import tinytorch as tt

    if task == "a":
        dataset = tt.ImageFolder(root, num_threads=threads)
        augment = tt.Compose(
            [
                tt.RandomCrop(32, padding=4),
                tt.RandomHorizontalFlip(),
                tt.ToFloat(),
                tt.Normalize(CIFAR_MEAN, CIFAR_STD),
            ]
        )
    else:
        crop = RandomResizedCropStandIn(224)
        dataset = tt.ImageFolder(root, transform=crop, num_threads=threads, decode_size=decode_size)
        augment = tt.Compose(
            [tt.RandomHorizontalFlip(), tt.ToFloat(), tt.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        )
    kwargs: dict[str, Any] = {"num_workers": workers, "worker_type": kind} if workers else {}
    return tt.DataLoader(dataset, batch_size=BATCH, shuffle=True, seed=0, batch_transform=augment, **kwargs)


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have been waited for."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def epoch_rate(loader: Any, n: int) -> tuple[float, float]:
    """(images/s, CPU ms per 1000 images) for one epoch; the CPU time is exact only without
    process workers (per-epoch workers are waited for after the epoch ends)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    seen = 0
    for images, _ in loader:
        assert images.dtype == np.float32
        assert images.ndim == 4
        seen += len(images)
    assert seen == n, (seen, n)
    return n / (time.perf_counter() - start), 1e6 * (cpu_seconds() - cpu) / n


# -- torchvision, in its own interpreter -------------------------------------------------------


def peer_epoch(task: str, root: str, workers: int) -> tuple[float, float]:
    """One epoch of torchvision ImageFolder + PIL transforms + torch DataLoader (run in the peer)."""
    import torch
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    torch.set_num_threads(1)
    if task == "a":
        mean, std, first = CIFAR_MEAN, CIFAR_STD, [T.RandomCrop(32, padding=4)]
    else:
        mean, std, first = IMAGENET_MEAN, IMAGENET_STD, [T.RandomResizedCrop(224)]
    transform = T.Compose([*first, T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    dataset = ImageFolder(root, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers)
    start, cpu = time.perf_counter(), cpu_seconds()
    seen = sum(len(x) for x, _ in loader)
    assert seen == len(dataset)
    wall = time.perf_counter() - start
    del loader  # its workers have been joined at the end of the epoch: their CPU time is counted
    return seen / wall, 1e6 * (cpu_seconds() - cpu) / seen


def peer_measure(task: str, root: Path, workers: int) -> Callable[[], tuple[float, float]]:
    def run() -> tuple[float, float]:
        out = subprocess.run(
            [str(PEER_PYTHON), __file__, "--peer", task, "--root", str(root), "--workers", str(workers)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        return float(result["rate"]), float(result["cpu"])

    return run


# -- main ----------------------------------------------------------------------------------------


def stage_shares(loader: Any) -> str:
    stats = loader.stats("last")
    stages = stats.stage_seconds
    total = sum(stages.values())
    if not total:
        return ""
    parts = [f"{name} {100 * s / total:.0f}%" for name, s in stages.items() if s / total >= 0.005]
    return ", ".join(parts)


def run_task(task: str, root: Path, n: int, rounds: int, threads: int | None, skip_peer: bool) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from common import print_table

    ours = {
        "tinytorch, 0 workers": tinytorch_loader(task, root, 0, "", threads),
        "tinytorch, 2 process workers": tinytorch_loader(task, root, 2, "process", threads),
        "tinytorch, 2 thread workers": tinytorch_loader(task, root, 2, "thread", threads),
    }
    if task == "b":  # 500x375 decoded at 1/2 scale (250x188): cheaper, not the same pixels
        ours["tinytorch, 0 workers, decode_size=187"] = tinytorch_loader(task, root, 0, "", threads, 187)
        ours["tinytorch, 2 process workers, decode_size=187"] = tinytorch_loader(
            task, root, 2, "process", threads, 187
        )
    measures: dict[str, Callable[[], tuple[float, float]]] = {
        name: (lambda lo=lo: epoch_rate(lo, n)) for name, lo in ours.items()
    }
    if not skip_peer:
        measures["torchvision + PIL, 2 workers"] = peer_measure(task, root, 2)
        measures["torchvision + PIL, 0 workers"] = peer_measure(task, root, 0)
    for name, measure in measures.items():  # warm-up (page cache, imports); the peer's once
        if not name.endswith("0 workers") or name in ours:
            measure()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
    names = list(measures)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(measures[name]())
    rates = {name: statistics.median(rate for rate, _ in v) for name, v in results.items()}
    cpu = {name: statistics.median(c for _, c in v) for name, v in results.items()}
    peer = rates.get("torchvision + PIL, 2 workers")
    peer_cpu = cpu.get("torchvision + PIL, 0 workers")
    rows = []
    for name, rate in rates.items():
        share = stage_shares(ours[name]) if name in ours else ""
        exact = "process" not in name
        rows.append(
            (
                name,
                f"{rate:,.0f}",
                f"{rate / peer:.1f}x" if peer else "-",
                f"{cpu[name]:,.0f}" if exact else "-",
                f"{peer_cpu / cpu[name]:.1f}x" if exact and peer_cpu else "-",
                share,
            )
        )
    print(
        f"\n({task}) {n} images, batch {BATCH}, median of {rounds} interleaved rounds; load {os.getloadavg()}"
    )
    print_table(
        rows,
        (
            "pipeline",
            "images/s",
            "vs torchvision 2 workers",
            "CPU ms / 1000 images",
            "CPU: torchvision 0 workers / this",
            "stage shares (loader.stats)",
        ),
    )
    for loader in ours.values():
        loader.close()
        loader.dataset.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=["a", "b", "both"], default="both")
    parser.add_argument("--images", type=int, default=10_000, help="CIFAR subset for (a) (default 10000)")
    parser.add_argument("--large", type=int, default=2560, help="500x375 images for (b) (default 2560)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="ImageFolder num_threads (default: its own)"
    )
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--peer", choices=["a", "b"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        rate, cpu = peer_epoch(args.peer, args.root, args.workers)
        print(json.dumps({"rate": rate, "cpu": cpu}))
        return

    print(f"{os.cpu_count()} cores, load {os.getloadavg()}, {time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        if args.task in ("a", "both"):
            root = cifar_subset(Path(tmp) / "cifar", args.images)
            n = sum(1 for _ in root.glob("*/*.jpg"))
            run_task("a", root, n, args.rounds, args.threads, args.skip_peer)
        if args.task in ("b", "both"):
            start = time.perf_counter()
            root = large_jpegs(Path(tmp) / "large", args.large)
            n = sum(1 for _ in root.glob("*/*.jpg"))
            print(f"\nmade {n} 500x375 JPEGs in {time.perf_counter() - start:.1f} s")
            run_task("b", root, n, args.rounds, args.threads, args.skip_peer)


if __name__ == "__main__":
    main()
