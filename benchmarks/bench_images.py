"""Epochs of real JPEG folders: tinytorch ImageFolder / ImageShards against torchvision ImageFolder + PIL.

(a) CIFAR-10 JPEGs (a subset of /work/data/cifar-images/train, the same files for both, linked
    into a temporary ImageFolder tree): pad-4 random crop + random horizontal flip + normalize.
(b) 500x375 JPEGs made at run time from CIFAR images (Pillow bicubic upscale, quality 90):
    RandomResizedCrop(224) + random horizontal flip + normalize.

Float32 NCHW batches of 256, shuffled. Images per second for one epoch, worker start-up
included; the pipelines take turns, one epoch each per round (order reversed every other
round), median over the rounds. torchvision runs from its own interpreter (/work/venv-bench)
in a subprocess, one epoch per round, timed inside it.

tinytorch reads the folder (``ImageFolder``) or the same files converted to encoded shards
(``write_image_shards``, what ``tinytorch-data convert imagefolder`` runs; ``ImageShards``),
decodes in the dataset's threads (simplejpeg), and for (a) stacks uint8 batches for the
loader's vectorized batch_transform. For (b) ``RandomResizedCrop(224)`` runs two ways:

* ``per sample``: ``ImageFolder(transform=Compose([RandomResizedCrop(224), RandomHorizontalFlip()]))``,
  the torchvision way: in the decode threads, right after each image is decoded; the 224x224
  images are stacked and ``ToFloat + Normalize`` run per batch.
* ``per batch``: the decoded images (all 500x375 here, so stacked ``(256, 3, 375, 500)``; a list
  when sizes differ) go to the loader's ``batch_transform`` ``Compose([RandomResizedCrop(224),
  RandomHorizontalFlip(), ToFloat(), Normalize(...)])``.

    PYTHONPATH=src python benchmarks/bench_images.py              # both tasks
    PYTHONPATH=src python benchmarks/bench_images.py --task a --images 10000 --rounds 3
    PYTHONPATH=src python benchmarks/bench_images.py --task b --only "per sample" --rounds 5
"""

from __future__ import annotations

import argparse
import io
import json
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


