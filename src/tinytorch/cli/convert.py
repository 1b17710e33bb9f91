"""``tinytorch-data convert`` and ``tinytorch-data verify``: datasets to shards, and checking them.

``convert`` has one sub-command per source: ``cifar10`` / ``cifar100`` (downloaded if needed)
and ``imagefolder`` (a folder of class folders of image files, stored encoded, read back with
``ImageShards``). ``verify`` checks any shard directory, image shards' labels included.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinytorch.cli.args import (
    add_cifar_options,
    at_least,
    directory_or_new,
    existing_directory,
    positive_float,
    subcommand,
)
from tinytorch.cli.errors import CommandError, explain
from tinytorch.data import (
    CIFAR10Dataset,
    CIFAR100Dataset,
    ImageFolder,
    ImageShards,
    ShardedDataset,
    ShardError,
    write_image_shards,
    write_shards,
)
from tinytorch.data.datasets.image_shards import check_outside
from tinytorch.data.storage.shard_writer import check_replaceable
from tinytorch.data.storage.shards import MANIFEST

DATASETS = {"cifar10": CIFAR10Dataset, "cifar100": CIFAR100Dataset}
SHARD_MB = 64


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subcommand(
        subparsers,
        "convert",
        "write a dataset as shards (CIFAR, or a folder of images)",
        "Writes a few large shard files plus manifest.json (sizes and checksums) that "
        "ShardedDataset or ImageShards read: CIFAR as arrays (downloaded into --root first if "
        "needed), an image folder as its files' bytes with their labels. `tinytorch-data convert "
        "SOURCE --help` gives each source's options.",
        "tinytorch-data convert cifar10 cifar-shards",
        "tinytorch-data convert imagefolder photos/train photo-shards",
    )
    sources = p.add_subparsers(dest="dataset", metavar="SOURCE", title="sources", required=True)
    for name in sorted(DATASETS):
        _add_cifar(sources, name)
    _add_imagefolder(sources)

    v = subcommand(
        subparsers,
        "verify",
        "check a shard directory against its manifest's checksums",
        "Reads every shard file and compares its size, SHA-256 and CRC-32 with manifest.json; "
        "for image shards, also that every label names a class. Exit code 1 when a shard is "
        "missing, truncated or changed. (ShardedDataset and ImageShards check sizes always, "
        "checksums as each shard is first read.)",
        "tinytorch-data verify cifar-shards",
    )
    v.add_argument(
        "directory", type=directory_or_new, help="a directory written by convert or write_shards()"
    )
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.set_defaults(run=run_verify)


def _add_cifar(sources: argparse._SubParsersAction[argparse.ArgumentParser], name: str) -> None:
    title = name.replace("cifar", "CIFAR-")
    p = subcommand(
        sources,
        name,
        f"{title} as arrays, for ShardedDataset",
        f"Writes the {title} split as memory-mappable shard files plus manifest.json into "
        "DIRECTORY. The dataset is downloaded into --root first if it is not there (--url/--md5 "
        "for a mirror).",
        f"tinytorch-data convert {name} cifar-shards",
        f"tinytorch-data convert {name} cifar-shards --split test --samples-per-shard 5000 --verify",
        f"tinytorch-data convert {name} cifar-shards --overwrite    # replace an earlier conversion",
    )
    p.add_argument("directory", type=directory_or_new, help="where the shards and manifest.json go")
    add_cifar_options(p, downloads=True, env="<DATASET>")
    p.add_argument("--split", choices=["train", "test"], default="train", help="which split to convert")
    p.add_argument("--samples-per-shard", type=at_least(1), default=10_000, help="samples in each shard file")
    _add_common(p)
    p.set_defaults(run=run_convert)


def _add_imagefolder(sources: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subcommand(
        sources,
        "imagefolder",
        "a folder of images as encoded shards, for ImageShards",
        "Lists SRC as ImageFolder does (SRC/<class>/**/<image>, torchvision's rules and order) "
        "and writes every file's bytes as they are (nothing is decoded or re-encoded), its "
        "label and its path into a few large shard files in DST, the class names into the "
        "manifest. ImageShards(DST) then returns the same samples as ImageFolder(SRC).",
        "tinytorch-data convert imagefolder photos/train photo-shards",
        "tinytorch-data convert imagefolder photos/train photo-shards --shard-size 256 --verify",
        "tinytorch-data convert imagefolder photos/train photo-shards --shuffle 0   # for streaming",
        "tinytorch-data convert imagefolder photos/train photo-shards --samples-per-shard 10000 --overwrite",
    )
    p.add_argument(
        "source", metavar="SRC", type=existing_directory, help="the image folder: SRC/<class>/<image>"
    )
    p.add_argument(
        "directory", metavar="DST", type=directory_or_new, help="where the shards and manifest.json go"
    )
    p.add_argument(
        "--samples-per-shard",
        metavar="N",
        type=at_least(1),
        default=None,
        help="images in each shard file (default: as many as --shard-size holds)",
    )
    p.add_argument(
        "--shard-size",
        metavar="MB",
        type=positive_float,
        default=None,
        help=f"size at which a shard file is full, in MiB (default: {SHARD_MB}, or none with "
        "--samples-per-shard alone)",
    )
    p.add_argument("--allow-empty", action="store_true", help="keep class folders without images as classes")
    p.add_argument(
        "--shuffle",
        metavar="SEED",
        type=at_least(0),
        default=None,
        help="write the images in a random order drawn from SEED, for streaming with "
        "WindowedShuffleSampler (default: the folder's order, where each shard holds one class "
        "or a few)",
    )
    _add_common(p)
    p.set_defaults(run=run_convert_images)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--overwrite", action="store_true", help="replace a shard dataset already in the directory"
    )
    p.add_argument("--verify", action="store_true", help="check every shard's checksum afterwards")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_convert(args: argparse.Namespace) -> int:
    _check_destination(args)  # before downloading
    progress = False if args.quiet else None
    source = DATASETS[args.dataset](
        args.root,
        train=args.split == "train",
        download=True,
        url=args.url,
        md5=args.md5,
        progress=progress,
    )
    manifest = write_shards(
        source,
        args.directory,
        samples_per_shard=args.samples_per_shard,
        overwrite=args.overwrite,
        progress=progress,
    )
    size = sum(s.nbytes for s in manifest.shards) / (1 << 20)
    print(
        f"wrote {_count(manifest.total, 'sample')} in {_count(len(manifest.shards), 'shard')} "
        f"({size:.1f} MB) to {args.directory}"
    )
    print(f"read them with: ShardedDataset({str(args.directory)!r})")
    if args.verify:
        return run_verify(args)
    return 0


def run_convert_images(args: argparse.Namespace) -> int:
    try:
        check_outside(args.source, args.directory)
    except ValueError as e:
        raise CommandError(
            f"DST {args.directory} is inside SRC {args.source}, where it would be listed as a class; "
            "choose a DST outside SRC"
        ) from e
    _check_destination(args)
    try:
        folder = ImageFolder(args.source, allow_empty=args.allow_empty)
    except FileNotFoundError as e:  # the listing: no class folder, or a class without images
        raise CommandError(
            str(e)
            .replace("pass allow_empty=True", "pass --allow-empty")
            .replace("ImageFolder expects", "SRC must be")
        ) from e
    samples, megabytes = args.samples_per_shard, args.shard_size
    if samples is None and megabytes is None:
        megabytes = SHARD_MB
    manifest = write_image_shards(
        folder,
        args.directory,
        samples_per_shard=samples,
        bytes_per_shard=None if megabytes is None else max(1, int(megabytes * (1 << 20))),
        overwrite=args.overwrite,
        progress=False if args.quiet else None,
        shuffle_seed=args.shuffle,
    )
    size = sum(s.nbytes for s in manifest.shards) / (1 << 20)
    shards = len(manifest.shards)
    print(
        f"wrote {_count(manifest.total, 'image')} of {_count(len(folder.classes), 'class')} in "
        f"{_count(shards, 'shard')} ({size:.1f} MB) to {args.directory}"
    )
    print(f"read them with: ImageShards({str(args.directory)!r})")
    if args.verify:
        return run_verify(args)
    return 0


def _check_destination(args: argparse.Namespace) -> None:
    """Refuse a DIRECTORY that holds a dataset (without --overwrite) or other files, before any work."""
    try:
        check_replaceable(args.directory, overwrite=args.overwrite)
    except FileExistsError as e:
        if (args.directory / MANIFEST).exists() and not args.overwrite:
            raise CommandError(
                f"{args.directory} already holds a shard dataset: pass --overwrite to replace it, or "
                "choose another directory"
            ) from e
        raise CommandError(
            str(e).replace("write_shards did not write", "`tinytorch-data convert` did not write")
        ) from e


def run_verify(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not (directory / MANIFEST).is_file():
        raise CommandError(
            f"{directory} is not a shard dataset (it has no {MANIFEST}); write one with "
            f"`tinytorch-data convert cifar10 {directory}` or `tinytorch-data convert imagefolder "
            f"SRC {directory}`"
        )
    try:
        dataset = ShardedDataset(directory)  # the manifest and the files' sizes
        if _is_image_shards(dataset):
            dataset.close()
            return _verified(args, ImageShards(directory, num_threads=0))
        return _verified(args, dataset)
    except ShardError as e:
        print(f"FAILED: {explain(e, args) or e}")
        return 1


def _verified(args: argparse.Namespace, dataset: ShardedDataset | ImageShards) -> int:
    """Verify in full with a progress bar; ``ShardError`` when something is wrong."""
    from tqdm import tqdm

    shards = (dataset.shards if isinstance(dataset, ImageShards) else dataset).manifest.shards
    with tqdm(
        total=sum(s.nbytes for s in shards),
        unit="B",
        unit_scale=True,
        desc=f"verifying {args.directory.name}",
        disable=True if args.quiet else None,  # None: shown when stderr is a terminal
    ) as bar:
        dataset.verify(progress=lambda done, _: bar.update(done - bar.n))
    if isinstance(dataset, ImageShards):
        what = f"{_count(len(dataset), 'image')} of {_count(len(dataset.classes), 'class')}"
    else:
        what = f"{_count(len(dataset), 'sample')}"
    print(f"OK: {what} in {_count(dataset.num_shards, 'shard')} match the manifest's checksums")
    return 0


def _count(n: int, noun: str) -> str:
    """``"1 shard"``, ``"2 shards"``, ``"1 class"``, ``"3 classes"``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}{'es' if noun.endswith('s') else 's'}"


def _is_image_shards(dataset: ShardedDataset) -> bool:
    names = {f.name for f in dataset.manifest.fields}
    return "classes" in dataset.metadata and {"image", "label"} <= names
