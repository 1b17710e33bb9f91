"""``diagnose(stats)``: is training waiting for data, and if so, what to change.

The rules, in order:

1. Compare the time the training step takes (``step_seconds``: measured by the loader
   between batches, or passed in) with the time the consumer waits for each batch. If it
   waits less than 10% of the time, training is not input-bound: a faster loader would not
   help.
2. Otherwise the stage with the most time per batch (read, per-sample transform, collate,
   batch transform, transport) is the bottleneck, and the advice names the knob for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinytorch.data.loader.stats import STAGES, LoaderStats

__all__ = ["Diagnosis", "diagnose"]

INPUT_BOUND_SHARE = 0.10

_ADVICE = {
    "read": (
        "reading samples from the dataset takes most of the time (I/O or per-sample Python in "
        "__getitem__). Read whole batches at once (a dataset with __getitems__, such as "
        "TensorDataset, CIFAR10Dataset or ShardedDataset), keep data in memory-mapped shards "
        "instead of many small files, and use more workers to overlap the reads (thread "
        "workers suit I/O)."
    ),
    "sample_transform": (
        "per-sample transforms take most of the time: each image goes through Python on its "
        "own. Move them to the loader's batch_transform= (RandomCrop, RandomHorizontalFlip, "
        "Normalize work on whole batches), or add process workers."
    ),
    "collate": (
        "stacking samples into batches takes most of the time. Let the dataset read batches "
        "with __getitems__ (no stacking needed), or use fewer, larger fields per sample."
    ),
    "batch_transform": (
        "the batch transform takes most of the time. Add workers: thread workers run numpy "
        "transforms in parallel without copying batches between processes."
    ),
    "transport": (
        "moving batches between worker processes and the training loop takes most of the "
        "time. Use worker_type='thread' (no copies), or larger batches."
    ),
}


@dataclass(frozen=True)
class Diagnosis:
    """The verdict.

    Attributes:
        input_bound: whether the training step waits for data a meaningful share of the time.
        wait_share: share of the consumer's time spent waiting for data.
        step_seconds: the training step time used for the verdict.
        bottleneck: the dominant loader stage, or ``"consumer"`` when not input-bound.
        advice: what to change, in plain words.
    """

    input_bound: bool
    wait_share: float
    step_seconds: float
    bottleneck: str
    advice: str

    def __str__(self) -> str:
        verdict = "INPUT-BOUND" if self.input_bound else "not input-bound"
        return (
            f"{verdict}: the training loop waits for data {100 * self.wait_share:.0f}% of the "
            f"time (step {1000 * self.step_seconds:.2f} ms per batch). Bottleneck: "
            f"{self.bottleneck}. {self.advice}"
        )


def diagnose(stats: LoaderStats, step_seconds: float | None = None) -> Diagnosis:
    """Explain ``stats`` (from ``loader.stats()``).

    Args:
        stats: statistics of an epoch with at least one batch.
        step_seconds: the training step time per batch, if known better than the loader's
            measurement (time between batches).

    Raises:
        ValueError: ``stats`` holds no batch.
    """
    if stats.batches == 0:
        raise ValueError("diagnose needs statistics of at least one batch: iterate the loader first")
    step = stats.step_seconds if step_seconds is None else step_seconds
    wait = stats.wait_seconds / stats.batches
    share = wait / (wait + step) if wait + step > 0 else 0.0
    if share < INPUT_BOUND_SHARE:
        return Diagnosis(
            False,
            share,
            step,
            "consumer",
            "The training step itself dominates; the loader keeps up and a faster loader would "
            "not speed training up. Make the model step faster, or use a larger batch.",
        )
    per_batch = {name: stats.stage_seconds[name] / stats.batches for name in STAGES}
    bottleneck = max(per_batch, key=lambda name: per_batch[name])
    advice = _ADVICE[bottleneck]
    if stats.num_workers == 0:
        advice += (
            " With num_workers=0 all of this runs in the training process: num_workers=2 "
            "overlaps it with training."
        )
    return Diagnosis(True, share, step, bottleneck, advice)
