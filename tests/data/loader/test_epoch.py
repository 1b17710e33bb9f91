import numpy as np
import pytest

from tinytorch.data.collate.default import default_collate
from tinytorch.data.datasets.tensor import TensorDataset
from tinytorch.data.fetch.fetcher import IterableFetcher, MapFetcher
from tinytorch.data.loader.epoch import IterableEpoch, MapEpoch
from tinytorch.data.sampling.batching import BatchSampler


def map_epoch(batch_sampler, n=10, length=None):
    ds = TensorDataset(np.arange(n))
    fetcher = MapFetcher(ds, default_collate, batched=True, seed=0)
    return MapEpoch(fetcher, batch_sampler, 0, batched=True, dataset_length=n, length=length)


def test_map_epoch_runs_the_plan_in_order():
    epoch = map_epoch(BatchSampler(range(10), 4, False), length=3)
    assert len(epoch) == 3
    assert [b[0].tolist() for b in epoch] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_out_of_range_index_names_the_sampler_batch_and_epoch():
    epoch = map_epoch([[0, 1], [2, 12]])
    next(epoch)
    with pytest.raises(
        IndexError,
        match=r"the list produced index 12 in batch 1 of epoch 0, but the dataset has 10",
    ):
        next(epoch)


def test_close_stops_and_unknown_length_raises():
    epoch = map_epoch([[0], [1]])
    with pytest.raises(TypeError, match="unknown"):
        len(epoch)
    epoch.close()
    assert list(epoch) == []


def test_iterable_epoch_stays_exhausted():
    fetcher = IterableFetcher(
        iter(range(3)), default_collate, batch_size=2, drop_last=False, seed=0
    )
    epoch = IterableEpoch(fetcher, 0, length=None)
    assert [b.tolist() for b in epoch] == [[0, 1], [2]]
    assert list(epoch) == []
    with pytest.raises(TypeError, match="no __len__"):
        len(epoch)
