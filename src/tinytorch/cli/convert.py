"""``tinytorch-data convert`` and ``tinytorch-data verify``: datasets to shards, and checking them."""

from __future__ import annotations

import argparse

from tinytorch.cli.args import add_cifar_options, at_least, directory_or_new, subcommand
from tinytorch.cli.errors import CommandError, explain
from tinytorch.data import CIFAR10Dataset, CIFAR100Dataset, ShardedDataset, ShardError, write_shards
from tinytorch.data.storage.shards import MANIFEST

DATASETS = {"cifar10": CIFAR10Dataset, "cifar100": CIFAR100Dataset}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subcommand(
        subparsers,
        "convert",
        "write a dataset as shards for ShardedDataset",
        "Writes the split as memory-mappable shard files plus manifest.json (sizes and SHA-256 "
        "checksums) into DIRECTORY. The dataset is downloaded into --root first if it is not there "
        "(--url/--md5 for a mirror).",
        "tinytorch-data convert cifar10 cifar-shards",
        "tinytorch-data convert cifar10 cifar-shards --split test --samples-per-shard 5000 --verify",
        "tinytorch-data convert cifar10 cifar-shards --overwrite    # replace an earlier conversion",
    )
    p.add_argument("dataset", choices=sorted(DATASETS), help="the dataset to convert")
    p.add_argument("directory", type=directory_or_new, help="where the shards and manifest.json go")
    add_cifar_options(p, downloads=True, env="<DATASET>")
    p.add_argument("--split", choices=["train", "test"], default="train", help="which split to convert")
    p.add_argument("--samples-per-shard", type=at_least(1), default=10_000, help="samples in each shard file")
    p.add_argument("--overwrite", action="store_true", help="replace a shard dataset already in DIRECTORY")
    p.add_argument("--verify", action="store_true", help="check every shard's checksum afterwards")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run_convert)

    v = subcommand(
        subparsers,
        "verify",
        "check a shard directory against its manifest's checksums",
        "Reads every shard file and compares its size and SHA-256 with manifest.json. Exit code 1 "
        "when a shard is missing, truncated or changed. (ShardedDataset checks checksums only "
        "with verify=True; sizes always.)",
        "tinytorch-data verify cifar-shards",
    )
    v.add_argument(
        "directory", type=directory_or_new, help="a directory written by convert or write_shards()"
    )
    v.set_defaults(run=run_verify)


def run_convert(args: argparse.Namespace) -> int:
    if (args.directory / MANIFEST).exists() and not args.overwrite:  # say so before downloading
        raise CommandError(
            f"{args.directory} already holds a shard dataset: pass --overwrite to replace it, or "
            "choose another DIRECTORY"
        )
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
        f"wrote {manifest.total:,} samples in {len(manifest.shards)} shards ({size:.1f} MB) to "
        f"{args.directory}"
    )
    print(f"read them with: ShardedDataset({str(args.directory)!r})")
    if args.verify:
        return run_verify(args)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    if not (args.directory / MANIFEST).is_file():
        raise CommandError(
            f"{args.directory} is not a shard dataset (it has no {MANIFEST}); write one with "
            f"`tinytorch-data convert cifar10 {args.directory}`"
        )
    try:
        dataset = ShardedDataset(args.directory)
        dataset.verify()
    except ShardError as e:
        print(f"FAILED: {explain(e, args) or e}")
        return 1
    print(f"OK: {len(dataset):,} samples in {dataset.num_shards} shards match the manifest's checksums")
    return 0
