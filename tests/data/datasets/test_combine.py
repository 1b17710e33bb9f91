import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.data.collate.default import default_collate
from tinytorch.data.datasets.base import Dataset, read_batch
from tinytorch.data.datasets.combine import ConcatDataset, Subset, random_split
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.datasets.tensor import TensorDataset


class Plain(Dataset):
    """A dataset without __getitems__: samples are (value, tag) tuples."""

    def __init__(self, values, tag):
        self.values, self.tag = list(values), tag

    def __len__(self):
        return len(self.values)

    def __getitem__(self, i):
        return np.int64(self.values[i]), self.tag


def tensor(start, n):
    return TensorDataset(np.arange(start, start + n).reshape(n, 1), np.arange(start, start + n))


def test_subset_maps_indices():
    ds = tensor(0, 10)
    sub = Subset(ds, [9, 2, -1])
    assert len(sub) == 3
    assert sub[1][1] == 2
    assert sub[2][1] == 9
    batch = sub.__getitems__([0, 1])
    assert isinstance(batch, StackedSamples)
    np.testing.assert_array_equal(batch.collated()[1], [9, 2])


def test_subset_checks_indices_against_parent():
    with pytest.raises(IndexError, match="Subset's parent dataset of length 10"):
        Subset(tensor(0, 10), [10])
    assert len(Subset(tensor(0, 10), [])) == 0


def test_concat_locates_samples():
    c = ConcatDataset([tensor(0, 3), tensor(100, 2), tensor(200, 4)])
    assert len(c) == 9
    assert [int(c[i][1]) for i in range(9)] == [0, 1, 2, 100, 101, 200, 201, 202, 203]
    assert int(c[-1][1]) == 203
    with pytest.raises(IndexError):
        c[9]


@given(st.lists(st.integers(0, 8), min_size=1, max_size=30))
def test_concat_getitems_equals_per_sample_reads(indices):
    c = ConcatDataset([tensor(0, 3), tensor(100, 2), tensor(200, 4)])
    fast = default_collate(c.__getitems__(indices))
    slow = default_collate([c[i] for i in indices])
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a, b)


def test_concat_of_plain_datasets_returns_samples_in_order():
    c = ConcatDataset([Plain([1, 2], "a"), Plain([3], "b")])
    assert c.__getitems__([2, 0]) == [(3, "b"), (1, "a")]
    assert read_batch(c, [1]) == [(2, "a")]


def test_concat_of_mismatched_stacked_layouts_falls_back_to_samples():
    wide = TensorDataset(np.zeros((2, 2)), np.zeros(2))
    narrow = TensorDataset(np.zeros((2, 3)), np.zeros(2))
    out = ConcatDataset([wide, narrow]).__getitems__([0, 2])
    assert isinstance(out, list)
    assert out[1][0].shape == (3,)


def test_concat_refuses_iterable_datasets_and_empty_lists():
    from tinytorch.data.datasets.base import IterableDataset

    class S(IterableDataset):
        def __iter__(self):
            yield 1

    with pytest.raises(TypeError, match="IterableDataset"):
        ConcatDataset([tensor(0, 2), S()])
    with pytest.raises(ValueError, match="at least one dataset"):
        ConcatDataset([])


def test_random_split_lengths_partition_the_dataset():
    parts = random_split(tensor(0, 10), [3, 7], seed=1)
    seen = np.concatenate([p.indices for p in parts])
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(seen.tolist()) == list(range(10))


def test_random_split_fractions_and_remainder_like_torch():
    assert [len(p) for p in random_split(tensor(0, 10), [0.33, 0.33, 0.34])] == [4, 3, 3]


def test_random_split_is_seeded():
    a = random_split(tensor(0, 20), [10, 10], seed=5)[0].indices
    b = random_split(tensor(0, 20), [10, 10], seed=5)[0].indices
    c = random_split(tensor(0, 20), [10, 10], seed=6)[0].indices
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("lengths", [[3, 3], [0.5, 0.6], [11, -1]])
def test_random_split_bad_lengths(lengths):
    with pytest.raises(ValueError, match="random_split"):
        random_split(tensor(0, 10), lengths)


def test_random_split_sum_message_names_the_length():
    with pytest.raises(ValueError, match="must sum to the dataset length 10, got \\[3, 3\\]"):
        random_split(tensor(0, 10), [3, 3])


def test_subset_takes_slices_and_lists_and_reads_the_parent_once():
    ds = TensorDataset(np.arange(10) * 10)
    sub = Subset(ds, [5, 3, 1, 0])
    assert sub[1:3][0].tolist() == [30, 10]
    assert sub[[0, 2]][0].tolist() == [50, 10]
    assert sub[np.array([3])][0].tolist() == [0]
    assert sub[::-1][0].tolist() == [0, 10, 30, 50]
    inner = Subset(sub, [3, 2, 1])  # a Subset of a Subset can be sliced
    assert inner[:][0].tolist() == [0, 10, 30]
    assert inner[0:2][0].tolist() == [0, 10]
    with pytest.raises(IndexError, match="index 4 is out of range for Subset of length 4"):
        sub[[4]]


def test_subset_passes_a_list_to_its_parent():
    seen = []

    class Recorder(Plain):
        def __getitem__(self, i):
            seen.append(i)
            return i

    Subset(Recorder(range(5), "r"), [4, 2, 0])[1:]
    assert seen == [[2, 0]]
    assert type(seen[0][0]) is int


