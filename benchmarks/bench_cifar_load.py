"""CIFAR-10 construction time: first (verify + extract + parse + cache) and second (cache).

Also the cost of the cache's full check (CRC-32 of every file), paid at the first open after the
cache was built and whenever a cache file's stat stamp changes; otherwise an open costs a stat.

Builds a full-size archive in the official layout (50,000 + 10,000 random images, Python
pickles with byte-string keys) in a temporary directory, so it runs without network.

Usage: python benchmarks/bench_cifar_load.py
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import statistics
import tarfile
import tempfile
import time
from collections.abc import Callable
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


def timed(make: Callable[[], object]) -> float:
    start = time.perf_counter()
    make()
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        md5 = build_archive(root / "cifar-10-python.tar.gz")

        def construct() -> CIFAR10Dataset:
            return CIFAR10Dataset(root, md5=md5, download=False)

        first = timed(construct)
        reopen = timed(construct)
        again = [timed(construct) for _ in range(5)]
        images = root / "cifar-10-batches-py" / "tinytorch-cache" / "train" / "images.npy"
        touched = []
        for _ in range(3):
            os.utime(images)  # a new stat stamp: the next open checks the CRC-32 of the file in full
            touched.append(timed(construct))
        print(f"first construction (md5 + extract + parse + cache): {first:.2f} s")
        print(
            f"first reopen after the build (CRC-32 of the cache unless already verified): {reopen * 1000:.1f} ms"
        )
        print(
            f"second construction (verified memory-mapped cache), median of 5: "
            f"{statistics.median(again) * 1000:.1f} ms  ({len(construct())} images)"
        )
        print(
            f"after the cache file changed (full CRC-32 check), median of 3: {statistics.median(touched) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
