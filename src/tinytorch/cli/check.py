"""``tinytorch-data check``: the seed's inline self-check, with a real check behind each line.

Prints the seed's progress style (``✅ ...``, ``Progress: DataLoader ✓``) and
exits non-zero, naming the failed check, when any component is broken.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import tarfile
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinytorch.cli.args import subcommand
from tinytorch.data import (
    CIFAR10Dataset,
    Compose,
    DataLoader,
    Dataset,
    Normalize,
    Normalizer,
    RandomCrop,
    RandomHorizontalFlip,
    TensorDataset,
    default_collate,
)


@dataclass(frozen=True)
class Check:
    """One line of the self-check: ``run()`` raises ``AssertionError`` when broken."""

    message: str
    run: Callable[[], None]


class _Squares(Dataset[tuple[np.ndarray, int]]):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if not 0 <= index < 10:
            raise IndexError(index)
        return np.full((3, 4, 4), index, dtype=np.uint8), index * index


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def _getitem() -> None:
    image, label = _Squares()[3]
    _expect(image.shape == (3, 4, 4) and label == 9, "dataset[3] returned the wrong sample")


def _len() -> None:
    _expect(len(_Squares()) == 10, "len(dataset) is not 10")


def _tuples() -> None:
    sample = TensorDataset(np.zeros((5, 2)), np.arange(5))[4]
    _expect(isinstance(sample, tuple) and sample[1] == 4, "TensorDataset[i] is not (data, label)")


def _batch_shapes() -> None:
    images = np.zeros((100, 3, 32, 32), dtype=np.uint8)
    batch = next(iter(DataLoader(TensorDataset(images, np.arange(100)), batch_size=32)))
    _expect(batch[0].shape == (32, 3, 32, 32), f"batch shape {batch[0].shape}")


def _shuffling() -> None:
    loader = DataLoader(TensorDataset(np.arange(100)), batch_size=100, shuffle=True, seed=0)
    first, second = (next(iter(loader))[0] for _ in range(2))
    _expect(not np.array_equal(first, second), "two epochs gave the same order")
    _expect(not np.array_equal(first, np.arange(100)), "shuffle=True did not shuffle")


def _coverage() -> None:
    loader = DataLoader(TensorDataset(np.arange(103)), batch_size=10, shuffle=True, seed=1)
    seen = np.concatenate([b[0] for b in loader])
    _expect(sorted(seen.tolist()) == list(range(103)), "an epoch missed or repeated samples")
    _expect(len(loader) == 11, "len(loader) is not ceil(103 / 10)")


def _determinism() -> None:
    def epoch(seed: int) -> list[list[int]]:
        loader = DataLoader(TensorDataset(np.arange(50)), batch_size=7, shuffle=True, seed=seed)
        return [b[0].tolist() for b in loader]

    _expect(epoch(5) == epoch(5), "the same seed gave different batches")


def _collate() -> None:
    batch = default_collate([{"x": np.ones(2), "y": 1}, {"x": np.zeros(2), "y": 2}])
    _expect(batch["x"].shape == (2, 2) and batch["y"].dtype == np.int64, "dict samples collated wrong")


def _cifar_archive(root: Path) -> str:
    """A small archive in CIFAR-10's official layout (5 x 20 training, 20 test images); its md5."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
        entries = {
            n: {
                b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                b"labels": rng.integers(0, 10, 20).tolist(),
            }
            for n in names
        }
        entries["batches.meta"] = {b"label_names": [c.encode() for c in _CLASSES], b"num_cases_per_batch": 20}
        for name, content in entries.items():
            data = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    return hashlib.md5(buffer.getvalue(), usedforsecurity=False).hexdigest()


_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        md5 = _cifar_archive(Path(tmp))
        train = CIFAR10Dataset(tmp, train=True, download=False, md5=md5)
        _expect(len(train) == 100, f"loaded {len(train)} training samples, expected 100")
        image, label = train[0]
        _expect(image.shape == (3, 32, 32) and image.dtype == np.uint8, f"sample shape {image.shape}")
        _expect(0 <= label <= 9 and train.classes == _CLASSES, "labels or class names wrong")
        again = CIFAR10Dataset(tmp, train=True, download=False, md5=md5)
        _expect(np.array_equal(again.data, train.data), "the cached copy differs from the files")


def _normalizer() -> None:
    x = np.random.default_rng(0).integers(0, 256, (200, 3, 8, 8), dtype=np.uint8)
    out = Normalizer(mode="per_channel").fit(DataLoader(TensorDataset(x), batch_size=64)).transform(x)
    _expect(np.allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-4), "normalized mean is not 0")
    _expect(np.allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-4), "normalized std is not 1")


def _augmentation() -> None:
    x = np.random.default_rng(0).integers(0, 256, (64, 3, 32, 32), dtype=np.uint8)
    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize([127.5] * 3, [64.0] * 3)])
    a = augment(x, np.random.default_rng(1))
    _expect(a.shape == (64, 3, 32, 32) and a.dtype == np.float32, f"augmented batch {a.shape} {a.dtype}")
    _expect(np.array_equal(a, augment(x, np.random.default_rng(1))), "the same generator gave other bytes")


SECTIONS: list[tuple[str, str, list[Check]]] = [
    (
        "Dataset abstraction",
        "Dataset Interface",
        [
            Check("__getitem__ protocol works correctly", _getitem),
            Check("__len__ returns correct size", _len),
            Check("Indexing returns (data, label) tuples", _tuples),
        ],
    ),
    (
        "DataLoader batching",
        "DataLoader",
        [
            Check("Batch shapes correct: (32, 3, 32, 32)", _batch_shapes),
            Check("Shuffling produces different orderings", _shuffling),
            Check("Iteration covers all samples exactly once", _coverage),
            Check("Same seed gives the same batches", _determinism),
            Check("Nested samples collate into numpy batches", _collate),
        ],
    ),
    (
        "CIFAR-10 loading (a generated archive in the official layout, no network)",
        "CIFAR-10 Dataset",
        [
            Check(
                "Verified, extracted, parsed and cached: 100 samples of (3, 32, 32), labels in [0, 9]", _cifar
            )
        ],
    ),
    (
        "Preprocessing",
        "Preprocessing",
        [
            Check("Normalizer fitted by streaming gives zero mean, unit variance", _normalizer),
            Check("Batch augmentation is deterministic for a given generator", _augmentation),
        ],
    ),
]


def run_checks(sections: list[tuple[str, str, list[Check]]] = SECTIONS) -> int:
    """Run every check, print the seed's progress lines; return the number of failures."""
    failures = 0
    for title, progress, checks in sections:
        print(f"Unit Test: {title}...")
        ok = True
        for check in checks:
            try:
                check.run()
            except Exception as e:  # every failure is reported, none stops the others
                ok = False
                failures += 1
                print(f"❌ {check.message}: {type(e).__name__}: {e}")
                print("".join(traceback.format_exception(e)).rstrip())
            else:
                print(f"✅ {check.message}")
        print(f"Progress: {progress} {'✓' if ok else '✗'}\n")
    return failures


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommand(
        subparsers,
        "check",
        "self-check of the installed package",
        "Runs the TinyTorch module's checks (datasets, loader, CIFAR-10 loading on a generated "
        "archive, preprocessing) against the installed package, without network. Exit code 1, "
        "naming the broken component, when any check fails.",
        "tinytorch-data check",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    failures = run_checks()
    if failures:
        print(f"{failures} check(s) failed: the installation is broken")
        return 1
    print("All checks passed.")
    return 0
