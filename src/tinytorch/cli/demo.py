"""``tinytorch-data demo``: train a numpy classifier on CIFAR-10 through the pipeline."""

from __future__ import annotations

import argparse

from tinytorch.cli.args import Given, add_cifar_options, at_least, positive_float, subcommand
from tinytorch.demo.train import DemoConfig, run_demo


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = DemoConfig()
    p = subcommand(
        subparsers,
        "demo",
        "train a numpy classifier on CIFAR-10 through the pipeline",
        "Downloads CIFAR-10 into --root once (or uses the copy there), fits the Normalizer by "
        "streaming, trains a numpy MLP with augmentation and reports test accuracy, loader "
        "throughput and the share of each step spent waiting for data, after every epoch. "
        "--synthetic runs the same pipeline on generated data.",
        "tinytorch-data demo                       # downloads CIFAR-10 (163 MB) into ./data once",
        "tinytorch-data demo --synthetic --epochs 2  # generated data, no download",
        "tinytorch-data demo --root /data --url file:///mirror/cifar-10-python.tar.gz --md5 MD5",
    )
    add_cifar_options(p, downloads=True)
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="use generated, learnable CIFAR-shaped data instead (no download; every line says [synthetic])",
    )
    p.add_argument(
        "--synthetic-size",
        type=at_least(1),
        nargs=2,
        action=Given,
        default=[defaults.synthetic_train, defaults.synthetic_test],
        metavar=("TRAIN", "TEST"),
        help="number of generated training and test images",
    )
    p.add_argument("--epochs", type=at_least(1), default=defaults.epochs, help="passes over the training set")
    p.add_argument("--model", choices=["mlp", "softmax"], default=defaults.model, help="the classifier")
    p.add_argument("--hidden", type=at_least(1), default=defaults.hidden, help="MLP hidden units")
    p.add_argument("--batch-size", type=at_least(1), default=defaults.batch_size, help="images per batch")
    p.add_argument(
        "--lr", type=positive_float, default=defaults.lr, help="initial learning rate (cosine decay)"
    )
    p.add_argument(
        "--workers",
        type=at_least(0),
        default=None,
        help="loader thread workers (default: cores - 1, at least 1, at most 4)",
    )
    p.add_argument(
        "--blas-threads",
        type=at_least(1),
        default=None,
        help="threads for the model's matrix products (default: cores - workers, at least 1)",
    )
    p.add_argument(
        "--seed", type=at_least(0), default=defaults.seed, help="seed of the shuffle, augmentation and model"
    )
    p.add_argument("--no-shuffle", action="store_true", help="train without shuffling (an experiment)")
    p.add_argument(
        "--sort-by-label",
        action="store_true",
        help="present the training set sorted by class (with --no-shuffle: why shuffling matters)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = DemoConfig(
        root=str(args.root),
        synthetic=args.synthetic,
        epochs=args.epochs,
        model=args.model,
        hidden=args.hidden,
        batch_size=args.batch_size,
        lr=args.lr,
        workers=args.workers,
        blas_threads=args.blas_threads,
        seed=args.seed,
        url=args.url,
        md5=args.md5,
        progress=False if args.quiet else None,
        synthetic_train=args.synthetic_size[0],
        synthetic_test=args.synthetic_size[1],
        shuffle=not args.no_shuffle,
        sort_by_label=args.sort_by_label,
    )
    run_demo(config)
    return 0
