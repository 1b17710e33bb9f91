"""The diagnosis is right on three scripted scenarios."""

import time

import numpy as np
import pytest

from tinytorch import DataLoader, Dataset, TensorDataset
from tinytorch.analysis import diagnose
from tinytorch.data.loader.stats import STAGES, LoaderStats, WorkerStats


class SlowIO(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        time.sleep(0.002)  # a slow disk or network read
        return np.full(4, i, dtype=np.float32)


class SlowTransform(Dataset):
    def __init__(self):
        self.data = np.zeros((64, 4), dtype=np.float32)

    def __len__(self):
        return 64

    def __getitems__(self, indices):
        from tinytorch.data.datasets.base import map_samples, timed_sample_transform

        return map_samples(lambda i: timed_sample_transform(self._augment, self.data[i]), list(indices))

    def __getitem__(self, i):
        return self.data[i]

    @staticmethod
    def _augment(x):
        time.sleep(0.002)  # an expensive per-sample augmentation
        return x + 1


def run(loader, step=0.0):
    for _ in loader:
        if step:
            time.sleep(step)
    return loader.stats()


def test_slow_io_is_diagnosed_as_reading():
    d = diagnose(run(DataLoader(SlowIO(), batch_size=8)), cores=3)
    assert d.input_bound
    assert d.bottleneck == "read"
    assert "__getitems__" in d.advice
    assert "num_workers=2" in d.advice  # cores - 1: one core stays with training


class SlowBatchedIO(SlowIO):
    """Reads a batch in one call (as ImageFolder and the shard datasets do), slowly."""

    def __getitems__(self, indices):
        time.sleep(0.004)
        return [np.full(4, i, dtype=np.float32) for i in indices]


def test_slow_batched_reads_are_not_told_to_read_batches():
    """A dataset that has __getitems__ already was told to add one (ImageFolder users were)."""
    stats = run(DataLoader(SlowBatchedIO(), batch_size=8))
    assert stats.batched_reads is True
    d = diagnose(stats, cores=3)
    assert d.bottleneck == "read"
    assert "already reads each batch in one call" in d.advice
    assert "a dataset with __getitems__" not in d.advice
    assert "convert imagefolder" in d.advice
    assert "num_workers=2, worker_type='process'" in d.advice  # measured: threads add little
    assert run(DataLoader(SlowIO(), batch_size=8)).batched_reads is False
    threads = run(DataLoader(SlowBatchedIO(), batch_size=8, num_workers=2, worker_type="thread"))
    assert "use worker_type='process' (num_workers=2" in diagnose(threads, cores=3).advice


def test_slow_per_sample_transform_is_diagnosed():
    d = diagnose(run(DataLoader(SlowTransform(), batch_size=8)))
    assert d.input_bound
    assert d.bottleneck == "sample_transform"
    assert "batch_transform=" in d.advice


def test_slow_consumer_is_not_input_bound():
    loader = DataLoader(TensorDataset(np.zeros((64, 4))), batch_size=8)
    d = diagnose(run(loader, step=0.01))
    assert not d.input_bound
    assert d.bottleneck == "consumer"
    assert "not input-bound" in str(d)


def test_step_time_can_be_passed_in():
    stats = run(DataLoader(SlowIO(), batch_size=8))
    assert not diagnose(stats, step_seconds=10.0).input_bound


def test_no_batches():
    with pytest.raises(ValueError, match="at least one batch"):
        diagnose(LoaderStats(0, 0, "in-process"))


def input_bound_stats(num_workers, busy_seconds, bottleneck="batch_transform"):
    """An epoch of 100 batches in 10 s, the consumer waiting 90% of it, ``bottleneck`` dominant."""
    stats = LoaderStats(0, num_workers, "thread" if num_workers else "in-process", batches=100)
    stats.wall_seconds = 10.0
    stats.wait_seconds = 9.0
    stats.consumer_seconds = 1.0
    stats.stage_seconds = dict.fromkeys(STAGES, 0.1)
    stats.stage_seconds[bottleneck] = 8.0
    for worker in range(num_workers):
        stats.per_worker[worker] = WorkerStats(50, busy_seconds)
    return stats


@pytest.mark.parametrize("bottleneck", ["batch_transform", "sample_transform", "collate", "read"])
def test_no_more_workers_when_the_workers_use_every_core(bottleneck):
    d = diagnose(input_bound_stats(2, busy_seconds=9.9, bottleneck=bottleneck), cores=2)
    assert d.input_bound
    assert "num_workers=" not in d.advice
    assert "all 2 cores" in d.advice
    assert "would not help" in d.advice


def test_no_more_workers_when_the_workers_are_idle():
    d = diagnose(input_bound_stats(2, busy_seconds=5.0), cores=8)  # busy 50% of the epoch
    assert "num_workers=" not in d.advice
    assert "busy only 50%" in d.advice


def test_more_workers_when_busy_and_cores_are_left():
    d = diagnose(input_bound_stats(2, busy_seconds=9.5), cores=8)
    assert "num_workers=3" in d.advice
    assert "busy 95%" in d.advice


def test_on_one_core_workers_are_not_advised():
    d = diagnose(input_bound_stats(0, busy_seconds=0.0), cores=1)
    assert "num_workers=" not in d.advice
    assert "1 core" in d.advice


def test_in_process_advice_fits_the_cores():
    assert "num_workers=3" in diagnose(input_bound_stats(0, busy_seconds=0.0), cores=4).advice


def test_default_cores_are_this_process_affinity(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    d = diagnose(input_bound_stats(1, busy_seconds=9.9))
    assert "all 1 core this process may use" in d.advice
    assert "num_workers=" not in d.advice


def test_in_process_advice_names_the_worker_type_that_helps():
    vectorized = diagnose(input_bound_stats(0, busy_seconds=0.0), cores=2).advice
    assert "num_workers=1, worker_type='thread'" in vectorized
    per_sample = diagnose(input_bound_stats(0, 0.0, bottleneck="sample_transform"), cores=2).advice
    assert "worker_type='process'" in per_sample


def test_no_further_thread_worker_when_no_core_is_left_for_the_loading_thread():
    d = diagnose(input_bound_stats(1, busy_seconds=9.5), cores=2)  # one busy thread worker, 2 cores
    assert "num_workers=" not in d.advice
    assert "GIL" in d.advice
    assert "would not help" in d.advice
    assert "num_workers=3" in diagnose(input_bound_stats(2, busy_seconds=9.5), cores=4).advice


def test_busy_share_comes_from_the_loader_statistics():
    stats = input_bound_stats(2, busy_seconds=5.0)
    assert stats.mean_utilization == pytest.approx(0.5)
    assert "busy only 50%" in diagnose(stats, cores=8).advice