def tinytorch_loader(
    task: str,
    dataset: Any,
    workers: int,
    kind: str,
    per_batch: bool = False,
) -> Any:
    """(a): decode -> stacked uint8 -> batch crop/flip/normalize. (b): see the module docs."""
    import tinytorch as tt

    if task == "a":
        augment = tt.Compose(
            [
                tt.RandomCrop(32, padding=4),
                tt.RandomHorizontalFlip(),
                tt.ToFloat(),
                tt.Normalize(CIFAR_MEAN, CIFAR_STD),
            ]
        )
    elif per_batch:
        augment = tt.Compose(
            [
                tt.RandomResizedCrop(224),
                tt.RandomHorizontalFlip(),
                tt.ToFloat(),
                tt.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )
    else:
        augment = tt.Compose([tt.ToFloat(), tt.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    kwargs: dict[str, Any] = {"num_workers": workers, "worker_type": kind} if workers else {}
    return tt.DataLoader(dataset, batch_size=BATCH, shuffle=True, seed=0, batch_transform=augment, **kwargs)


def tinytorch_dataset(
    task: str,
    source: str,
    path: Path,
    threads: int | None,
    per_sample_crop: bool,
    decode_size: int | None = None,
) -> Any:
    """ImageFolder or ImageShards, with the per-sample crop of (b) when asked."""
    import tinytorch as tt

    transform = None
    if task == "b" and per_sample_crop:
        transform = tt.Compose([tt.RandomResizedCrop(224), tt.RandomHorizontalFlip()])
    cls = tt.ImageFolder if source == "folder" else tt.ImageShards
    return cls(path, transform=transform, num_threads=threads, decode_size=decode_size)


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


def variants(task: str, roots: dict[str, Path], threads: int | None) -> dict[str, Any]:
    """Our loaders by name, each over its own dataset object."""
    out = {}
    modes = [("", False)] if task == "a" else [("per sample, ", False), ("per batch, ", True)]
    for mode, per_batch in modes:
        for source, path in roots.items():
            for workers, kind, label in (
                (0, "", "0 workers"),
                (2, "process", "2 process"),
                (2, "thread", "2 thread"),
            ):
                dataset = tinytorch_dataset(task, source, path, threads, per_sample_crop=not per_batch)
                name = f"tinytorch {source}, {mode}{label}"
                out[name] = tinytorch_loader(task, dataset, workers, kind, per_batch)
    if task == "b":  # 500x375 decoded at 1/2 scale (250x188): cheaper, not the same pixels
        for workers, kind, label in ((0, "", "0 workers"), (2, "process", "2 process")):
            dataset = tinytorch_dataset(task, "shards", roots["shards"], threads, True, decode_size=187)
            name = f"tinytorch shards, per sample, {label}, decode_size=187"
            out[name] = tinytorch_loader(task, dataset, workers, kind)
    return out


def run_task(
    task: str, roots: dict[str, Path], n: int, rounds: int, threads: int | None, skip_peer: bool, only: str
) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from common import print_table

    ours = {name: lo for name, lo in variants(task, roots, threads).items() if only in name}
    measures: dict[str, Callable[[], tuple[float, float]]] = {
        name: (lambda lo=lo: epoch_rate(lo, n)) for name, lo in ours.items()
    }
    if not skip_peer:
        measures["torchvision + PIL, 2 workers"] = peer_measure(task, roots["folder"], 2)
        measures["torchvision + PIL, 0 workers"] = peer_measure(task, roots["folder"], 0)
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
                f"{rate / peer:.2f}x" if peer else "-",
                f"{cpu[name]:,.0f}" if exact else "-",
                f"{peer_cpu / cpu[name]:.2f}x" if exact and peer_cpu else "-",
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


# -- where the time of (b) goes: one thread, stage by stage --------------------------------------


def jpeg_bytes(root: Path, limit: int) -> list[bytes]:
    return [p.read_bytes() for p in sorted(root.glob("*/*.jpg"))[:limit]]


def median_ms(fn: Callable[[], object], n: int, rounds: int) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        fn()
        return 1e3 * (time.perf_counter() - start) / n

    return run


def profile_ours(datas: list[bytes], rounds: int) -> dict[str, float]:
    """ms per image of each step of (b), one thread, interleaved rounds, medians."""
    import simplejpeg
    from PIL import Image

    import tinytorch as tt
    from tinytorch.data.seeding import BatchContext, batch_context

    sys.path.insert(0, str(Path(__file__).parent))
    from common import in_turns

    n = len(datas)
    decode = tt.data.storage.decode.ImageDecoder.resolve("auto")
    half = tt.data.storage.decode.ImageDecoder.resolve("auto", decode_size=187)
    full = [decode(d) for d in datas]
    halves = [half(d) for d in datas]
    crop = tt.Compose([tt.RandomResizedCrop(224), tt.RandomHorizontalFlip()])
    context = BatchContext(0, 0, 0)

    def crops(images: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for p, image in enumerate(images):
            with batch_context(context.for_sample(p)):
                out.append(crop(image))
        return out

    rrc = tt.RandomResizedCrop(224)
    heights = np.array([x.shape[1] for x in full])
    widths = np.array([x.shape[2] for x in full])
    boxes = rrc.boxes(rrc.draw(np.random.default_rng(0), n), heights, widths)
    box_list = list(zip(*(b.tolist() for b in boxes), strict=True))

    def pillow_box_resize() -> None:  # crop and resize in one call: the filter reads past the box
        for image, (top, left, h, w) in zip(full, box_list, strict=True):
            pil = Image.frombuffer(
                "RGB", (image.shape[2], image.shape[1]), image.transpose(1, 2, 0), "raw", "RGB", 0, 1
            )
            np.asarray(pil.resize((224, 224), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)))

    stacked = np.stack(crops(full))
    norm = tt.Compose([tt.ToFloat(), tt.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    warm = norm(stacked, np.random.default_rng(0), batched=True)

    def normalize_warm() -> None:
        np.multiply(stacked, 1.0 / 255, out=warm, casting="unsafe")  # the same passes, into warm memory
        np.subtract(warm, 0.45, out=warm)
        np.divide(warm, 0.225, out=warm)

    measures = {
        "decode, simplejpeg (ours)": median_ms(lambda: [decode(d) for d in datas], n, rounds),
        "decode at 1/2 scale (decode_size=187)": median_ms(lambda: [half(d) for d in datas], n, rounds),
        "decode, fast DCT + fast upsampling": median_ms(
            lambda: [simplejpeg.decode_jpeg(d, "RGB", fastdct=True, fastupsample=True) for d in datas],
            n,
            rounds,
        ),
        "decode, Pillow (torchvision's)": median_ms(
            lambda: [np.asarray(Image.open(io.BytesIO(d)).convert("RGB")) for d in datas], n, rounds
        ),
        "RandomResizedCrop + flip per sample (ours)": median_ms(lambda: crops(full), n, rounds),
        "the same on the 1/2-scale decode": median_ms(lambda: crops(halves), n, rounds),
        "crop + resize in one Pillow call (box=)": median_ms(pillow_box_resize, n, rounds),
        "ToFloat + Normalize, fresh batch (ours)": median_ms(
            lambda: norm(stacked, np.random.default_rng(0), batched=True), n, rounds
        ),
        "ToFloat + Normalize passes, warm output": median_ms(normalize_warm, n, rounds),
    }
    return in_turns(measures, rounds)


def peer_profile(root: str, limit: int, rounds: int) -> dict[str, float]:
    """ms per image of each step of torchvision's (b) pipeline, one thread (run in the peer)."""
    import torch
    import torchvision.transforms as T
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).parent))
    from common import in_turns

    torch.set_num_threads(1)
    datas = jpeg_bytes(Path(root), limit)
    n = len(datas)
    images = [Image.open(io.BytesIO(d)).convert("RGB") for d in datas]
    crop, flip, to_tensor = T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()
    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    crops = [crop(x) for x in images]
    tensors = [to_tensor(x) for x in crops]
    measures = {
        "decode, PIL open + convert": median_ms(
            lambda: [Image.open(io.BytesIO(d)).convert("RGB") for d in datas], n, rounds
        ),
        "RandomResizedCrop": median_ms(lambda: [crop(x) for x in images], n, rounds),
        "RandomHorizontalFlip": median_ms(lambda: [flip(x) for x in crops], n, rounds),
        "ToTensor": median_ms(lambda: [to_tensor(x) for x in crops], n, rounds),
        "Normalize": median_ms(lambda: [normalize(x) for x in tensors], n, rounds),
        "collate (torch.stack)": median_ms(lambda: torch.stack(tensors), n, rounds),
    }
    return in_turns(measures, rounds)


def run_profile(root: Path, limit: int, rounds: int) -> None:
    ours = profile_ours(jpeg_bytes(root, limit), rounds)
    out = subprocess.run(
        [
            str(PEER_PYTHON),
            __file__,
            "--peer-profile",
            str(root),
            "--images",
            str(limit),
            "--rounds",
            str(rounds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    peer = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"\n(b) one thread, ms per image, median of {rounds} interleaved rounds over {limit} images; load {os.getloadavg()}"
    )
    for name, ms in ours.items():
        print(f"  tinytorch   {name:<45} {ms:6.3f}")
    for name, ms in peer.items():
        print(f"  torchvision {name:<45} {ms:6.3f}")
    print(f"  torchvision total {sum(peer.values()):.3f}")


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
    parser.add_argument("--only", default="", help="run only our pipelines whose name contains this")
    parser.add_argument(
        "--profile", action="store_true", help="(b) step by step on one thread, ours and torchvision's"
    )
    parser.add_argument("--peer", choices=["a", "b"], help=argparse.SUPPRESS)
    parser.add_argument("--peer-profile", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_profile:
        print(json.dumps(peer_profile(args.peer_profile, args.images, args.rounds)))
        return
    if args.peer:
        rate, cpu = peer_epoch(args.peer, args.root, args.workers)
        print(json.dumps({"rate": rate, "cpu": cpu}))
        return

    print(f"{os.cpu_count()} cores, load {os.getloadavg()}, {time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        if args.task in ("a", "both"):
            root = cifar_subset(Path(tmp) / "cifar", args.images)
            n = sum(1 for _ in root.glob("*/*.jpg"))
            roots = {"folder": root, "shards": as_shards(root, Path(tmp) / "cifar-shards")}
            run_task("a", roots, n, args.rounds, args.threads, args.skip_peer, args.only)
        if args.task in ("b", "both"):
            start = time.perf_counter()
            root = large_jpegs(Path(tmp) / "large", args.large)
            n = sum(1 for _ in root.glob("*/*.jpg"))
            print(f"\nmade {n} 500x375 JPEGs in {time.perf_counter() - start:.1f} s")
            roots = {"folder": root, "shards": as_shards(root, Path(tmp) / "large-shards")}
            if args.profile:
                run_profile(root, min(n, 256), args.rounds)
            else:
                run_task("b", roots, n, args.rounds, args.threads, args.skip_peer, args.only)


def as_shards(root: Path, target: Path) -> Path:
    """The folder converted as `tinytorch-data convert imagefolder` does (64 MiB shards)."""
    import tinytorch as tt

    start = time.perf_counter()
    manifest = tt.write_image_shards(root, target, progress=False)
    size = sum(s.nbytes for s in manifest.shards) / (1 << 20)
    print(
        f"converted {manifest.total} files to {len(manifest.shards)} shards ({size:.1f} MB) in {time.perf_counter() - start:.1f} s"
    )
    return target


if __name__ == "__main__":
    main()
