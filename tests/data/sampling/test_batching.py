import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.data.sampling.batching import BatchSampler, chunk, plan_batches, plan_samples
from tinytorch.data.sampling.samplers import RandomSampler, SequentialSampler


@given(n=st.integers(0, 100), bs=st.integers(1, 20), drop_last=st.booleans())
def test_chunk_covers_order_in_batches(n, bs, drop_last):
    order = np.arange(n)
    batches = list(chunk(order, bs, drop_last))
    assert all(len(b) == bs for b in batches[:-1])
    flat = np.concatenate(batches).tolist() if batches else []
    expected_len = n - n % bs if drop_last else n
    assert flat == list(range(expected_len))


def test_batch_sampler_yields_lists_like_torch():
    bs = BatchSampler(SequentialSampler(range(7)), 3, drop_last=False)
    assert list(bs) == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(bs) == 3
    dropped = BatchSampler(range(7), 3, drop_last=True)
    assert list(dropped) == [[0, 1, 2], [3, 4, 5]]
    assert len(dropped) == 2


@given(n=st.integers(0, 60), bs=st.integers(1, 9), drop_last=st.booleans(), epoch=st.integers(0, 5))
def test_planned_batches_equal_iterated_batches(n, bs, drop_last, epoch):
    fast = BatchSampler(RandomSampler(range(n), seed=1), bs, drop_last)
    planned = [b.tolist() for b in fast.batches(epoch)]
    # The same sampler seen as a plain iterable goes through the generic path.
    sampler = RandomSampler(range(n), seed=1)
    sampler.set_epoch(epoch)
    generic = BatchSampler(list(sampler), bs, drop_last)
    assert planned == [b.tolist() for b in generic.batches(0)]
    assert len(planned) == len(fast)


def test_set_epoch_is_forwarded():
    bs = BatchSampler(RandomSampler(range(20), seed=0), 5, False)
    first = list(bs)
    bs.set_epoch(1)
    assert bs.sampler.epoch == 1
    assert list(bs) != first


def test_the_loader_sets_a_custom_batch_samplers_epoch():
    from tinytorch import DataLoader, TensorDataset

    class Custom:
        epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __iter__(self):
            yield [self.epoch, 0]

    loader = DataLoader(TensorDataset(np.arange(10)), batch_sampler=Custom())
    loader.set_epoch(4)
    assert [b[0].tolist() for b in loader] == [[4, 0]]
    assert [b[0].tolist() for b in loader] == [[5, 0]]


def test_plan_samples():
    assert [(b.tolist(), bulk) for b, bulk in plan_samples(SequentialSampler(range(3)), 0)] == [
        ([0], False),
        ([1], False),
        ([2], False),
    ]
    assert [(b.tolist(), bulk) for b, bulk in plan_samples(iter([5, np.int32(6)]), 0)] == [
        ([5], False),
        ([6], False),
    ]
    assert [(b.tolist(), bulk) for b, bulk in plan_samples(iter([[1, 2], (3,)]), 0)] == [
        ([1, 2], True),
        ([3], True),
    ]


@pytest.mark.parametrize(
    ("batches", "error", "match"),
    [
        ([[0, 1.7]], TypeError, r"produced \[0, 1.7\]: dataset indices must be ints, got float64"),
        ([["3"]], TypeError, "dataset indices must be ints, got <U1"),
        ([[True, False]], TypeError, "dataset indices must be ints, got bool"),
        ([[[0, 1], [2, 3]]], ValueError, r"nested list of indices, shape \(2, 2\)"),
    ],
)
def test_indices_that_are_not_ints_are_refused_not_coerced(batches, error, match):
    """Issue 16 item 7: 1.7 became 1, "3" became 3, nested lists were flattened."""
    with pytest.raises(error, match=match):
        list(plan_batches(batches, 0))
    sampler_items = [x for batch in batches for x in batch]
    with pytest.raises((TypeError, ValueError)):
        list(BatchSampler(sampler_items, 2, False).batches(0))


@pytest.mark.parametrize("item", [1.0, "3", None, True])
def test_unbatched_samplers_yield_ints_or_lists_of_ints(item):
    with pytest.raises(TypeError, match="dataset indices must be ints"):
        list(plan_samples(iter([item]), 0))


@pytest.mark.parametrize("start", [0, 1, 3, 5, 6])
def test_plans_start_anywhere_and_equal_the_tail_of_the_whole_plan(start):
    sampler = RandomSampler(range(23), seed=4)
    whole = [b.tolist() for b in plan_batches(BatchSampler(sampler, 4, False), 2)]
    assert [b.tolist() for b in plan_batches(BatchSampler(sampler, 4, False), 2, start=start)] == whole[
        start:
    ]
    user = [list(range(k, k + 3)) for k in range(0, 18, 3)]
    assert [b.tolist() for b in plan_batches(user, 0, start=start)] == user[start:]
    samples = [b.tolist() for b, _ in plan_samples(sampler, 2)]
    assert [b.tolist() for b, _ in plan_samples(sampler, 2, start=start)] == samples[start:]


@pytest.mark.parametrize(("bs", "error"), [(0, ValueError), (2.0, TypeError), (None, TypeError)])
def test_batch_sampler_bad_batch_size(bs, error):
    with pytest.raises(error, match="batch_size must be a positive int"):
        BatchSampler(range(3), bs, False)


@given(
    pieces=st.lists(st.integers(0, 12), min_size=0, max_size=6),
    bs=st.integers(1, 7),
    drop_last=st.booleans(),
)
def test_rebatch_across_pieces_equals_chunking_the_whole(pieces, bs, drop_last):
    from tinytorch.data.sampling.batching import rebatch

    arrays, start = [], 0
    for size in pieces:
        arrays.append(np.arange(start, start + size, dtype=np.int64))
        start += size
    whole = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)
    expected = [b.tolist() for b in chunk(whole, bs, drop_last)]
    assert [b.tolist() for b in rebatch(iter(arrays), bs, drop_last)] == expected
