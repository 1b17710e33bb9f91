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


class TupleSamples:
    def __len__(self):
        return 3

    def __getitem__(self, i):
        Pair = namedtuple("Pair", "a b")
        return (np.float32(i), i, (i, [i, (i,)]), {"k": (i,)}, Pair(i, (i,)))


def _shape(x):
    """The container types of ``x``, leaves as one marker (torch makes tensors of ours' arrays)."""
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_shape(v) for v in x])
    if isinstance(x, dict):
        return ("dict", {k: _shape(v) for k, v in x.items()})
    return "leaf"


def test_batch_size_none_gives_torchs_containers():
    """A plain tuple sample came through as a tuple; torch's default_convert gives a list."""
    ours = list(tt.DataLoader(TupleSamples(), batch_size=None))
    theirs = list(tud.DataLoader(TupleSamples(), batch_size=None))
    assert [_shape(o) for o in ours] == [_shape(t) for t in theirs]
    assert type(ours[0]) is list


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


# --- collation: numbers, arrays, tensors, sequences (issue 13 items 3 and 5, issue 20 item 3) ---

tud_collate = tud.default_collate


def same_values(ours, theirs):
    """``ours`` (numpy or tensors) equals torch's batch in values and dtype."""
    if isinstance(theirs, torch.Tensor):
        if isinstance(ours, torch.Tensor):
            assert ours.dtype == theirs.dtype
            assert ours.shape == theirs.shape
            assert torch.equal(ours, theirs)
        else:
            assert_same(ours, theirs)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs)
        assert ours.keys() == theirs.keys()
        for k in theirs:
            same_values(ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs), (type(ours), type(theirs))
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs, strict=True):
            same_values(o, t)
    else:
        assert ours == theirs


MIXED_NUMBERS = [
    [1, np.int64(2)],
    [np.int64(2), 1],
    [1.0, np.float64(2.5)],
    [np.float64(2.5), 1.0],
    [True, np.bool_(False)],
    [np.bool_(False), True],
    [True, 1],
    [1, True],
    [np.int32(1), np.int64(2)],
    [np.float32(1), np.float64(2)],
    [np.float64(2.5), 1],
    [np.uint8(3), np.uint8(4)],
    [np.float16(1), np.float16(2)],
]


@pytest.mark.parametrize("samples", MIXED_NUMBERS, ids=repr)
def test_mixed_numbers_collate_to_torchs_values_and_dtype(samples):
    same_values(tt.default_collate(samples), tud_collate(samples))


@pytest.mark.parametrize(
    ("samples", "ours", "torchs"),
    [
        ([1, 2.5], np.float64, torch.float32),  # torch: float32 when the first sample is an int
        ([np.float32(1), 2.0], np.float64, torch.float32),  # torch: the first sample's dtype
        ([np.int64(1), 2.5], np.float64, torch.float32),
    ],
)
def test_documented_difference_mixed_numbers_promote_by_numpy_not_by_the_first_sample(samples, ours, torchs):
    assert tt.default_collate(samples).dtype == ours
    assert tud_collate(samples).dtype == torchs


@pytest.mark.parametrize(
    "dtypes", [("int32", "int64"), ("float32", "float64"), ("int8", "int16"), ("complex64", "complex128")]
)
def test_arrays_of_one_category_promote_as_torch_stack_does(dtypes):
    samples = [np.arange(3).astype(d) for d in dtypes]
    same_values(tt.default_collate(samples), tud_collate(samples))


def test_documented_difference_arrays_of_different_categories_are_refused():
    samples = [np.zeros(2, np.uint8), np.zeros(2, np.float32)]
    assert tud_collate(samples).dtype == torch.float32  # torch promotes
    with pytest.raises(tt.CollateError, match="different dtypes: uint8 at sample 0; float32 at sample 1"):
        tt.default_collate(samples)


def test_object_arrays_are_refused_as_by_torch():
    samples = [np.array([None, 1], dtype=object)] * 2
    with pytest.raises(TypeError):
        tud_collate(samples)
    with pytest.raises(TypeError, match="dtype object"):
        tt.default_collate(samples)


def test_documented_difference_string_arrays_are_stacked_not_refused():
    samples = [np.array(["ab", "c"]), np.array(["xyz", "w"])]
    with pytest.raises(TypeError, match="found <U"):
        tud_collate(samples)
    assert tt.default_collate(samples).dtype == np.dtype("<U3")  # numpy batches can hold strings


