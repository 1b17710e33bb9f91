"""Iterable datasets with workers (issue 15 item 3): each worker its stream, a fixed cycle."""

import numpy as np
import pytest

from support.worker_datasets import Numbers, Uneven
from tinytorch import DataLoader, IterableDataset, split_stream

torch = pytest.importorskip("torch")


def rows(loader):
    return [row.tolist() for batch in loader for row in batch]


@pytest.mark.parametrize(("workers", "kind"), [(1, "process"), (2, "process"), (2, "thread"), (3, "thread")])
def test_every_item_once_and_the_same_bytes_every_run(workers, kind):
    loader = DataLoader(Numbers(20), batch_size=3, seed=1, num_workers=workers, worker_type=kind)
    first = rows(loader)
    assert sorted(r[0] for r in first) == list(range(20))  # split_stream: each item read once
    loader.set_epoch(0)
    assert rows(loader) == first
    again = DataLoader(Numbers(20), batch_size=3, seed=1, num_workers=workers, worker_type=kind)
    assert rows(again) == first
    loader.close()


def test_batches_cycle_through_the_workers_in_order():
    batches = [b.tolist() for b in DataLoader(Numbers(12), batch_size=2, num_workers=2, seed=0)]
    # worker 0 reads items 0, 2, 4, ...; worker 1 reads 1, 3, 5, ...; batches alternate 0, 1, 0, 1
    assert [[r[0] for r in b] for b in batches] == [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10], [9, 11]]


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_a_worker_whose_stream_ends_leaves_the_cycle_and_the_others_go_on(kind):
    loader = DataLoader(Uneven(), batch_size=2, num_workers=3, worker_type=kind, seed=5)
    got = [(int(b[0, 0]), b[:, 1].tolist()) for b in loader]
    assert got == [
        (0, [0, 1]),
        (1, [0, 1]),
        (2, [0, 1]),
        (0, [2]),
        (1, [2, 3]),
        (2, [2, 3]),
        (1, [4, 5]),
        (2, [4, 5]),
        (2, [6, 7]),
        (2, [8]),
    ]
    loader.set_epoch(0)
    again = rows(DataLoader(Uneven(), batch_size=2, num_workers=3, worker_type=kind, seed=5))
    width = 3 if kind == "process" else 2  # thread workers share np.random: not seeded
    assert [r[:width] for r in rows(loader)] == [r[:width] for r in again]


def test_global_draws_in_a_stream_are_seeded_per_batch():
    a = rows(DataLoader(Uneven(), batch_size=2, num_workers=3, seed=5))
    b = rows(DataLoader(Uneven(), batch_size=2, num_workers=3, seed=5, worker_type="thread"))
    assert [r[:2] for r in a] == [r[:2] for r in b]
    assert [r[2] for r in a] != [
        r[2] for r in rows(DataLoader(Uneven(), batch_size=2, num_workers=3, seed=6))
    ]


class TorchStream(torch.utils.data.IterableDataset):
    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(worker, 10, workers))


def test_torchs_iterable_dataset_is_accepted_as_what_it_is():
    assert [b.tolist() for b in DataLoader(TorchStream(), batch_size=4)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]
    # torch's own get_worker_info() is None in our workers: a torch dataset that shards itself
    # with it reads everything in each worker; ours (or split_stream) says which worker runs.
    with_workers = sorted(
        x for b in DataLoader(TorchStream(), batch_size=4, num_workers=2) for x in b.tolist()
    )
    assert with_workers == sorted(list(range(10)) * 2)


def test_a_plain_generator_is_a_stream():
    assert [b.tolist() for b in DataLoader((i * i for i in range(5)), batch_size=2)] == [[0, 1], [4, 9], [16]]


class Sized(IterableDataset):
    def __iter__(self):
        return iter(split_stream(range(10)))

    def __len__(self):
        return 10


def test_len_of_the_loader_where_the_stream_has_one():
    assert len(DataLoader(Sized(), batch_size=4, num_workers=2)) == 3
    assert len(DataLoader(Sized(), batch_size=4, drop_last=True)) == 2


def test_split_stream_outside_a_worker_and_under_torchrun(monkeypatch):
    assert list(split_stream(range(5))) == [0, 1, 2, 3, 4]
    assert list(split_stream(range(10), num_replicas=3, rank=1)) == [1, 4, 7]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert list(split_stream(range(6))) == [1, 3, 5]
    with pytest.raises(ValueError, match="rank"):
        list(split_stream(range(6), num_replicas=2, rank=2))


def test_ranks_and_workers_read_every_item_exactly_once():
    seen = []
    for rank in range(2):
        loader = DataLoader(_RankNumbers(30, rank), batch_size=4, num_workers=3, worker_type="thread", seed=0)
        seen += [int(x) for b in loader for x in b[:, 0]]
    assert sorted(seen) == list(range(30))


class _RankNumbers(IterableDataset):
    def __init__(self, n, rank):
        self.n, self.rank = n, rank

    def __iter__(self):
        for i in split_stream(range(self.n), num_replicas=2, rank=self.rank):
            yield np.array([i])
