"""Partitioning through the loader (issue 15 tests): every rank's batches, with workers.

tests/data/sampling/test_distributed.py checks the samplers' index sets; here the same
properties hold for what each rank's ``DataLoader`` delivers, over (world size, dataset size,
batch size, the sampler's and the loader's drop_last, workers).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch import DataLoader, DistributedEvalSampler, DistributedSampler, TensorDataset


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 40),
    world=st.integers(1, 5),
    batch_size=st.integers(1, 6),
    sampler_drop_last=st.booleans(),
    drop_last=st.booleans(),
    workers=st.sampled_from([0, 1, 2]),
    epoch=st.integers(0, 3),
)
def test_ranks_get_equal_batch_counts_and_cover_the_epoch(
    n, world, batch_size, sampler_drop_last, drop_last, workers, epoch
):
    data = TensorDataset(np.arange(n))
    per_rank = []
    for rank in range(world):
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, seed=3, drop_last=sampler_drop_last)
        sampler.set_epoch(epoch)
        loader = DataLoader(
            data,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=workers,
            worker_type="thread",
            seed=3,
        )
        batches = [b[0].tolist() for b in loader]
        assert len(batches) == len(loader)
        delivered = [i for b in batches for i in b]
        planned = sampler.indices(epoch).tolist()
        kept = len(planned) - len(planned) % batch_size if drop_last else len(planned)
        assert delivered == planned[:kept]  # the sampler's part, in order, for any worker count
        per_rank.append(batches)

    assert len({len(b) for b in per_rank}) == 1  # no rank waits in a collective the others skip
    counts = np.bincount([i for b in per_rank for batch in b for i in batch], minlength=n)
    if not drop_last or len(planned) % batch_size == 0:  # the loader dropped no sample
        if sampler_drop_last:
            assert counts.max(initial=0) <= 1
            assert counts.sum() == n - n % world
        else:
            assert counts.min(initial=1) >= 1
            assert counts.sum() - n == -(-n // world) * world - n < world  # the padding only


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 40), world=st.integers(1, 5), batch_size=st.integers(1, 6), shuffle=st.booleans())
def test_evaluation_delivers_every_sample_exactly_once(n, world, batch_size, shuffle):
    data = TensorDataset(np.arange(n))
    seen, batches = [], []
    for rank in range(world):
        sampler = DistributedEvalSampler(data, num_replicas=world, rank=rank, shuffle=shuffle, seed=1)
        loader = DataLoader(data, batch_size=batch_size, sampler=sampler)
        rank_batches = [b[0].tolist() for b in loader]
        batches.append(len(rank_batches))
        seen += [i for b in rank_batches for i in b]
    assert sorted(seen) == list(range(n))
    assert max(batches) - min(batches) <= 1  # ranks differ by at most one batch
