"""``tinytorch-data bench``: sweep the loader's knobs and measure throughput and stage times.

The sweep varies one factor at a time around a baseline (batch 256, 2 thread workers,
shuffled, in memory), so each row isolates one effect: batch size, number and kind of
workers, storage (in memory vs sharded on disk), shuffle on or off.

Numbers that hold on a shared machine:

- **Steady state.** Each measurement starts its loader (workers persistent), lets
  :data:`WARMUP_BATCHES` batches go by untimed (worker start-up, first touches of the data), then
  times batches for at least ``seconds``, continuing into the next epoch when one ends.
- **Rounds, interleaved.** Every setting is measured once per round, all settings in turn
  (forward in even rounds, backward in odd ones), so a slow spell of the machine hits every
  setting alike instead of the one that happened to run then.
- **The median and its interval.** A setting's figure is the median of its rounds; the lowest
  and highest round bound it. With ``n`` rounds the true median lies between them with
  probability ``1 - 2 * 0.5**n`` (order statistics; 94% for 5 rounds, 98% for 7).
- **Paired comparisons.** A setting is compared with the baseline round by round (the ratio of
  the two rates measured in the same round), and the same interval applies to the median
  ratio; a ratio whose interval contains 1 is reported as no difference beyond noise.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tinytorch.analysis.sources import augmentation
from tinytorch.data import DataLoader
from tinytorch.data.loader.stats import STAGES

__all__ = [
    "BASELINE",
    "WARMUP_BATCHES",
    "BenchResult",
    "Comparison",
    "Round",
    "Setting",
    "compare",
    "confidence",
    "run_sweep",
    "sweep_settings",
]

WARMUP_BATCHES = 2
"""Batches delivered before the clock starts in each measurement."""


@dataclass(frozen=True)
class Setting:
    """One loader configuration to measure."""

    sweep: str
    batch_size: int = 256
    num_workers: int = 2
    worker_type: str = "thread"
    storage: str = "memory"
    shuffle: bool = True

    @property
    def workers(self) -> str:
        """``in process`` or ``2 thread workers``."""
        if self.num_workers == 0:
            return "in process (0 workers)"
        return f"{self.num_workers} {self.worker_type} worker{'s' * (self.num_workers != 1)}"

    @property
    def description(self) -> str:
        """The whole setting, e.g. ``batch 256, 2 thread workers, in memory, shuffled``."""
        storage = "in memory" if self.storage == "memory" else "sharded on disk (memory-mapped)"
        order = "shuffled" if self.shuffle else "not shuffled"
        return f"batch {self.batch_size}, {self.workers}, {storage}, {order}"

    @property
    def change(self) -> str:
        """What this setting changes from the baseline, e.g. ``batch 64`` or ``shuffle off``."""
        if self.sweep == "batch_size":
            return f"batch {self.batch_size}"
        if self.sweep == "workers":
            return self.workers
        if self.sweep == "storage":
            return "sharded on disk" if self.storage == "sharded" else "in memory"
        if self.sweep == "shuffle":
            return "shuffle off" if not self.shuffle else "shuffle on"
        return "baseline"


@dataclass(frozen=True)
class Round:
    """One timed measurement of a setting."""

    images_per_second: float
    batches: int
    seconds: float
    stage_us_per_image: dict[str, float]


@dataclass
class BenchResult:
    """What one setting achieved over the rounds."""

    setting: Setting
    rounds: list[Round] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [r.images_per_second for r in self.rounds]

    @property
    def images_per_second(self) -> float:
        """Median over the rounds."""
        return statistics.median(self.rates)

    @property
    def low(self) -> float:
        return min(self.rates)

    @property
    def high(self) -> float:
        return max(self.rates)

    @property
    def stage_us_per_image(self) -> dict[str, float]:
        """Median microseconds per image in each stage, summed over workers."""
        return {s: statistics.median(r.stage_us_per_image.get(s, 0.0) for r in self.rounds) for s in STAGES}

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self.setting),
            "images_per_second": self.images_per_second,
            "images_per_second_low": self.low,
            "images_per_second_high": self.high,
            "rounds": [asdict(r) for r in self.rounds],
            "stage_us_per_image": self.stage_us_per_image,
        }


@dataclass(frozen=True)
class Comparison:
    """A setting's rate over the baseline's, round by round: median and interval."""

    ratio: float
    low: float
    high: float

    @property
    def within_noise(self) -> bool:
        return self.low <= 1.0 <= self.high


def confidence(rounds: int) -> float:
    """Probability that the median lies between the lowest and highest of ``rounds`` values."""
    return 1.0 - 2.0 * 0.5**rounds if rounds >= 2 else 0.0


def compare(result: BenchResult, baseline: BenchResult) -> Comparison:
    """``result`` against ``baseline`` by the per-round ratios (the rounds were interleaved)."""
    ratios = [a / b for a, b in zip(result.rates, baseline.rates, strict=True)]
    return Comparison(statistics.median(ratios), min(ratios), max(ratios))


BASELINE = Setting("baseline")
"""The setting every other one is compared with; measured in every sweep, whatever the options."""


def sweep_settings(
    batch_sizes: Sequence[int], workers: Sequence[int], storages: Sequence[str]
) -> list[Setting]:
    """The one-factor-at-a-time sweep around the baseline."""
    base = BASELINE
    settings = [base]
    settings += [
        replace(base, sweep="batch_size", batch_size=b)
        for b in sorted(set(batch_sizes))
        if b != base.batch_size
    ]
    for kind in ("thread", "process"):
        for w in sorted(set(workers)):
            if (w, kind) != (base.num_workers, base.worker_type) and not (w == 0 and kind == "process"):
                settings.append(replace(base, sweep="workers", num_workers=w, worker_type=kind))
    settings += [replace(base, sweep="storage", storage=s) for s in storages if s != base.storage]
    settings.append(replace(base, sweep="shuffle", shuffle=False))
    return settings


def _measure(dataset: Any, setting: Setting, seconds: float) -> Round:
    """Time batches for at least ``seconds`` after :data:`WARMUP_BATCHES`, epoch after epoch."""
    loader = DataLoader(
        dataset,
        batch_size=setting.batch_size,
        shuffle=setting.shuffle,
        seed=0,
        num_workers=setting.num_workers,
        worker_type=setting.worker_type if setting.num_workers else "process",
        persistent_workers=setting.num_workers > 0,
        batch_transform=augmentation(),
    )
    warmup, batches, images = WARMUP_BATCHES, 0, 0
    stage_seconds = dict.fromkeys(STAGES, 0.0)
    start = elapsed = 0.0
    with loader:
        while warmup or elapsed < seconds:
            epoch = iter(loader)
            stats = loader.stats()
            base = dict.fromkeys(STAGES, 0.0)
            delivered = 0
            try:
                for x, _ in epoch:
                    delivered += 1
                    if warmup:
                        warmup -= 1
                        if not warmup:
                            start = time.perf_counter()
                            base = dict(stats.stage_seconds) if stats else base
                        continue
                    images += len(x)
                    batches += 1
                    elapsed = time.perf_counter() - start
                    if elapsed >= seconds:
                        break
            finally:
                epoch.close()
            if not delivered:
                raise ValueError(f"the dataset gave no batch of {setting.batch_size} samples in an epoch")
            if stats and not warmup:
                for name in STAGES:
                    stage_seconds[name] += stats.stage_seconds[name] - base[name]
    per_image = {name: 1e6 * total / max(1, images) for name, total in stage_seconds.items()}
    return Round(images / elapsed, batches, elapsed, per_image)


def run_sweep(
    dataset: Any,
    settings: Sequence[Setting],
    *,
    seconds: float,
    rounds: int,
    on_measured: Callable[[], None] | None = None,
) -> list[BenchResult]:
    """Measure every setting ``rounds`` times, interleaved (see the module docstring).

    Each measurement times batches for at least ``seconds``. Sharded settings read a temporary
    shard copy of ``dataset``, written before the first round and removed at the end.
    ``on_measured`` is called after each measurement (a progress bar). Every setting needs
    ``len(dataset) >= (WARMUP_BATCHES + 1) * batch_size``.
    """
    results = [BenchResult(s) for s in settings]
    with tempfile.TemporaryDirectory(prefix="tinytorch-bench-") as tmp:
        sources: dict[str, Any] = {"memory": dataset}
        if any(s.storage == "sharded" for s in settings):
            from tinytorch.data import ShardedDataset, write_shards

            write_shards(dataset, Path(tmp) / "shards", samples_per_shard=10_000, progress=False)
            sources["sharded"] = ShardedDataset(Path(tmp) / "shards")
        for round_index in range(rounds):
            order = results if round_index % 2 == 0 else results[::-1]
            for result in order:
                setting = result.setting
                result.rounds.append(_measure(sources[setting.storage], setting, seconds))
                if on_measured is not None:
                    on_measured()
    return results
