"""``diagnose(stats)``: is training waiting for data, and if so, what to change.

The rules, in order:

1. Compare the time the training step takes (``step_seconds``: measured by the loader
   between batches, or passed in) with the time the consumer waits for each batch. If it
   waits less than 10% of the time, training is not input-bound: a faster loader would not
   help.
2. Otherwise the stage with the most time per batch (read, per-sample transform, collate,
   batch transform, transport) is the bottleneck, and the advice names the knob for it.
3. More workers are advised only where they can help: never past the cores this process may
   use (``os.sched_getaffinity``), and not when the workers already there are idle much of the
   epoch (their utilization, ``LoaderStats.mean_utilization``, is under :data:`BUSY_SHARE`:
   then something else limits delivery, and another worker would wait too). Reads that wait on
   I/O rather than the CPU are the exception: thread workers overlap waits on any number of
   cores.
4. Which kind, from the measurements on 2 cores (docs/benchmarks.md, "Where the second core
   goes"): for a vectorized batch (collate, batch transform) one *thread* worker beside the
   training loop gave 1.1-1.2x in-process loading, while one process worker was slower than
   none (0.73-0.87x: moving each batch between processes costs more than the overlap gains);
   for per-sample Python, process workers (a second process worker gave 1.2-1.3x the first).
   Thread workers share the GIL with the loading thread, so another
   thread worker is advised only while a core is left for the loading thread (a second thread
   worker on 2 cores gained nothing). A dataset that reads whole batches with its own decode
   threads (``ImageFolder``, ``ImageShards``) gets process workers: its threads already overlap
   the reads (2 process workers on 2 cores: 1.4-1.6x none; 2 thread workers 0.9-1.0x).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinytorch.analysis.machine import available_cores
from tinytorch.data.loader.stats import STAGES, LoaderStats

__all__ = ["Diagnosis", "diagnose", "memory_note"]

INPUT_BOUND_SHARE = 0.10
PRIVATE_MEMORY_NOTE = 32 << 20
"""A process worker holding more private memory than this gets a note on copy-on-read. A worker
of a numpy pipeline holds 8-20 MB (the CIFAR augmentation; docs/benchmarks.md, "Copy-on-read");
one reading a list of 300,000 str held 46 MB."""
BUSY_SHARE = 0.8
"""Workers busy less than this share of the epoch are not what limits delivery."""

_ADVICE = {
    "read": (
        "reading samples from the dataset takes most of the time (I/O or per-sample Python in "
        "__getitem__). Read whole batches at once (a dataset with __getitems__, such as "
        "TensorDataset, CIFAR10Dataset or ShardedDataset) and keep data in memory-mapped shards "
        "instead of many small files."
    ),
    "read_batched": (
        "reading samples from the dataset takes most of the time, and it already reads each "
        "batch in one call (__getitems__): the time is in the reads themselves (file opens, disk "
        "or network, decoding). Samples in many small files read faster as memory-mapped shards "
        "(`tinytorch-data convert imagefolder SRC DST`, then ImageShards, for a folder of "
        "images); photos decode faster below full size where the transform shrinks them anyway "
        "(decode_size=)."
    ),
    "sample_transform": (
        "per-sample transforms take most of the time: each image goes through Python on its "
        "own. Move them to the loader's batch_transform= (RandomCrop, RandomHorizontalFlip, "
        "Normalize work on whole batches)."
    ),
    "collate": (
        "stacking samples into batches takes most of the time. Let the dataset read batches "
        "with __getitems__ (no stacking needed), or use fewer, larger fields per sample."
    ),
    "batch_transform": (
        "the batch transform takes most of the time. Make it cheaper: fuse its steps with "
        "Compose, crop before converting to float, keep uint8 until the last step."
    ),
    "transport": (
        "moving batches between worker processes and the training loop takes most of the "
        "time. Use worker_type='thread' (no copies), or larger batches."
    ),
}

_WORKER_KIND = {
    "read": "thread workers overlap the reads",
    "sample_transform": "process workers run per-sample Python in parallel",
    "collate": "thread workers collate without copying batches between processes",
    "batch_transform": "thread workers run numpy transforms in parallel without copying batches",
}

_KIND = {"read": "thread", "sample_transform": "process", "collate": "thread", "batch_transform": "thread"}
"""The worker type that helps each bottleneck (see rule 4 of the module docstring)."""


_BATCHED_READ_KIND = (
    "process",
    "process workers read and decode batches side by side, each with its share of the cores; "
    "the dataset's own decode threads already overlap the reads, so thread workers add little",
)
"""For a dataset that reads whole batches with its own threads (``ImageFolder``, ``ImageShards``):
2 process workers on 2 cores read 10,000 CIFAR-10 JPEGs 1.4-1.6x faster than none, 2 thread
workers 0.9-1.0x (``bench_images.py --task a``, docs/benchmarks.md)."""


def _workers_advice(stats: LoaderStats, bottleneck: str, cores: int) -> str:
    """What to do about workers, given the machine and how busy the workers were."""
    if bottleneck not in _WORKER_KIND:
        return ""
    kind, why = _KIND[bottleneck], _WORKER_KIND[bottleneck]
    if bottleneck == "read" and stats.batched_reads:
        kind, why = _BATCHED_READ_KIND
    workers = stats.num_workers
    io_note = " (reads that wait on disk or network are the exception: thread workers overlap waits)"
    io = io_note if bottleneck == "read" else ""
    if workers == 0:
        if cores < 2:
            return (
                f" This process may use 1 core, so workers cannot run beside training; adding them "
                f"would not help{io}."
            )
        more = " (reads that wait on disk or network gain from more thread workers than cores)"
        return (
            f" With num_workers=0 all of this runs in the training process: num_workers={cores - 1}, "
            f"worker_type='{kind}' overlaps it with training ({why}; "
            f"this process may use {cores} cores){more if bottleneck == 'read' else ''}."
        )
    if bottleneck == "read" and stats.batched_reads and stats.worker_type == "thread":
        return (
            " The dataset decodes in its own threads already, so thread workers add little: use "
            f"worker_type='process' (num_workers={min(workers, cores)}; {why})."
        )
    busy = stats.mean_utilization
    if workers >= cores:
        return (
            f" The {workers} worker{'s' * (workers != 1)} already use all {cores} "
            f"core{'s' * (cores != 1)} this process may use: more workers would not help{io}."
        )
    if busy is not None and busy < BUSY_SHARE:
        return (
            f" The {workers} workers were busy only {busy:.0%} of the epoch: they are not what limits "
            "delivery, so more workers would not help; the limit is in the loading process (delivery "
            "and the training step share it)."
        )
    if stats.worker_type == "thread" and bottleneck != "read" and workers + 1 >= cores:
        return (
            f" Thread workers share the GIL with the loading thread, and {workers + 1} of them would "
            f"leave none of the {cores} cores to it: another thread worker would not help (measured "
            "on 2 cores: no gain from a second one)."
            + (
                " For per-sample Python use worker_type='process'."
                if bottleneck == "sample_transform"
                else ""
            )
        )
    return (
        f" The workers were busy {busy:.0%} of the epoch and {cores - workers} of the {cores} cores are "
        f"left: num_workers={min(cores, workers + 1)} can help ({why})."
        if busy is not None
        else f" num_workers={min(cores, workers + 1)} can help ({why})."
    )


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

    memory: str = ""
    """A note on the workers' private memory, when it is large (else empty)."""

    def __str__(self) -> str:
        verdict = "INPUT-BOUND" if self.input_bound else "not input-bound"
        text = (
            f"{verdict}: the training loop waits for data {100 * self.wait_share:.0f}% of the "
            f"time (step {1000 * self.step_seconds:.2f} ms per batch). Bottleneck: "
            f"{self.bottleneck}. {self.advice}"
        )
        return f"{text}\n{self.memory}" if self.memory else text


