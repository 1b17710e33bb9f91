"""What the shard reader's checks cost (issue #16), on a shard directory (e.g. bench_streaming's).

1. The size check before every batch: the same random batches of 256 read with the check on
   and off, alternating in one process (medians of --batches each).
2. The checksum before a shard's first read: CRC-32 (``verify="crc32"``, the default) and
   SHA-256 of every shard, CPU time (median of 3).

Usage: python benchmarks/bench_shard_checks.py /tmp/tt-stream/1GB [--batches 4000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

import tinytorch as tt
from tinytorch.data.storage import span_reader
from tinytorch.data.storage.shard_files import check_checksum
from tinytorch.data.storage.shards import read_manifest


def size_check(directory: Path, batches: int) -> None:
    real = span_reader.check_size
    ds = tt.ShardedDataset(directory, verify="size")
    n = len(ds)
    rng = np.random.default_rng(0)
    ds.__getitems__(np.arange(n))  # warm
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(batches):
        idx = rng.integers(0, n, 256)
        for on in (True, False) if r % 2 else (False, True):
            span_reader.check_size = real if on else (lambda *a: None)  # type: ignore[assignment]
            start = time.perf_counter()
            ds.__getitems__(idx)
            times[on].append((time.perf_counter() - start) * 1e6)
    span_reader.check_size = real
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"random batch of 256 over {ds.num_shards} shards: {off:.1f} us without the size check, {on:.1f} us with"
    )


def checksums(directory: Path) -> None:
    manifest = read_manifest(directory)
    gigabytes = sum(s.nbytes for s in manifest.shards) / 1e9
    for mode in ("crc32", "sha256"):
        cpu = []
        for _ in range(3):
            start = time.process_time()
            for info in manifest.shards:
                fd = os.open(directory / info.file, os.O_RDONLY)
                check_checksum(fd, directory / info.file, info, mode)
                os.close(fd)
            cpu.append(time.process_time() - start)
        seconds = statistics.median(cpu)
        print(f"{mode}: {gigabytes:.2f} GB in {seconds:.3f} s CPU ({gigabytes / seconds:.1f} GB/s per core)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--batches", type=int, default=4000)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")
    size_check(args.directory, args.batches)
    checksums(args.directory)


if __name__ == "__main__":
    main()