def test_a_numpy_array_as_the_batch():
    strings = np.array(["a", "b", "c"])
    assert list(tud_collate(strings)) == tt.default_collate(strings)
    numbers = np.arange(3)
    same_values(tt.default_collate(numbers), tud_collate(numbers))


@pytest.mark.parametrize(
    "samples",
    [
        [range(3), range(1, 4)],
        [(1, 2.5), (3, 4.5)],
        [[1, 2], [3, 4]],
        [Pair(1, 2.0), Pair(3, 4.0)],
        [{"a": 1, "b": (2, 3)}, {"a": 4, "b": (5, 6)}],
        ["x", "y"],
        [b"x", b"y"],
    ],
    ids=["range", "tuple", "list", "namedtuple", "dict", "str", "bytes"],
)
def test_containers_collate_as_torch_does(samples):
    same_values(tt.default_collate(samples), tud_collate(samples))


def test_sequence_and_mapping_subclasses_keep_their_type_as_in_torch():
    class Row(list):
        pass

    class Meta(dict):
        pass

    for samples in ([Row([1, 2]), Row([3, 4])], [Meta(a=1), Meta(a=2)]):
        ours, theirs = tt.default_collate(samples), tud_collate(samples)
        assert type(ours) is type(theirs) is type(samples[0])


def test_collate_errors_are_catchable_as_torchs():
    for samples, error in [
        ([(1, 2), (1, 2, 3)], RuntimeError),  # unequal sequence lengths
        ([np.zeros(2), np.zeros(3)], RuntimeError),  # unequal shapes (torch.stack)
        ([torch.zeros(2), torch.zeros(3)], RuntimeError),
        ([], IndexError),  # an empty batch
        ([None, None], TypeError),
        ([1, "a"], TypeError),
    ]:
        with pytest.raises(error):
            tud_collate(samples)
        with pytest.raises(error):
            tt.default_collate(samples)


@pytest.mark.parametrize(
    "make",
    [
        lambda i: torch.full((2, 3), float(i)),
        lambda i: torch.full((2,), float(i), dtype=torch.bfloat16),
        lambda i: torch.tensor([i], dtype=torch.int32 if i % 2 else torch.int64),
        lambda i: (torch.arange(3) + i, {"m": torch.tensor(i % 2 == 0)}),
        lambda i: (torch.arange(12).reshape(3, 4) + i)[:, ::2].t(),  # non-contiguous samples
    ],
    ids=["float32", "bfloat16", "int32+int64", "nested", "views"],
)
def test_tensor_samples_collate_to_torchs_batch(make):
    samples = [make(i) for i in range(4)]
    same_values(tt.default_collate(samples), tud_collate(samples))


def test_tensors_that_require_grad_keep_their_graph_as_in_torch():
    leaf = torch.ones(2, requires_grad=True)
    for collate in (tt.default_collate, tud_collate):
        out = collate([leaf * 2, leaf * 3])
        assert out.requires_grad
        assert out.grad_fn is not None


def test_mixed_tensor_and_array_fields():
    samples = [torch.ones(2), np.ones(2)]
    with pytest.raises(TypeError):  # torch: "expected Tensor as element 1"
        tud_collate(samples)
    with pytest.raises(TypeError, match="Tensor at sample 0; ndarray at sample 1"):
        tt.default_collate(samples)


