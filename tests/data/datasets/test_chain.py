import pytest

from tinytorch.data.datasets.base import Dataset, IterableDataset
from tinytorch.data.datasets.chain import ChainDataset


class Count(IterableDataset):
    def __init__(self, start, n, sized=True):
        self.start, self.n, self.sized = start, n, sized
        self.epochs = []

    def __iter__(self):
        return iter(range(self.start, self.start + self.n))

    def __len__(self):
        if not self.sized:
            return super().__len__()
        return self.n

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


class Map(Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, i):
        return i


def test_chains_in_order_and_repeats_every_pass():
    chain = ChainDataset([Count(0, 2), Count(10, 3)])
    assert list(chain) == [0, 1, 10, 11, 12]
    assert list(chain) == [0, 1, 10, 11, 12]
    assert len(chain) == 5


def test_a_generator_of_datasets_is_read_once_so_every_epoch_has_all_parts():
    chain = ChainDataset(Count(i, 1) for i in range(3))
    assert list(chain) == [0, 1, 2]
    assert list(chain) == [0, 1, 2]


def test_len_needs_every_part_to_have_one():
    with pytest.raises(TypeError, match="without a length"):
        len(ChainDataset([Count(0, 2), Count(0, 2, sized=False)]))


def test_map_style_parts_are_refused_at_construction():
    with pytest.raises(TypeError, match="dataset 1 \\(Map\\) is map-style"):
        ChainDataset([Count(0, 1), Map()])


def test_set_epoch_reaches_every_part():
    a, b = Count(0, 1), Count(0, 1)
    (a + b).set_epoch(3)
    assert a.epochs == b.epochs == [3]


def test_chains_chain():
    chain = Count(0, 1) + Count(1, 1) + Count(2, 1)
    assert list(chain) == [0, 1, 2]
    with pytest.raises(TypeError, match="cannot be indexed"):
        chain[0]
