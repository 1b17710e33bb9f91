"""Train a small CNN with PyTorch, fed by the tinytorch data pipeline.

Batches arrive as numpy arrays and become torch tensors without a copy (torch.from_numpy);
with a GPU, pin_memory=True makes the loader hand over pinned tensors for asynchronous copies.

    python examples/train_torch_cnn.py --synthetic --epochs 1   # no download needed
    python examples/train_torch_cnn.py --root ./data            # real CIFAR-10
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from torch import nn

from tinytorch import (
    CIFAR10Dataset,
    Compose,
    DataLoader,
    Dataset,
    Normalize,
    Normalizer,
    RandomCrop,
    RandomHorizontalFlip,
    TensorDataset,
)
from tinytorch.demo.synthetic import synthetic_cifar


def datasets(args: argparse.Namespace) -> tuple[Dataset[Any], Dataset[Any]]:
    if args.synthetic:
        return (
            TensorDataset(*synthetic_cifar(5000, seed=1)),
            TensorDataset(*synthetic_cifar(1000, seed=2)),
        )
    return CIFAR10Dataset(args.root, train=True), CIFAR10Dataset(args.root, train=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="./data")
    parser.add_argument("--synthetic", action="store_true", help="generated data, not CIFAR-10")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    tag = "[synthetic] " if args.synthetic else ""

    device = "cuda" if torch.cuda.is_available() else "cpu"
    train, test = datasets(args)
    norm = Normalizer(mode="per_channel").fit(DataLoader(train, batch_size=4096))
    normalize = Normalize(norm.mean, norm.std)
    train_loader = DataLoader(
        train,
        batch_size=128,
        shuffle=True,
        seed=0,
        num_workers=1,
        worker_type="thread",
        batch_transform=Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), normalize]),
        pin_memory=device == "cuda",
    )
    test_loader = DataLoader(test, batch_size=512, batch_transform=normalize)

    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 10),
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.train()
        for images, labels in train_loader:
            x = torch.as_tensor(images).to(device, non_blocking=True)  # zero-copy on the CPU
            y = torch.as_tensor(labels).to(device, non_blocking=True)
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for images, labels in test_loader:
                predictions = model(torch.from_numpy(images).to(device)).argmax(dim=1).cpu()
                correct += int((predictions == torch.from_numpy(labels)).sum())
                total += len(labels)
        stats = train_loader.stats()  # None only with DataLoader(stats=False)
        waiting = stats.wait_share if stats is not None else 0.0
        print(
            f"{tag}epoch {epoch + 1}: test accuracy {correct / total:.1%} ({time.perf_counter() - start:.0f} s); "
            f"loader: {waiting:.0%} of the step waiting for data"
        )


if __name__ == "__main__":
    main()
