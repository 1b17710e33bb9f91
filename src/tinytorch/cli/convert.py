"""``tinytorch-data convert`` and ``tinytorch-data verify``: datasets to shards, and checking them."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinytorch.data import CIFAR10Dataset, CIFAR100Dataset, ShardedDataset, ShardError, write_shards

DATASETS = {"cifar10": CIFAR10Dataset, "cifar100": CIFAR100Dataset}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("convert", help="write a dataset as shards (for ShardedDataset)")
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("directory", type=Path, help="where the shards and manifest.json go")
    p.add_argument("--root", default="./data", help="where the dataset is (downloaded if missing)")
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.add_argument("--samples-per-shard", type=int, default=10_000)
    p.add_argument("--overwrite", action="store_true", help="replace an existing shard dataset")
    p.add_argument("--verify", action="store_true", help="check every shard's checksum afterwards")
    p.set_defaults(run=run_convert)
    v = subparsers.add_parser("verify", help="check a shard directory's sizes and checksums")
    v.add_argument("directory", type=Path)
    v.set_defaults(run=run_verify)


def run_convert(args: argparse.Namespace) -> int:
    source = DATASETS[args.dataset](args.root, train=args.split == "train", download=True)
    manifest = write_shards(
        source, args.directory, samples_per_shard=args.samples_per_shard, overwrite=args.overwrite
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
    try:
        dataset = ShardedDataset(args.directory)
        dataset.verify()
    except ShardError as e:
        print(f"FAILED: {e}")
        return 1
    print(f"OK: {len(dataset):,} samples in {dataset.num_shards} shards match the manifest's checksums")
    return 0
