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


def test_dataset_without_getitem_is_created_and_fails_when_read_as_in_torch():
    class Empty(Dataset):
        pass

    ds = Empty()  # torch: no error at construction
    with pytest.raises(NotImplementedError, match="Empty does not define __getitem__"):
        ds[0]
    with pytest.raises(TypeError, match="has no len"):
        len(ds)
    assert not has_len(ds)
    Dataset()  # the base class too


def test_subclass_missing_len_is_created_and_len_is_a_type_error():
    class NoLen(Dataset):
        def __getitem__(self, i):
            return i

    ds = NoLen()
    assert ds[3] == 3
    with pytest.raises(TypeError, match="must define __len__"):
        len(ds)


def test_iterable_dataset_without_iter_cannot_be_created_as_in_torch():
    class NoIter(IterableDataset):
        pass

    with pytest.raises(TypeError, match="abstract"):
        NoIter()


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


def test_adding_streams_chains_them():
    from tinytorch.data.datasets.chain import ChainDataset

    both = Stream() + Stream()
    assert isinstance(both, ChainDataset)
    assert list(both) == [0, 1, 2, 0, 1, 2]
    with pytest.raises(TypeError, match="map-style"):
        Stream() + Squares()
    with pytest.raises(TypeError, match="IterableDataset"):
        Squares() + Stream()


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
