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


def test_plan_batches_of_a_custom_batch_sampler_calls_set_epoch():
    class Custom:
        epoch = None

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __iter__(self):
            yield [self.epoch, 0]

    custom = Custom()
    assert [b.tolist() for b in plan_batches(custom, 4)] == [[4, 0]]


def test_plan_samples():
    assert [b.tolist() for b in plan_samples(SequentialSampler(range(3)), 0)] == [[0], [1], [2]]
    assert [b.tolist() for b in plan_samples(iter([5, 6]), 0)] == [[5], [6]]


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
