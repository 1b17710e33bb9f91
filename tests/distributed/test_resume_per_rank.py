"""Resume works per rank (issue 15 item 2), in one process: every rank of a world of 1-4.

The kinds test_resume.py covers for one process, split across ranks: a map-style dataset with
``DistributedSampler`` (pad or drop) and ``DistributedEvalSampler``, shards with the windowed
and the index-shuffle samplers (``num_replicas=``, ``rank=``), and a stream split by
``split_stream``. Each rank is run as a DDP script runs it (``sampler.set_epoch(epoch)`` before
each epoch), stopped after ``k`` batches for every ``k`` of the epoch, its ``state_dict()``
sent through JSON, and a fresh loader resumed from it: the batches that follow must be the
uninterrupted run's, byte for byte. For map-style data the ranks deliver batches in lockstep,
so any rank's state resumes every rank (rank 0 writes the one checkpoint).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch import (
    Compose,
    DataLoader,
    DistributedEvalSampler,
    DistributedSampler,
    IndexShuffleSampler,
    IterableDataset,
    RandomCrop,
    RandomHorizontalFlip,
    ShardedDataset,
    TensorDataset,
    WindowedShuffleSampler,
    get_batch_context,
    split_stream,
    write_shards,
)

EPOCHS = 2
AUGMENT = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip()])


def digest(batch) -> str:
    parts = batch if isinstance(batch, (list, tuple)) else [batch]
    return hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts)).hexdigest()[:16]


class Job:
    """One rank's loader, built the same way for the first run and for the resumed one."""

    def __init__(self, make_loader, sampler_of=lambda loader: loader.sampler):
        self.make_loader = make_loader
        self.sampler_of = sampler_of

    def epochs(self, loader, first=0, stop_after=None):
        """Run epochs ``first..EPOCHS-1`` as a DDP script does; stop after ``stop_after`` batches.

        Returns:
            ``(digests of the batches delivered, loader.state_dict() at the stop or None)``.
        """
        sampler, out = self.sampler_of(loader), []
        for epoch in range(first, EPOCHS):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            for batch in loader:
                out.append(digest(batch))
                if len(out) == stop_after:
                    state = json.loads(json.dumps(loader.state_dict()))
                    loader.close()
                    return out, state
        loader.close()
        return out, None

    def uninterrupted(self):
        return self.epochs(self.make_loader())[0]

    def stopped(self, k):
        return self.epochs(self.make_loader(), stop_after=k)

    def resumed(self, state):
        loader = self.make_loader()
        loader.load_state_dict(state)
        return self.epochs(loader, first=state["epoch"])[0]


def check_every_batch_index(job: Job, reference=None) -> int:
    """Stop after each batch of both epochs, resume, compare; return the batches per run."""
    reference = job.uninterrupted() if reference is None else reference
    for k in range(1, len(reference)):
        delivered, state = job.stopped(k)
        assert delivered == reference[:k]
        assert job.resumed(state) == reference[k:], k
    return len(reference)


# ---- DistributedSampler, map-style --------------------------------------------------------------


def images(n):
    rng = np.random.default_rng(n)
    return TensorDataset(rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8), np.arange(n))


def distributed_job(data, world, rank, *, batch_size, shuffle=True, sampler_drop_last=False, **loader_kwargs):
    def make():
        sampler = DistributedSampler(
            data, num_replicas=world, rank=rank, shuffle=shuffle, seed=5, drop_last=sampler_drop_last
        )
        return DataLoader(data, batch_size=batch_size, sampler=sampler, seed=5, **loader_kwargs)

    return Job(make)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 23),
    world=st.integers(1, 4),
    batch_size=st.integers(1, 5),
    shuffle=st.booleans(),
    sampler_drop_last=st.booleans(),
    drop_last=st.booleans(),
)
def test_distributed_sampler_resumes_on_every_rank_at_every_batch(
    n, world, batch_size, shuffle, sampler_drop_last, drop_last
):
    data = images(n)
    runs = []
    for rank in range(world):
        job = distributed_job(
            data,
            world,
            rank,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler_drop_last=sampler_drop_last,
            drop_last=drop_last,
            batch_transform=AUGMENT,
        )
        runs.append(check_every_batch_index(job))
    assert len(set(runs)) == 1  # the same number of batches on every rank


@pytest.mark.parametrize(
    "workers",
    [{"num_workers": 2}, {"num_workers": 2, "worker_type": "thread", "persistent_workers": True}],
)
def test_distributed_sampler_resumes_with_workers(workers):
    data = images(23)
    for rank in range(3):
        job = distributed_job(data, 3, rank, batch_size=3, batch_transform=AUGMENT, **workers)
        in_process = distributed_job(data, 3, rank, batch_size=3, batch_transform=AUGMENT)
        check_every_batch_index(job, reference=in_process.uninterrupted())


@pytest.mark.parametrize("world", [2, 3, 4])
def test_rank_0s_state_resumes_every_rank(world):
    """The state has no rank in it: ranks deliver batches in lockstep, so one checkpoint serves all."""
    data = images(19)
    jobs = [distributed_job(data, world, rank, batch_size=2) for rank in range(world)]
    references = [job.uninterrupted() for job in jobs]
    for k in range(1, len(references[0])):
        _, state = jobs[0].stopped(k)
        for rank, job in enumerate(jobs):
            assert job.stopped(k)[1] == state
            assert job.resumed(state) == references[rank][k:]


