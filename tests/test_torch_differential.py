"""Differential tests: for the same index order, our batches equal torch.utils.data's.

torch is a test dependency only (``pip install torch==2.13.0``, a CPU build).
"""

from collections import namedtuple

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tud = pytest.importorskip("torch.utils.data")

import tinytorch as tt  # noqa: E402

Pair = namedtuple("Pair", ["a", "b"])


class Samples(tt.Dataset, tud.Dataset):
    """Nested samples; usable by both loaders."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {
            "image": np.full((2, 3), i, dtype=np.float32),
            "label": i,
            "weight": float(i) / 2,
            "flag": bool(i % 2),
            "name": f"s{i}",
            "pair": Pair(np.int64(i), (i, np.float32(i))),
        }


def to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.numpy()
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(to_numpy(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(to_numpy(v) for v in x)
    return x


def assert_same(ours, theirs):
    theirs = to_numpy(theirs)
    if isinstance(theirs, dict):
        assert isinstance(ours, dict)
        assert ours.keys() == theirs.keys()
        for k in theirs:
            assert_same(ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs), (type(ours), type(theirs))
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs, strict=True):
            assert_same(o, t)
    elif isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray)
        assert ours.shape == theirs.shape
        assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
        np.testing.assert_array_equal(ours, theirs)
    else:
        assert ours == theirs


def compare(ours_loader, torch_loader):
    assert len(ours_loader) == len(torch_loader)
    ours, theirs = list(ours_loader), list(torch_loader)
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs, strict=True):
        assert_same(o, t)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sequential_nested_samples(batch_size, drop_last):
    ds = Samples(20)
    compare(
        tt.DataLoader(ds, batch_size=batch_size, drop_last=drop_last),
        tud.DataLoader(ds, batch_size=batch_size, drop_last=drop_last),
    )


@pytest.mark.parametrize("drop_last", [False, True])
def test_custom_sampler(drop_last):
    order = list(np.random.default_rng(0).permutation(23))
    ds = Samples(23)
    compare(
        tt.DataLoader(ds, batch_size=5, sampler=order, drop_last=drop_last),
        tud.DataLoader(ds, batch_size=5, sampler=order, drop_last=drop_last),
    )


def test_same_shuffled_order_through_our_sampler():
    """Our RandomSampler's planned order, given to torch as a plain list, gives the same batches."""
    ds = Samples(30)
    sampler = tt.RandomSampler(ds, seed=4)
    ours = tt.DataLoader(ds, batch_size=4, sampler=sampler)
    compare(ours, tud.DataLoader(ds, batch_size=4, sampler=sampler.indices(0).tolist()))


def test_custom_batch_sampler():
    batches = [[3, 1], [0], [2, 4, 5, 6]]
    ds = Samples(7)
    compare(tt.DataLoader(ds, batch_sampler=batches), tud.DataLoader(ds, batch_sampler=batches))


def test_batch_size_none():
    ds = Samples(4)
    ours = list(tt.DataLoader(ds, batch_size=None))
    theirs = list(tud.DataLoader(ds, batch_size=None))
    for o, t in zip(ours, theirs, strict=True):
        # torch converts numpy arrays to tensors; we keep numpy (our batch format).
        np.testing.assert_array_equal(o["image"], t["image"].numpy())
        assert o["label"] == t["label"]
        assert o["name"] == t["name"]
    assert len(tt.DataLoader(ds, batch_size=None)) == len(tud.DataLoader(ds, batch_size=None))


@pytest.mark.parametrize("batch_size", [1, 4, 10])
def test_tensor_dataset_fast_path_matches(batch_size):
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    y = np.arange(20, dtype=np.int64)
    compare(
        tt.DataLoader(tt.TensorDataset(x, y), batch_size=batch_size),
        tud.DataLoader(tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=batch_size),
    )


def test_iterable_dataset_batches_and_len():
    class Stream(tt.IterableDataset, tud.IterableDataset):
        def __iter__(self):
            return iter(range(10))

        def __len__(self):
            return 10

    for drop_last in (False, True):
        compare(
            tt.DataLoader(Stream(), batch_size=4, drop_last=drop_last),
            tud.DataLoader(Stream(), batch_size=4, drop_last=drop_last),
        )


def test_subset_and_concat_match():
    x = np.arange(40, dtype=np.int64).reshape(20, 2)
    ours = tt.ConcatDataset([tt.Subset(tt.TensorDataset(x), [5, 1, 7]), tt.TensorDataset(x[:4])])
    theirs = tud.ConcatDataset(
        [
            tud.Subset(tud.TensorDataset(torch.from_numpy(x)), [5, 1, 7]),
            tud.TensorDataset(torch.from_numpy(x[:4])),
        ]
    )
    order = [6, 0, 3, 2, 1, 5, 4]
    compare(
        tt.DataLoader(ours, batch_size=3, sampler=order),
        tud.DataLoader(theirs, batch_size=3, sampler=order),
    )
