from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.data.sampling.samplers import (
    RandomSampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)


def test_sequential():
    s = SequentialSampler(range(5))
    assert list(s) == [0, 1, 2, 3, 4]
    assert len(s) == 5


@given(n=st.integers(0, 200), seed=st.integers(0, 2**32), epoch=st.integers(0, 50))
def test_random_sampler_is_a_permutation_and_a_pure_function(n, seed, epoch):
    s = RandomSampler(range(n), seed=seed)
    order = s.indices(epoch)
    assert sorted(order.tolist()) == list(range(n))
    np.testing.assert_array_equal(order, RandomSampler(range(n), seed=seed).indices(epoch))


def test_random_sampler_epochs_differ_and_set_epoch_selects():
    s = RandomSampler(range(50), seed=3)
    first = list(s)
    s.set_epoch(1)
    second = list(s)
    assert first != second
    s.set_epoch(0)
    assert list(s) == first


def test_random_sampler_golden_values_are_pinned():
    # Literal values: a change to the random stream of shuffling must be deliberate.
    assert RandomSampler(range(10), seed=0).indices(0).tolist() == [7, 3, 0, 5, 1, 6, 9, 2, 8, 4]
    assert RandomSampler(range(10), seed=0).indices(1).tolist() == [5, 6, 7, 4, 0, 2, 3, 1, 9, 8]


def test_random_sampler_num_samples_without_replacement_concatenates_permutations():
    order = RandomSampler(range(4), num_samples=10, seed=0).indices(0)
    assert len(order) == 10
    assert sorted(order[:4].tolist()) == [0, 1, 2, 3]
    assert sorted(order[4:8].tolist()) == [0, 1, 2, 3]
    assert len(set(order[8:].tolist())) == 2


def test_random_sampler_with_replacement_repeats():
    order = RandomSampler(range(5), replacement=True, num_samples=100, seed=0).indices(0)
    assert len(order) == 100
    assert set(order.tolist()) <= set(range(5))
    assert len(set(order.tolist())) == 5


def test_random_sampler_of_empty_dataset_is_empty():
    assert list(RandomSampler([], seed=0)) == []


def test_random_sampler_records_a_drawn_seed():
    s = RandomSampler(range(5))
    assert isinstance(s.seed, int)
    assert list(RandomSampler(range(5), seed=s.seed)) == list(s)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_samples": 0}, ValueError, "num_samples must be a positive int"),
        ({"num_samples": 2.0}, TypeError, "num_samples must be a positive int"),
        ({"replacement": 1}, TypeError, "replacement must be True or False"),
        ({"generator": object()}, TypeError, "takes a torch.Generator .* got object. Pass seed=<int>"),
        ({"generator": np.random.default_rng(0)}, TypeError, "got Generator. Pass seed=<int>"),
        ({"seed": -1}, ValueError, "seed must be a non-negative int"),
        ({"seed": 1.0}, TypeError, "seed must be a non-negative int"),
    ],
)
def test_random_sampler_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        RandomSampler(range(3), **kwargs)


def test_subset_random_sampler_permutes_the_subset():
    s = SubsetRandomSampler([5, 7, 9, 11], seed=2)
    assert sorted(s) == [5, 7, 9, 11]
    assert len(s) == 4
    with pytest.raises(TypeError, match="integers"):
        SubsetRandomSampler([0.5])


def test_weighted_sampler_follows_weights():
    s = WeightedRandomSampler([0.0, 1.0, 3.0], num_samples=40_000, seed=0)
    counts = Counter(s.indices(0).tolist())
    assert counts[0] == 0
    # Binomial(40000, 0.75): sd ~ 87; 5 sd tolerance.
    assert abs(counts[2] - 30_000) < 450


def test_weighted_sampler_without_replacement_is_distinct():
    order = WeightedRandomSampler([1, 1, 1, 1, 0], num_samples=4, replacement=False, seed=0).indices(0)
    assert sorted(order.tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("weights", "kwargs", "match"),
    [
        ([], {}, "at least one weight"),
        ([1, -1], {}, "non-negative"),
        ([1, float("nan")], {}, "finite"),
        ([0, 0], {}, "all be zero"),
        ([1, 0], {"replacement": False, "num_samples": 2}, "cannot draw 2 samples from 1 non-zero"),
    ],
)
def test_weighted_sampler_bad_arguments(weights, kwargs, match):
    kwargs = {"num_samples": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        WeightedRandomSampler(weights, **kwargs)


def test_samplers_leave_global_random_state_alone():
    import random

    np.random.seed(0)
    random.seed(0)
    expected = (np.random.random(), random.random())
    np.random.seed(0)
    random.seed(0)
    list(RandomSampler(range(100), seed=1))
    list(WeightedRandomSampler([1, 2], 10, seed=1))
    assert (np.random.random(), random.random()) == expected


def test_plans_use_int32_when_indices_fit_and_keep_the_order():
    sampler = RandomSampler(range(1000), seed=7)
    order = sampler.indices(3)
    assert order.dtype == np.int32
    from tinytorch.data.seeding import Stream, derive_rng

    np.testing.assert_array_equal(order, derive_rng(7, Stream.SHUFFLE, 3).permutation(1000))
    assert SequentialSampler(range(5)).indices(0).dtype == np.int32


def test_numpy_scalar_arguments_are_accepted_and_kept_exact():
    s = RandomSampler(range(10), num_samples=np.int64(25), seed=np.uint64(2**63 + 5))
    assert s.seed == 2**63 + 5
    assert type(s.seed) is int
    assert s.num_samples == 25
    assert type(s.num_samples) is int
    assert list(s) == list(RandomSampler(range(10), num_samples=25, seed=2**63 + 5))
    w = WeightedRandomSampler(
        np.array([1.0, 2.0]), num_samples=np.int32(7), replacement=np.bool_(True), seed=1
    )
    assert w.num_samples == 7
    assert len(w.indices(0)) == 7


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: RandomSampler(range(30), **kw),
        lambda **kw: RandomSampler(range(30), replacement=True, num_samples=40, **kw),
        lambda **kw: SubsetRandomSampler([3, 5, 8, 13, 21], **kw),
        lambda **kw: WeightedRandomSampler([1.0, 2.0, 3.0], 20, **kw),
    ],
)
def test_a_torch_generator_means_its_seed(make):
    """generator=torch.Generator().manual_seed(s) is seed=s, whatever the generator drew before."""
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(1234)
    torch.rand(5, generator=generator)  # its current state is not what counts
    sampler = make(generator=generator)
    assert sampler.seed == 1234
    for epoch in (0, 3):
        np.testing.assert_array_equal(sampler.indices(epoch), make(seed=1234).indices(epoch))
    with pytest.raises(ValueError, match="both seed=5 and generator="):
        make(generator=generator, seed=5)


def test_positional_generator_keeps_torchs_signature():
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(7)
    assert RandomSampler(range(5), False, None, generator).seed == 7
    assert SubsetRandomSampler([1, 2], generator).seed == 7
    assert WeightedRandomSampler([1, 1], 2, True, generator).seed == 7


def test_index_chunks_start_anywhere():
    sampler = RandomSampler(range(50), seed=3)
    for start in (0, 1, 49, 50, 70):
        np.testing.assert_array_equal(
            np.concatenate(list(sampler.index_chunks(2, start=start))), sampler.indices(2)[start:]
        )
    with pytest.raises(ValueError, match="start must be a non-negative int"):
        list(sampler.index_chunks(0, start=-1))