@pytest.mark.parametrize("world", [2, 3, 4])
def test_eval_sampler_resumes_per_rank_with_uneven_batch_counts(world):
    data = images(17)
    counts = []
    for rank in range(world):

        def make(rank=rank):
            sampler = DistributedEvalSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=2)
            return DataLoader(data, batch_size=3, sampler=sampler, seed=2)

        counts.append(check_every_batch_index(Job(make)))
    assert sum(len(range(r, 17, world)) for r in range(world)) == 17
    assert counts == [EPOCHS * -(-len(range(r, 17, world)) // 3) for r in range(world)]


# ---- shards: windowed and index-shuffle samplers split by rank ----------------------------------


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shards") / "data"
    write_shards(images(50), directory, samples_per_shard=7)  # 8 shards, the last of 1
    return ShardedDataset(directory)


def sharded_job(shards, order, world, rank, drop_last, **workers):
    def make():
        split = {"num_replicas": world, "rank": rank, "drop_last": drop_last}
        if order == "windowed":
            sampler = WindowedShuffleSampler(shards, window=2, seed=8, **split)
        else:
            sampler = IndexShuffleSampler(shards, seed=8, chunk=16, **split)
        return DataLoader(shards, batch_size=4, sampler=sampler, seed=8, batch_transform=AUGMENT, **workers)

    return Job(make)


@pytest.mark.parametrize("order", ["windowed", "index"])
@pytest.mark.parametrize(("world", "drop_last"), [(1, False), (3, False), (4, True)])
def test_sharded_samplers_resume_on_every_rank_at_every_batch(shards, order, world, drop_last):
    runs = [check_every_batch_index(sharded_job(shards, order, world, r, drop_last)) for r in range(world)]
    assert len(set(runs)) == 1


@pytest.mark.parametrize("order", ["windowed", "index"])
def test_sharded_samplers_resume_per_rank_with_process_workers(shards, order):
    for rank in range(2):
        reference = sharded_job(shards, order, 2, rank, False).uninterrupted()
        job = sharded_job(shards, order, 2, rank, False, num_workers=2)
        for k in (1, 4, 7, 10):
            _, state = job.stopped(k)
            assert job.resumed(state) == reference[k:]


# ---- a stream split by rank and worker -----------------------------------------------------------


class RankStream(IterableDataset):
    """Items ``0..n-1``, this rank's and this worker's share (``split_stream``), with random draws."""

    def __init__(self, n, world, rank):
        self.n, self.world, self.rank = n, world, rank

    def __iter__(self):
        for i in split_stream(range(self.n), num_replicas=self.world, rank=self.rank):
            yield np.array([i, get_batch_context().rng.integers(1 << 30)])


@pytest.mark.parametrize(
    ("world", "workers"),
    [(1, {}), (3, {}), (2, {"num_workers": 2}), (3, {"num_workers": 2, "worker_type": "thread"})],
)
def test_a_stream_split_by_rank_resumes_on_every_rank_at_every_batch(world, workers):
    items = []
    for rank in range(world):
        job = Job(lambda rank=rank: DataLoader(RankStream(29, world, rank), batch_size=3, seed=4, **workers))
        check_every_batch_index(job)
        loader = DataLoader(RankStream(29, world, rank), batch_size=3, seed=4, **workers)
        items += [int(row[0]) for batch in loader for row in batch]
        loader.close()
    assert sorted(items) == list(range(29))  # every item once across the ranks and workers


# ---- another world size ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sampler",
    [
        lambda data, world: DistributedSampler(data, num_replicas=world, rank=0, seed=1),
        lambda data, world: DistributedEvalSampler(data, num_replicas=world, rank=0),
        lambda data, world: IndexShuffleSampler(data, seed=1, num_replicas=world, rank=0),
    ],
)
def test_a_state_from_another_world_size_is_refused(sampler):
    """Regression: a rank's position means other samples under another world size. The state was
    accepted, and a job restarted on 4 processes from a 2-process checkpoint silently skipped and
    repeated samples; now the world size is in the state and checked."""
    data = images(20)
    saved = DataLoader(data, batch_size=2, sampler=sampler(data, 2), seed=0)
    epoch = iter(saved)
    next(epoch)
    state = json.loads(json.dumps(saved.state_dict()))
    assert state["num_replicas"] == 2
    DataLoader(data, batch_size=2, sampler=sampler(data, 2), seed=0).load_state_dict(state)  # same: fine
    with pytest.raises(
        ValueError,
        match=r"saved by a loader with num_replicas=2, this loader has num_replicas=4: the sampler splits "
        r"each epoch.*restart with 2 processes, or start the saved epoch over",
    ):
        DataLoader(data, batch_size=2, sampler=sampler(data, 4), seed=0).load_state_dict(state)


def test_the_world_size_is_read_through_a_batch_sampler_and_absent_without_a_split():
    from tinytorch import BatchSampler

    data = images(20)
    batches = BatchSampler(DistributedSampler(data, num_replicas=3, rank=1, seed=0), 2, drop_last=False)
    assert DataLoader(data, batch_sampler=batches, seed=0).state_dict()["num_replicas"] == 3
    assert DataLoader(data, batch_size=2, shuffle=True, seed=0).state_dict()["num_replicas"] is None
    assert DataLoader(RankStream(5, 2, 0), batch_size=2, seed=0).state_dict()["num_replicas"] is None
