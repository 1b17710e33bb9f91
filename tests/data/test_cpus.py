"""One answer to "how many cores may this process use", for the loader, decode threads and advice."""

import os
import warnings

import numpy as np
import pytest

from tinytorch import DataLoader, TensorDataset
from tinytorch.analysis import machine
from tinytorch.data.cpus import available_cores
from tinytorch.data.datasets.thread_map import default_num_threads


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no affinity masks on this OS")
def test_the_affinity_mask_not_the_machine_counts():
    assert available_cores() == len(os.sched_getaffinity(0))


def test_without_affinity_masks_the_cpu_count_counts(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert available_cores() == 5
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undetermined"
    assert available_cores() == 1


def test_the_loader_the_decode_threads_and_the_analysis_agree(monkeypatch):
    """A process pinned to one core (taskset, a container's --cpuset-cpus) on a larger machine."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert available_cores() == machine.available_cores() == default_num_threads() == 1
    with pytest.warns(UserWarning, match="may use only 1 CPU: "):
        iter(
            DataLoader(TensorDataset(np.arange(8)), batch_size=4, num_workers=2, worker_type="thread")
        ).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iter(
            DataLoader(TensorDataset(np.arange(8)), batch_size=4, num_workers=1, worker_type="thread")
        ).close()