def memory_note(stats: LoaderStats) -> str:
    """What to say about the process workers' private memory (empty when it is small).

    A forked worker shares the loading process's memory until it writes to it, and reading a
    Python object writes its reference count: a dataset of Python objects (a list of str,
    dicts, per-sample arrays in a list) ends up copied into every worker as an epoch reads it.
    numpy arrays (``TensorDataset``, ``ShardedDataset``) and ``PackedSequence`` hold no
    per-item objects and stay shared (docs/architecture.md, "Copy-on-read").
    """
    private = {w: s.private_bytes for w, s in stats.per_worker.items() if w >= 0 and s.private_bytes}
    if not private or max(private.values()) < PRIVATE_MEMORY_NOTE:
        return ""
    mb = max(private.values()) / (1 << 20)
    total = sum(private.values()) / (1 << 20)
    return (
        f"Memory: each process worker holds up to {mb:,.0f} MB of its own ({total:,.0f} MB for "
        f"{len(private)} workers). If the dataset keeps Python objects (lists of str, dicts, a list "
        "of arrays), every worker copies them as it reads them (reference counts are writes): "
        "store them in numpy arrays (TensorDataset, ShardedDataset) or PackedSequence, which "
        "workers share, or use worker_type='thread'."
    )


def diagnose(stats: LoaderStats, step_seconds: float | None = None, *, cores: int | None = None) -> Diagnosis:
    """Explain ``stats`` (from ``loader.stats()``).

    Args:
        stats: statistics of an epoch with at least one batch.
        step_seconds: the training step time per batch, if known better than the loader's
            measurement (time between batches).
        cores: the cores the loader may use; default: this process's (``os.sched_getaffinity``,
            else ``os.cpu_count()``). Workers are never advised beyond them.

    Raises:
        ValueError: ``stats`` holds no batch.
    """
    if stats.batches == 0:
        raise ValueError("diagnose needs statistics of at least one batch: iterate the loader first")
    step = stats.step_seconds if step_seconds is None else step_seconds
    wait = stats.wait_seconds / stats.batches
    share = wait / (wait + step) if wait + step > 0 else 0.0
    memory = memory_note(stats)
    if share < INPUT_BOUND_SHARE:
        return Diagnosis(
            False,
            share,
            step,
            "consumer",
            "The training step itself dominates; the loader keeps up and a faster loader would "
            "not speed training up. Make the model step faster, or use a larger batch.",
            memory,
        )
    per_batch = {name: stats.stage_seconds[name] / stats.batches for name in STAGES}
    bottleneck = max(per_batch, key=lambda name: per_batch[name])
    cores = available_cores() if cores is None else cores
    key = "read_batched" if bottleneck == "read" and stats.batched_reads else bottleneck
    advice = _ADVICE[key] + _workers_advice(stats, bottleneck, cores)
    return Diagnosis(True, share, step, bottleneck, advice, memory)