def test_concat_index_errors_carry_torchs_classes():
    c = ConcatDataset([tensor(0, 3), tensor(100, 2)])
    with pytest.raises(ValueError, match="out of range"):  # torch: ValueError for too negative an index
        c[-6]
    with pytest.raises(IndexError):
        c[5]
    with pytest.raises(TypeError):  # torch: TypeError for a slice
        c[1:2]


def test_random_split_takes_a_torch_generator_as_its_seed():
    torch = pytest.importorskip("torch")
    ds = tensor(0, 20)
    by_seed = random_split(ds, [5, 15], seed=7)
    by_keyword = random_split(ds, [5, 15], generator=torch.Generator().manual_seed(7))
    by_position = random_split(ds, [5, 15], torch.Generator().manual_seed(7))  # torch's signature
    for a, b, c in zip(by_seed, by_keyword, by_position, strict=True):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.indices, c.indices)
    used = torch.Generator().manual_seed(7)
    torch.rand(3, generator=used)  # its state moved on: only its seed counts
    np.testing.assert_array_equal(random_split(ds, [5, 15], generator=used)[0].indices, by_seed[0].indices)
    with pytest.raises(ValueError, match="both"):
        random_split(ds, [5, 15], seed=1, generator=torch.Generator())
    with pytest.raises(TypeError, match="torch.Generator"):
        random_split(ds, [5, 15], generator=np.random.default_rng(0))


def test_random_split_default_is_seed_zero():
    np.testing.assert_array_equal(
        random_split(tensor(0, 9), [4, 5])[0].indices, random_split(tensor(0, 9), [4, 5], seed=0)[0].indices
    )


def test_random_split_takes_numpy_numbers_and_truncates_nothing():
    ds = tensor(0, 10)
    assert [len(p) for p in random_split(ds, [np.float32(0.5), np.float64(0.5)])] == [5, 5]
    assert [len(p) for p in random_split(ds, [np.int64(3), np.int32(7)])] == [3, 7]
    assert [len(p) for p in random_split(ds, [3.0, 7])] == [3, 7]
    with pytest.raises(ValueError, match="whole sizes"):
        random_split(ds, [2.5, 7.5])
    with pytest.raises(TypeError, match=r"lengths\[0\]"):
        random_split(ds, [True, 9])
    with pytest.raises(TypeError, match=r"lengths\[1\]"):
        random_split(ds, [5, "5"])


def test_random_split_fraction_rule_and_empty_split_warning_as_in_torch():
    # torch's rule: any lengths summing to 1 are fractions, whatever their type
    with pytest.warns(UserWarning, match=r"split 1 of \[1, 0\] is empty"):
        assert [len(p) for p in random_split(tensor(0, 5), [1, 0])] == [5, 0]
    with pytest.warns(UserWarning, match="split 2 .* is empty"):
        assert [len(p) for p in random_split(tensor(0, 3), [0.5, 0.3, 0.2])] == [2, 1, 0]


@pytest.mark.parametrize("transform", [None, np.ascontiguousarray], ids=["stacked reads", "per-sample reads"])
def test_cifar_and_tensor_datasets_concatenate_into_batches(tmp_path, transform):
    """Issue 13: CIFAR10Dataset labels are Python ints, TensorDataset's numpy int32/int64 scalars."""
    from support.cifar_files import cifar10_files, make_tar, md5
    from tinytorch import DataLoader
    from tinytorch.data.datasets.cifar import CIFAR10Dataset

    archive = make_tar(cifar10_files(per_batch=4), folder="cifar-10-batches-py")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(archive)
    cifar = CIFAR10Dataset(tmp_path, md5=md5(archive), progress=False, transform=transform)
    extra = TensorDataset(np.zeros((6, 3, 32, 32), np.uint8), np.arange(6, dtype=np.int32))
    both = ConcatDataset([cifar, extra])
    labels = []
    for images, y in DataLoader(both, batch_size=7, shuffle=True, seed=0):
        assert images.dtype == np.uint8
        assert y.dtype == np.int64
        labels += y.tolist()
    assert sorted(labels) == sorted(cifar.targets.tolist() + list(range(6)))


def test_random_split_takes_float32_fractions_as_torch_does():
    # np.float32(0.4) + np.float32(0.6) is exactly 1 in float32, and torch's random_split
    # (torch 2.13) splits 5 samples [2, 3]; widened to Python floats the sum is 1.00000003
    # and the split was refused as "not whole sizes"
    parts = random_split(tensor(0, 5), [np.float32(0.4), np.float32(0.6)])
    assert [len(p) for p in parts] == [2, 3]
    parts = random_split(tensor(0, 10), np.array([0.4, 0.6], dtype=np.float32))
    assert [len(p) for p in parts] == [4, 6]


def test_concat_getitems_of_no_indices_is_an_empty_batch():
    # a batch sampler may yield an empty batch: this raised "need at least one array to concatenate"
    concat = ConcatDataset([tensor(0, 3), tensor(10, 2)])
    batch = concat.__getitems__([])
    assert len(batch) == 0
    images, labels = default_collate(batch)
    assert images.shape == (0, 1)
    assert labels.shape == (0,)