class TorchStyle(tt.Dataset, tud.Dataset):
    """A dataset written for torch: tensors out."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return torch.full(
            (3,), float(i), dtype=torch.bfloat16 if i % 2 else torch.float32
        ).float(), torch.tensor(i)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_workers": 2, "worker_type": "thread"},
        {"num_workers": 2, "multiprocessing_context": "fork"},
    ],
    ids=["0 workers", "threads", "processes"],
)
def test_loader_batches_of_a_torch_style_dataset_equal_torchs(options):
    ours = list(tt.DataLoader(TorchStyle(), batch_size=4, **options))
    theirs = list(tud.DataLoader(TorchStyle(), batch_size=4))
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs, strict=True):
        same_values(o, t)


# --- datasets (issue 20 items 1, 2 and 4) ---------------------------------------------------


def test_dataset_without_getitem_is_created_and_fails_on_read_as_in_torch():
    for base in (tt.Dataset, tud.Dataset):
        empty = type("Empty", (base,), {})()
        with pytest.raises(NotImplementedError):
            empty[0]
        with pytest.raises(TypeError):
            len(empty)


def test_iterable_dataset_without_iter_cannot_be_created_as_in_torch():
    for base in (tt.IterableDataset, tud.IterableDataset):
        with pytest.raises(TypeError):
            type("NoIter", (base,), {})()


def pair_datasets(n=6):
    x = np.arange(n * 2, dtype=np.int64).reshape(n, 2)
    y = np.arange(n, dtype=np.int64) * 10
    return tt.TensorDataset(x, y), tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))


def same_rows(ours, theirs):
    """Equal values and dtypes field by field (one row of ours is a numpy scalar where torch
    gives a 0-d tensor)."""
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs, strict=True):
        o, t = np.asarray(o), t.numpy()
        assert o.dtype == t.dtype
        np.testing.assert_array_equal(o, t)


@pytest.mark.parametrize(
    "index", [3, -1, slice(1, 4), slice(None, None, 2), [4, 0, 4], np.array([2, 1])], ids=repr
)
def test_tensor_dataset_indexing_forms_match_torch(index):
    ours, theirs = pair_datasets()
    same_rows(ours[index], theirs[index])


@pytest.mark.parametrize("index", [2, -1, slice(0, 3), slice(None), [2, 1]], ids=repr)
def test_subset_and_subset_of_subset_indexing_match_torch(index):
    ours, theirs = pair_datasets()
    ours_sub, theirs_sub = tt.Subset(ours, [5, 3, 1, 0]), tud.Subset(theirs, [5, 3, 1, 0])
    same_rows(ours_sub[index], theirs_sub[index])
    ours_inner, theirs_inner = tt.Subset(ours_sub, [3, 2, 1]), tud.Subset(theirs_sub, [3, 2, 1])
    same_rows(ours_inner[index], theirs_inner[index])


def test_index_errors_have_torchs_classes():
    ours, theirs = pair_datasets()
    cases = [
        (lambda d: d[6], IndexError),
        (lambda d: d[-7], IndexError),
        (lambda d: d[1.0], IndexError),  # torch's tensor indexing: IndexError
    ]
    for read, error in cases:
        with pytest.raises(error):
            read(theirs)
        with pytest.raises(error):
            read(ours)
    with pytest.raises(IndexError):
        tud.Subset(theirs, [1])[1]
    with pytest.raises(IndexError):
        tt.Subset(ours, [1])[1]
    for concat in (tt.ConcatDataset([ours, ours]), tud.ConcatDataset([theirs, theirs])):
        with pytest.raises(ValueError, match="exceed|out of range"):  # torch: ValueError for too negative
            concat[-13]
        with pytest.raises(IndexError):
            concat[12]
        with pytest.raises(TypeError):
            concat[0:2]


def test_stack_dataset_matches_torch():
    (a, ta), (b, tb) = pair_datasets(), pair_datasets()
    for ours, theirs in [
        (tt.StackDataset(a, b), tud.StackDataset(ta, tb)),
        (tt.StackDataset(x=a, y=b), tud.StackDataset(x=ta, y=tb)),
    ]:
        assert len(ours) == len(theirs)
        for o, t in [
            (ours[4], theirs[4]),
            *zip(ours.__getitems__([1, 5]), theirs.__getitems__([1, 5]), strict=True),
        ]:
            if isinstance(t, dict):
                assert list(o) == list(t)
                o, t = list(o.values()), list(t.values())
            for part_o, part_t in zip(o, t, strict=True):
                same_rows(part_o, part_t)
        compare(tt.DataLoader(ours, batch_size=4), tud.DataLoader(theirs, batch_size=4))


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((0,), {"b": 0}), ((0, 1), {})],
    ids=["none", "both forms", "lengths differ"],
)
def test_stack_dataset_refuses_what_torch_refuses(args, kwargs):
    (ours, theirs), (short, tshort) = pair_datasets(), pair_datasets(3)
    pick = {0: (ours, theirs), 1: (short, tshort)}
    for side in (0, 1):
        cls = (tt.StackDataset, tud.StackDataset)[side]
        with pytest.raises(ValueError, match="(?i)at least one|both|size mismatch|same length"):
            cls(*(pick[i][side] for i in args), **{k: pick[v][side] for k, v in kwargs.items()})


def test_chain_and_stream_addition_match_torch():
    def streams(base, start, n):
        return type(
            "Stream",
            (base,),
            {"__iter__": lambda self: iter(range(start, start + n)), "__len__": lambda self: n},
        )()

    ours = streams(tt.IterableDataset, 0, 2) + streams(tt.IterableDataset, 10, 3)
    theirs = streams(tud.IterableDataset, 0, 2) + streams(tud.IterableDataset, 10, 3)
    assert isinstance(ours, tt.ChainDataset)
    assert isinstance(theirs, tud.ChainDataset)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)
    assert list(tt.ChainDataset([streams(tt.IterableDataset, 0, 1)] * 2)) == list(
        tud.ChainDataset([streams(tud.IterableDataset, 0, 1)] * 2)
    )
    compare(tt.DataLoader(ours, batch_size=2), tud.DataLoader(theirs, batch_size=2))


def test_dataset_plus_dataset_stays_a_concat_as_in_torch():
    (ours, theirs) = pair_datasets()
    assert isinstance(ours + ours, tt.ConcatDataset)
    assert isinstance(theirs + theirs, tud.ConcatDataset)
    same_rows((ours + ours)[7], (theirs + theirs)[7])


@pytest.mark.parametrize(
    "lengths",
    [
        [0.33, 0.33, 0.34],
        [np.float32(0.5), np.float32(0.5)],
        [np.int64(3), np.int32(7)],
        [0.1, 0.2, 0.7],
        [3, 7],
        [1.0],
    ],
    ids=repr,
)
def test_random_split_sizes_match_torch(lengths):
    ours = tt.random_split(
        tt.TensorDataset(np.arange(10)), lengths, generator=torch.Generator().manual_seed(0)
    )
    theirs = tud.random_split(range(10), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(p) for p in ours] == [len(p) for p in theirs]


def test_random_split_fraction_rule_warning_and_errors_match_torch():
    for split, data in ((tt.random_split, tt.TensorDataset(np.arange(5))), (tud.random_split, range(5))):
        with pytest.warns(UserWarning, match="split.*(is 0|is empty)"):
            assert [len(p) for p in split(data, [1, 0])] == [5, 0]  # ints summing to 1 are fractions
        with pytest.raises(ValueError, match="(?i)sum"):
            split(data, [2, 2])
        with pytest.raises(ValueError, match="(?i)sum"):
            split(data, [0.5, 0.6])


def test_concat_of_datasets_with_int_and_numpy_labels_batches_as_in_torch():
    class Labels(tt.Dataset, tud.Dataset):
        def __init__(self, numpy_labels):
            self.numpy_labels = numpy_labels

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.full(2, i, np.uint8), (np.int64(i) if self.numpy_labels else i)

    ours = tt.ConcatDataset([Labels(False), Labels(True)])
    theirs = tud.ConcatDataset([Labels(False), Labels(True)])
    order = [0, 5, 2, 7, 1, 4, 3, 6]
    compare(
        tt.DataLoader(ours, batch_size=3, sampler=order), tud.DataLoader(theirs, batch_size=3, sampler=order)
    )


class KeyedWithoutLen:
    """A dataset read only through the indices a sampler gives (no __len__), as torch allows."""

    def __getitem__(self, i):
        return np.float32(i) * 2


@pytest.mark.parametrize("workers", [0, 2])
def test_a_dataset_without_len_is_read_through_the_users_sampler_as_in_torch(workers):
    """It was refused when the loader was built (map-style datasets needed __len__)."""
    for kwargs in ({"batch_size": 2, "sampler": [5, 1, 3, 0]}, {"batch_sampler": [[5, 1], [3, 0]]}):
        ours = tt.DataLoader(KeyedWithoutLen(), num_workers=workers, **kwargs)
        theirs = tud.DataLoader(KeyedWithoutLen(), **kwargs)
        assert [b.tolist() for b in ours] == [b.tolist() for b in theirs]
        assert len(ours) == len(theirs) == 2
    resumed = tt.DataLoader(KeyedWithoutLen(), batch_size=2, sampler=[5, 1, 3, 0])
    epoch = iter(resumed)
    next(epoch)
    state = resumed.state_dict()
    fresh = tt.DataLoader(KeyedWithoutLen(), batch_size=2, sampler=[5, 1, 3, 0], num_workers=workers)
    fresh.load_state_dict(state)
    assert [b.tolist() for b in fresh] == [[6.0, 0.0]]


def test_a_dataset_without_len_and_without_indices_is_refused_with_the_fix():
    with pytest.raises(TypeError, match="has __getitem__ but no __len__: define __len__.*or pass sampler="):
        tt.DataLoader(KeyedWithoutLen(), batch_size=2)
