import numpy as np
import pytest

from tinytorch.data.collate.default import default_collate
from tinytorch.data.datasets.base import Dataset
from tinytorch.data.datasets.tensor import TensorDataset
from tinytorch.data.fetch.fetcher import BatchTask, MapFetcher, StreamExhausted, StreamFetcher
from tinytorch.data.seeding import get_batch_context


class NoisySample(Dataset):
    """Each sample draws from the per-sample stream of the batch context."""

    def __len__(self):
        return 100

    def __getitem__(self, i):
        return get_batch_context().rng.random()


def task(epoch, index, indices):
    return BatchTask(epoch, index, np.asarray(indices, dtype=np.int64))


def test_map_fetcher_reads_and_collates():
    ds = TensorDataset(np.arange(10), np.arange(10) * 2)
    f = MapFetcher(ds, default_collate, batched=True, seed=0)
    x, y = f(task(0, 0, [1, 3]))
    assert x.tolist() == [1, 3]
    assert y.tolist() == [2, 6]


def test_map_fetcher_unbatched_passes_one_sample():
    ds = TensorDataset(np.arange(10))
    f = MapFetcher(ds, lambda s: ("converted", s), batched=False, seed=0)
    assert f(task(0, 0, [4]))[1][0] == 4


def test_randomness_depends_only_on_seed_epoch_batch_and_position():
    f = MapFetcher(NoisySample(), default_collate, batched=True, seed=5)
    a = f(task(1, 2, [0, 1, 2]))
    assert np.array_equal(a, f(task(1, 2, [7, 8, 9])))  # not the dataset index
    assert len(set(a.tolist())) == 3  # each position its own stream
    assert not np.array_equal(a, f(task(1, 3, [0, 1, 2])))
    assert not np.array_equal(a, f(task(2, 2, [0, 1, 2])))
    other_seed = MapFetcher(NoisySample(), default_collate, batched=True, seed=6)
    assert not np.array_equal(a, other_seed(task(1, 2, [0, 1, 2])))


def test_batch_transform_gets_the_batch_rng():
    seen = []

    def transform(batch, rng):
        seen.append(rng.random())
        return batch[0] + 1

    ds = TensorDataset(np.arange(10))
    f = MapFetcher(ds, default_collate, batched=True, seed=0, batch_transform=transform)
    assert f(task(0, 0, [1, 2])).tolist() == [2, 3]
    f(task(0, 0, [3]))
    f(task(0, 1, [3]))
    assert seen[0] == seen[1] != seen[2]


def stream_task(epoch, index, start=None):
    return BatchTask(epoch, index, start=start)


def test_stream_fetcher_batches_and_stops():
    f = StreamFetcher(range(7), default_collate, batch_size=3, drop_last=False, seed=0)
    assert f.make(stream_task(0, 0, start=0))[0].tolist() == [0, 1, 2]
    assert f.make(stream_task(0, 1))[0].tolist() == [3, 4, 5]
    assert f.make(stream_task(0, 2))[0].tolist() == [6]
    with pytest.raises(StreamExhausted):
        f.make(stream_task(0, 3))
    with pytest.raises(StreamExhausted):  # an ended stream stays ended until a task starts it
        f.make(stream_task(0, 4))
    assert f.make(stream_task(1, 2, start=2))[0].tolist() == [6]  # restarted, two batches passed over


def test_stream_fetcher_drop_last_and_unbatched():
    f = StreamFetcher(range(4), default_collate, batch_size=3, drop_last=True, seed=0)
    assert f.make(stream_task(0, 0, start=0))[0].tolist() == [0, 1, 2]
    with pytest.raises(StreamExhausted):
        f.make(stream_task(0, 1))
    g = StreamFetcher("ab", lambda s: s, batch_size=None, drop_last=False, seed=0)
    assert [g.make(stream_task(0, 0, start=0))[0], g.make(stream_task(0, 1))[0]] == ["a", "b"]
    with pytest.raises(StreamExhausted):
        g.make(stream_task(0, 2))


def test_stream_fetcher_pickles_without_its_streams():
    import pickle

    f = StreamFetcher(range(4), default_collate, batch_size=2, drop_last=False, seed=0)
    f.make(stream_task(0, 0, start=0))
    copy = pickle.loads(pickle.dumps(f))
    with pytest.raises(StreamExhausted):
        copy.make(stream_task(0, 1))  # no stream in the copy until a task starts one
