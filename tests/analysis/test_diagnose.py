"""The diagnosis is right on three scripted scenarios."""

import time

import numpy as np
import pytest

from tinytorch import DataLoader, Dataset, TensorDataset
from tinytorch.analysis import diagnose
from tinytorch.data.loader.stats import LoaderStats


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
    d = diagnose(run(DataLoader(SlowIO(), batch_size=8)))
    assert d.input_bound
    assert d.bottleneck == "read"
    assert "__getitems__" in d.advice
    assert "num_workers=2" in d.advice


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
