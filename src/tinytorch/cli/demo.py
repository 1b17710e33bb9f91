"""``tinytorch-data demo``: train a numpy classifier on CIFAR-10 through the pipeline."""

from __future__ import annotations

import argparse

from tinytorch.data import ChecksumError, DownloadError
from tinytorch.demo.train import DemoConfig, run_demo


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = DemoConfig()
    p = subparsers.add_parser(
        "demo",
        help="train a small numpy classifier on CIFAR-10 through the pipeline",
        description="Download CIFAR-10 (or use --root's copy), fit the Normalizer, train a numpy "
        "MLP with augmentation and report accuracy, loader throughput and data-wait share.",
    )
    p.add_argument("--root", default=defaults.root, help="where CIFAR-10 is or goes (default ./data)")
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="use generated, learnable CIFAR-shaped data instead (no download)",
    )
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--model", choices=["mlp", "softmax"], default=defaults.model)
    p.add_argument("--hidden", type=int, default=defaults.hidden, help="MLP hidden units")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--workers", type=int, default=None, help="thread workers (default: cores - 1)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--url", default=None, help="CIFAR-10 archive mirror")
    p.add_argument("--md5", default=None, help="md5 of the mirror's archive")
    p.add_argument(
        "--synthetic-size",
        type=int,
        nargs=2,
        default=None,
        metavar=("TRAIN", "TEST"),
        help="number of generated training and test images",
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
    sizes = args.synthetic_size or (DemoConfig.synthetic_train, DemoConfig.synthetic_test)
    config = DemoConfig(
        root=args.root,
        synthetic=args.synthetic,
        epochs=args.epochs,
        model=args.model,
        hidden=args.hidden,
        batch_size=args.batch_size,
        lr=args.lr,
        workers=args.workers,
        seed=args.seed,
        url=args.url,
        md5=args.md5,
        progress=False if args.quiet else None,
        synthetic_train=sizes[0],
        synthetic_test=sizes[1],
        shuffle=not args.no_shuffle,
        sort_by_label=args.sort_by_label,
    )
    try:
        run_demo(config)
    except (DownloadError, FileNotFoundError, ChecksumError) as e:
        print(f"CIFAR-10 is not available: {e}")
        print(
            "\nTo run the demo anyway, on generated data that is clearly not CIFAR-10:\n"
            "    tinytorch-data demo --synthetic\n"
            f"or put cifar-10-python.tar.gz into {args.root} (or pass --root DIR) and run again."
        )
        return 2
    return 0
