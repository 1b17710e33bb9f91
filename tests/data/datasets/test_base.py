import numpy as np
import pytest

from tinytorch.data.datasets.base import Dataset, IterableDataset, has_len, map_samples, read_batch
from tinytorch.data.datasets.combine import ConcatDataset
from tinytorch.data.seeding import BatchContext, batch_context, get_batch_context


class Squares(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return i * i


class Stream(IterableDataset):
    def __iter__(self):
        yield from range(3)


def test_dataset_is_abstract():
    with pytest.raises(TypeError):
        Dataset()


def test_subclass_missing_len_cannot_be_instantiated():
    class NoLen(Dataset):
        def __getitem__(self, i):
            return i

    with pytest.raises(TypeError):
        NoLen()


def test_iterable_dataset_refuses_indexing_and_len_with_explanations():
    s = Stream()
    assert list(s) == [0, 1, 2]
    with pytest.raises(TypeError, match="cannot be indexed"):
        s[0]
    with pytest.raises(TypeError, match="define __len__"):
        len(s)
    assert not has_len(s)
    assert has_len(Squares())


def test_add_concatenates():
    both = Squares() + Squares()
    assert isinstance(both, ConcatDataset)
    assert len(both) == 10
    assert both[7] == 4


def test_read_batch_uses_getitems_when_present():
    class Batched(Squares):
        def __getitems__(self, indices):
            return ("batched", list(indices))

    assert read_batch(Batched(), [1, 2]) == ("batched", [1, 2])
    assert read_batch(Squares(), np.array([1, 3])) == [1, 9]


def test_map_samples_sets_each_samples_position():
    def position(_):
        return get_batch_context().position

    assert map_samples(lambda x: x, [1, 2]) == [1, 2]
    with batch_context(BatchContext(0, 0, 5)):
        assert map_samples(position, "abc") == [0, 1, 2]
        assert get_batch_context().position is None
