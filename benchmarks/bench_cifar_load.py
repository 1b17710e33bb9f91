"""CIFAR-10 construction time: first (verify + extract + parse + cache) and second (cache).

Builds a full-size archive in the official layout (50,000 + 10,000 random images, Python
pickles with byte-string keys) in a temporary directory, so it runs without network.

Usage: python benchmarks/bench_cifar_load.py
"""

from __future__ import annotations

import hashlib
import io
import pickle
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from tinytorch import CIFAR10Dataset


def build_archive(path: Path) -> str:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:

        def add(name: str, obj: object) -> None:
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
            add(
                name,
                {
                    b"data": rng.integers(0, 256, (10_000, 3072), dtype=np.uint8),
                    b"labels": rng.integers(0, 10, 10_000).tolist(),
                },
            )
        add(
            "batches.meta",
            {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": 10_000},
        )
    path.write_bytes(buf.getvalue())
    return hashlib.md5(buf.getvalue()).hexdigest()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        md5 = build_archive(root / "cifar-10-python.tar.gz")
        start = time.perf_counter()
        CIFAR10Dataset(root, md5=md5, download=False)
        first = time.perf_counter() - start
        again = []
        for _ in range(5):
            start = time.perf_counter()
            ds = CIFAR10Dataset(root, md5=md5, download=False)
            again.append(time.perf_counter() - start)
        print(f"first construction (md5 + extract + parse + cache): {first:.2f} s")
        print(
            f"second construction (verified memory-mapped cache), median of 5: "
            f"{statistics.median(again) * 1000:.1f} ms  ({len(ds)} images)"
        )


if __name__ == "__main__":
    main()
