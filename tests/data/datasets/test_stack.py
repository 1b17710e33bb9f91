import numpy as np
import pytest

from tinytorch.data.collate.default import default_collate
from tinytorch.data.datasets.base import Dataset
from tinytorch.data.datasets.combine import ConcatDataset, Subset
from tinytorch.data.datasets.stack import StackDataset
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.datasets.tensor import TensorDataset


class Plain(Dataset):
    """No __getitems__: read one sample at a time."""

    def __init__(self, n, offset=0):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return f"s{i + self.offset}"


def tensors(n=6):
    return TensorDataset(np.arange(n * 2).reshape(n, 2), np.arange(n))


def test_tuple_form_reads_each_dataset_at_the_same_index():
    ds = StackDataset(tensors(), Plain(6))
    assert len(ds) == 6
    (x, y), name = ds[4]
    assert x.tolist() == [8, 9]
    assert y == 4
    assert name == "s4"


def test_dict_form():
    ds = StackDataset(pair=tensors(), name=Plain(6))
    sample = ds[1]
    assert list(sample) == ["pair", "name"]
    assert sample["name"] == "s1"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "at least one dataset"),
        ((tensors(),), {"b": tensors()}, "not both"),
        ((tensors(6), Plain(5)), {}, "same length, got dataset 0: 6, dataset 1: 5"),
        ((), {"a": tensors(6), "b": Plain(4)}, "dataset 'a': 6, dataset 'b': 4"),
    ],
)
def test_bad_arguments_are_value_errors_as_in_torch(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        StackDataset(*args, **kwargs)


def test_stacked_parts_give_a_stacked_batch_that_collates_like_the_samples():
    ds = StackDataset(tensors(), TensorDataset(np.arange(6) * 10))
    batch = ds.__getitems__([5, 0, 3])
    assert isinstance(batch, StackedSamples)  # vectorized: no per-sample work
    fast = default_collate(batch)
    slow = default_collate([ds[i] for i in [5, 0, 3]])
    assert [[c.tolist() for c in part] for part in fast] == [[c.tolist() for c in part] for part in slow]
    (x, y), (z,) = batch[1]  # to a custom collate_fn, a sequence of ordinary samples
    assert (x.tolist(), int(y), int(z)) == ([0, 1], 0, 0)


def test_dict_form_stays_vectorized_and_mixed_parts_give_samples():
    ds = StackDataset(a=tensors(), b=TensorDataset(np.arange(6) * 10))
    batch = ds.__getitems__([2, 1])
    assert isinstance(batch, StackedSamples)
    out = default_collate(batch)
    assert out["b"][0].tolist() == [20, 10]
    assert out["a"][1].tolist() == [2, 1]
    mixed = StackDataset(tensors(), Plain(6)).__getitems__([2, 1])
    assert isinstance(mixed, list)
    assert mixed[0][1] == "s2"
    assert default_collate(mixed)[1] == ["s2", "s1"]


def test_a_part_returning_the_wrong_number_of_samples_is_named():
    class Short(Plain):
        def __getitems__(self, indices):
            return ["x"]

    with pytest.raises(ValueError, match="dataset 1 returned 1 samples from __getitems__ for 2 indices"):
        StackDataset(Plain(3), Short(3)).__getitems__([0, 1])


def test_indices_are_passed_on_as_given():
    ds = StackDataset(tensors(), tensors())
    (x, y), _ = ds[1:3]  # TensorDataset takes slices, so the stack does
    assert x.tolist() == [[2, 3], [4, 5]]
    assert y.tolist() == [1, 2]


def test_stacks_nest_inside_concat_and_subset_reads():
    a = StackDataset(tensors(3), TensorDataset(np.arange(3)))
    b = StackDataset(
        TensorDataset(np.arange(6, 12).reshape(3, 2), np.arange(3, 6)), TensorDataset(np.arange(3, 6))
    )
    both = ConcatDataset([a, b])
    batch = both.__getitems__([4, 0, 5])
    assert isinstance(batch, StackedSamples)
    (x, y), (z,) = default_collate(batch)
    assert y.tolist() == [4, 0, 5]
    assert z.tolist() == [4, 0, 5]
    assert x.tolist() == [[8, 9], [0, 1], [10, 11]]
    sub = Subset(both, [5, 1])
    assert default_collate(sub.__getitems__([0, 1]))[1][0].tolist() == [5, 1]
