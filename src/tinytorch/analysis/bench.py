"""``tinytorch-data bench``: sweep the loader's knobs and measure throughput and stage times.

The sweep varies one factor at a time around a baseline (batch 256, 2 thread workers,
shuffled, in memory), so each plot isolates one effect: batch size, number and kind of
workers, storage (in memory vs sharded on disk), shuffle on or off.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tinytorch.analysis.sources import augmentation
from tinytorch.data import DataLoader
from tinytorch.data.loader.stats import STAGES

__all__ = ["BenchResult", "Setting", "run_sweep", "sweep_settings"]


@dataclass(frozen=True)
class Setting:
    """One loader configuration to measure."""

    sweep: str
    batch_size: int = 256
    num_workers: int = 2
    worker_type: str = "thread"
    storage: str = "memory"
    shuffle: bool = True


@dataclass
class BenchResult:
    """What one setting achieved."""

    setting: Setting
    images_per_second: float
    batches: int
    stage_ms_per_batch: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self.setting),
            "images_per_second": self.images_per_second,
            "batches": self.batches,
            "stage_ms_per_batch": self.stage_ms_per_batch,
        }


def sweep_settings(batch_sizes: list[int], workers: list[int], storages: list[str]) -> list[Setting]:
    """The one-factor-at-a-time sweep around the baseline."""
    base = Setting("baseline")
    settings = [base]
    settings += [replace(base, sweep="batch_size", batch_size=b) for b in batch_sizes if b != base.batch_size]
    for kind in ("thread", "process"):
        for w in workers:
            if (w, kind) != (base.num_workers, base.worker_type) and not (w == 0 and kind == "process"):
                settings.append(replace(base, sweep="workers", num_workers=w, worker_type=kind))
    settings += [replace(base, sweep="storage", storage=s) for s in storages if s != base.storage]
    settings.append(replace(base, sweep="shuffle", shuffle=False))
    return settings


def _measure(dataset: Any, setting: Setting, max_batches: int) -> BenchResult:
    loader = DataLoader(
        dataset,
        batch_size=setting.batch_size,
        shuffle=setting.shuffle,
        seed=0,
        num_workers=setting.num_workers,
        worker_type=setting.worker_type if setting.num_workers else "process",
        batch_transform=augmentation(),
    )
    with loader:
        start = time.perf_counter()
        epoch = iter(loader)
        count = images = 0
        for images_batch, _ in epoch:
            count += 1
            images += len(images_batch)
            if count >= max_batches:
                break
        elapsed = time.perf_counter() - start
        stats = loader.stats()
        epoch.close()
    stage = (
        {name: 1000 * stats.stage_seconds[name] / max(1, stats.batches) for name in STAGES} if stats else {}
    )
    return BenchResult(setting, images / elapsed, count, stage)


def run_sweep(
    dataset: Any, settings: list[Setting], *, max_batches: int, progress: bool
) -> list[BenchResult]:
    """Measure every setting; sharded settings read a temporary shard copy of ``dataset``."""
    from tqdm import tqdm

    results = []
    with tempfile.TemporaryDirectory(prefix="tinytorch-bench-") as tmp:
        sharded = None
        for setting in tqdm(settings, desc="bench", disable=not progress, unit="setting"):
            source = dataset
            if setting.storage == "sharded":
                if sharded is None:
                    from tinytorch.data import ShardedDataset, write_shards

                    write_shards(dataset, Path(tmp) / "shards", samples_per_shard=10_000, progress=False)
                    sharded = ShardedDataset(Path(tmp) / "shards")
                source = sharded
            results.append(_measure(source, setting, max_batches))
    return results
