import collections
import re
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinytorch.data.collate.default import CollateError, default_collate, default_convert
from tinytorch.data.datasets.stacked import StackedSamples

Point = namedtuple("Point", ["x", "y"])


def test_arrays_stack_with_dtype_kept():
    out = default_collate([np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32)])
    assert out.shape == (2, 2, 3)
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("samples", "dtype"),
    [
        ([1, 2], np.int64),
        ([1.0, 2.5], np.float64),
        ([True, False], np.bool_),
        ([1j, 2j], np.complex128),
    ],
)
def test_python_scalar_dtype_rules(samples, dtype):
    out = default_collate(samples)
    assert out.dtype == dtype
    assert out.tolist() == samples


def test_numpy_scalars_keep_their_dtype():
    assert default_collate([np.uint8(1), np.uint8(2)]).dtype == np.uint8


def test_strings_and_bytes_become_lists():
    assert default_collate(["a", "b"]) == ["a", "b"]
    assert default_collate([b"a", b"b"]) == [b"a", b"b"]


def test_nested_structures():
    samples = [
        {"image": np.zeros(3, np.uint8), "meta": (1, "cat"), "p": Point(1.0, 2)},
        {"image": np.ones(3, np.uint8), "meta": (2, "dog"), "p": Point(3.0, 4)},
    ]
    out = default_collate(samples)
    assert out["image"].shape == (2, 3)
    assert out["meta"][0].tolist() == [1, 2]
    assert out["meta"][1] == ["cat", "dog"]
    assert isinstance(out["p"], Point)
    assert out["p"].x.dtype == np.float64


def test_tuples_become_lists_as_in_torch():
    out = default_collate([(1, 2), (3, 4)])
    assert isinstance(out, list)
    assert [o.tolist() for o in out] == [[1, 3], [2, 4]]


def test_mapping_subclass_is_kept():
    out = default_collate([OrderedDict(a=1), OrderedDict(a=2)])
    assert isinstance(out, OrderedDict)


def test_array_likes_are_converted():
    class Like:
        def __array__(self, dtype=None, copy=None):
            return np.arange(3)

    assert default_collate([Like(), Like()]).shape == (2, 3)


def test_stacked_samples_pass_straight_through():
    cols = [np.arange(4), np.arange(4) * 2]
    out = default_collate(StackedSamples.of_tuples(cols))
    assert out[0] is cols[0]


def test_ragged_shapes_name_field_shapes_and_positions():
    samples = [{"image": np.zeros((3, 32, 32))} for _ in range(20)]
    samples[17] = {"image": np.zeros((3, 30, 32))}
    with pytest.raises(CollateError) as info:
        default_collate(samples)
    message = str(info.value)
    assert "field ['image']" in message
    assert "(3, 32, 32) at samples 0-16, 18-19" in message
    assert "(3, 30, 32) at sample 17" in message
    assert "Fix:" in message


def test_mixed_types_are_a_type_error_naming_kinds():
    with pytest.raises(
        TypeError, match=r"field \[1\].*different kinds: int at samples 0, 2; str at sample 1"
    ):
        default_collate([(0, 1), (0, "x"), (0, 2)])


def test_different_keys_are_named():
    with pytest.raises(ValueError, match=r"different keys: \{'a'\} at sample 0; \{'b'\} at sample 1"):
        default_collate([{"a": 1}, {"b": 1}])


def test_different_lengths_and_dtypes():
    with pytest.raises(CollateError, match="different lengths"):
        default_collate([(1, 2), (1, 2, 3)])
    with pytest.raises(CollateError, match="different dtypes: uint8 at sample 0; float32 at sample 1"):
        default_collate([np.zeros(2, np.uint8), np.zeros(2, np.float32)])


def test_unsupported_and_empty():
    with pytest.raises(CollateError, match="is a NoneType, which cannot be batched"):
        default_collate([None, None])
    with pytest.raises(CollateError, match="empty batch"):
        default_collate([])
    with pytest.raises(CollateError, match="do not fit in int64"):
        default_collate([2**70, 1])


def test_default_convert_keeps_the_leaves_and_follows_torchs_container_rules():
    """batch_size=None handed tuples through as tuples, where torch (and our batches) give lists."""
    image = np.zeros(3)
    Pair = collections.namedtuple("Pair", "x y")
    out = default_convert({"a": (image, 1), "b": Pair(image, [2, (3, "s")]), "c": "text"})
    assert type(out) is dict
    assert type(out["a"]) is list
    assert out["a"][0] is image  # arrays are not copied or converted
    assert type(out["b"]) is Pair
    assert out["b"].y == [2, [3, "s"]]
    assert out["c"] == "text"
    assert default_convert(image) is image


@given(
    st.integers(1, 6).flatmap(
        lambda n: st.lists(
            st.tuples(
                hnp.arrays(np.int16, (2, 3)),
                st.integers(-(2**40), 2**40),
                st.floats(allow_nan=False),
            ),
            min_size=n,
            max_size=n,
        )
    )
)
def test_collate_then_index_gives_back_each_sample(samples):
    images, labels, weights = default_collate(samples)
    for i, (image, label, weight) in enumerate(samples):
        np.testing.assert_array_equal(images[i], image)
        assert labels[i] == label
        assert weights[i] == weight


@given(st.lists(hnp.arrays(np.uint8, st.sampled_from([(2,), (3,)])), min_size=2, max_size=8))
def test_stack_succeeds_iff_shapes_agree(samples):
    shapes = {s.shape for s in samples}
    if len(shapes) == 1:
        assert default_collate(samples).shape == (len(samples), *shapes.pop())
    else:
        with pytest.raises(CollateError, match="different shapes"):
            default_collate(samples)


# --- numbers are numbers (issue 13 item 3) -------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "dtype", "values"),
    [
        ([1, np.int64(2)], np.int64, [1, 2]),
        ([np.int64(2), 1], np.int64, [2, 1]),
        ([1.0, np.float64(2.5)], np.float64, [1.0, 2.5]),
        ([np.float32(1.5), 2.0], np.float64, [1.5, 2.0]),
        ([True, np.bool_(False)], np.bool_, [True, False]),
        ([True, 1], np.int64, [1, 1]),  # numpy and torch promote a bool with an int
        ([1, 2.5], np.float64, [1.0, 2.5]),
        ([np.int32(1), np.int8(2)], np.int32, [1, 2]),
        ([np.uint8(1), np.int8(-2)], np.int16, [1, -2]),
        ([np.float16(1), np.float32(2)], np.float32, [1.0, 2.0]),
        ([1j, np.complex64(2)], np.complex128, [1j, 2]),
    ],
)
def test_mixed_numbers_promote_with_numpys_rules(samples, dtype, values):
    out = default_collate(samples)
    assert out.dtype == dtype
    assert out.tolist() == values


def test_the_labels_of_cifar_and_tensor_datasets_batch_together():
    """CIFAR10Dataset gives Python int labels, TensorDataset numpy int64 ones."""
    samples = [(np.zeros((3, 2, 2), np.uint8), 3), (np.ones((3, 2, 2), np.uint8), np.int64(7))]
    images, labels = default_collate(samples)
    assert images.shape == (2, 3, 2, 2)
    assert labels.dtype == np.int64
    assert labels.tolist() == [3, 7]


def test_integers_without_a_common_integer_dtype_are_refused_not_made_float():
    with pytest.raises(CollateError, match=r"dtypes int64, uint64, which no integer dtype holds.*float64"):
        default_collate([np.uint64(2**63 + 1), 1])


def test_what_really_differs_is_still_refused():
    with pytest.raises(CollateError, match=r"different kinds: int at sample 0; str at sample 1"):
        default_collate([1, "a"])
    with pytest.raises(CollateError, match=r"different kinds: ndarray at sample 0; int64 at sample 1"):
        default_collate([np.array(1), np.int64(2)])


def test_kinds_are_decided_per_type_not_per_sample(monkeypatch):
    """The fast path: a field of 1,000 numbers of two types costs two kind decisions."""
    from tinytorch.data.collate import default as module

    calls = []
    real = module._kind_of
    monkeypatch.setattr(module, "_kind_of", lambda t: calls.append(t) or real(t))
    out = default_collate([1, np.int64(2)] * 500)
    assert out.dtype == np.int64
    assert len(calls) == 2


@given(
    st.lists(
        st.one_of(
            st.booleans(),
            st.integers(-(2**31), 2**31),
            st.floats(allow_nan=False, width=32),
            st.sampled_from(
                [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.float16, np.float32]
            ).map(lambda t: t(1)),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_mixed_numbers_give_numpys_result_type_and_the_values(samples):
    python = {bool: np.bool_, int: np.int64, float: np.float64}
    expected = np.result_type(*[python.get(type(s), type(s)) for s in samples])
    out = default_collate(samples)
    assert out.dtype == expected
    assert out.tolist() == np.array(samples, dtype=expected).tolist()


# --- arrays: widths promote within a category ------------------------------------------------


@pytest.mark.parametrize(
    ("dtypes", "expected"),
    [
        (["int32", "int64"], "int64"),
        (["float32", "float64"], "float64"),
        (["uint8", "int8"], "int16"),
        (["<U2", "<U3"], "<U3"),
        (["S1", "S4"], "S4"),
        (["M8[D]", "M8[s]"], "M8[s]"),
        (["m8[ms]", "m8[us]"], "m8[us]"),
        (["complex64", "complex128"], "complex128"),
        ([">i4", "<i4"], "int32"),
    ],
)
def test_arrays_of_one_category_widen_like_np_stack(dtypes, expected):
    samples = [np.zeros((2,), d) for d in dtypes]
    out = default_collate(samples)
    assert out.dtype == np.dtype(expected)
    assert out.dtype == np.stack(samples).dtype


def test_string_arrays_keep_their_values_when_widened():
    out = default_collate([np.array(["ab", "c"]), np.array(["xyz", "w"])])
    assert out.dtype == np.dtype("<U3")
    assert out.tolist() == [["ab", "c"], ["xyz", "w"]]


def test_a_shared_dtype_is_kept_exactly_byte_order_included():
    out = default_collate([np.arange(2, dtype=">i4"), np.arange(2, dtype=">i4")])
    assert out.dtype == np.dtype(">i4")


@pytest.mark.parametrize(
    "dtypes",
    [["uint8", "float32"], ["bool", "int64"], ["int64", "uint64"], ["<U1", "S1"], ["M8[s]", "m8[s]"]],
)
def test_arrays_of_different_categories_are_refused_naming_the_dtypes(dtypes):
    samples = [{"image": np.zeros(2, d)} for d in dtypes]
    with pytest.raises(
        CollateError,
        match=rf"field \['image'\].*different dtypes: {re.escape(str(np.dtype(dtypes[0])))} at sample 0",
    ):
        default_collate(samples)


def test_structured_arrays_batch_when_their_dtypes_are_equal_and_are_refused_otherwise():
    a = np.zeros(2, [("x", "<i4"), ("y", "<f8")])
    out = default_collate([a, a])
    assert out.dtype == a.dtype
    assert out.shape == (2, 2)
    with pytest.raises(CollateError, match="different dtypes"):
        default_collate([a, np.zeros(2, [("z", "<i4")])])


def test_object_arrays_are_refused_as_torch_does_naming_the_field():
    with pytest.raises(TypeError, match=r"field \['meta'\]: it is a numpy array of dtype object"):
        default_collate([{"meta": np.array([None])}, {"meta": np.array([1], dtype=object)}])


def test_numpy_datetimes_and_records_as_scalars():
    out = default_collate([np.datetime64("2020-01-01"), np.datetime64("2020-01-01T00:00:01")])
    assert out.dtype == np.dtype("M8[s]")
    record = np.zeros(3, [("x", "<i2")])
    assert default_collate([record[0], record[1]]).dtype == record.dtype


def test_numpy_strings_are_strings():
    out = default_collate([np.str_("a"), "b"])
    assert out == ["a", "b"]
    assert default_collate(np.array(["a", "b", "c"])) == ["a", "b", "c"]  # a numpy array as the batch


# --- sequences and mappings as torch treats them --------------------------------------------


def test_range_samples_collate_as_sequences():
    out = default_collate([range(3), range(1, 4)])
    assert isinstance(out, list)
    assert [o.tolist() for o in out] == [[0, 1], [1, 2], [2, 3]]


def test_sequence_and_mapping_subclasses_keep_their_type_and_attributes():
    class Row(list):
        pass

    class Meta(dict):
        pass

    first = Meta(a=1)
    first.source = "x"
    out = default_collate([first, Meta(a=2)])
    assert type(out) is Meta
    assert out.source == "x"
    assert out["a"].tolist() == [1, 2]
    rows = default_collate([Row([1, 2]), Row([3, 4])])
    assert type(rows) is Row
    assert [r.tolist() for r in rows] == [[1, 3], [2, 4]]


def test_errors_carry_the_classes_torch_raises():
    with pytest.raises(RuntimeError, match="different lengths"):  # torch: RuntimeError
        default_collate([(1, 2), (1, 2, 3)])
    with pytest.raises(RuntimeError, match="different shapes"):  # torch.stack: RuntimeError
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(IndexError, match="empty batch"):  # torch: IndexError
        default_collate([])
    with pytest.raises(TypeError, match="NoneType"):
        default_collate([None])


# --- torch tensors in samples (issue 13 item 5) ----------------------------------------------


def _torch():
    return pytest.importorskip("torch")


def test_tensor_samples_give_a_tensor_batch():
    torch = _torch()
    out = default_collate([(torch.full((2, 3), float(i)), i) for i in range(4)])
    assert isinstance(out[0], torch.Tensor)
    assert out[0].shape == (4, 2, 3)
    assert out[0][:, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert out[1].tolist() == [0, 1, 2, 3]


def test_bfloat16_and_promotion_within_a_category():
    torch = _torch()
    out = default_collate([torch.ones(2, dtype=torch.bfloat16), torch.full((2,), 0.5, dtype=torch.bfloat16)])
    assert out.dtype == torch.bfloat16
    assert out.tolist() == [[1.0, 1.0], [0.5, 0.5]]
    assert default_collate([torch.ones(1, dtype=torch.int32), torch.ones(1).long()]).dtype == torch.int64
    with pytest.raises(
        CollateError, match="different dtype categories: floating at sample 0; integer at sample 1"
    ):
        default_collate([torch.ones(1), torch.ones(1, dtype=torch.int64)])


def test_tensors_that_require_grad_keep_their_graph_as_in_torch():
    torch = _torch()
    leaf = torch.ones(2, requires_grad=True)
    out = default_collate([leaf * 2, leaf * 3])
    assert out.requires_grad
    out.sum().backward()
    assert leaf.grad.tolist() == [5.0, 5.0]


def test_mixed_tensor_and_array_fields_name_the_field_and_the_fix():
    torch = _torch()
    with pytest.raises(
        CollateError, match=r"field \['x'\].*Tensor at sample 0; ndarray at sample 1.*torch.as_tensor"
    ):
        default_collate([{"x": torch.ones(2)}, {"x": np.ones(2)}])
    with pytest.raises(CollateError, match=r"different shapes: \(2,\) at sample 0; \(3,\) at sample 1"):
        default_collate([torch.ones(2), torch.ones(3)])


def test_tensors_are_stacked_into_the_batchs_memory():
    torch = _torch()
    from tinytorch.data.memory import allocating_in

    class Arena:
        def __init__(self):
            self.made = []

        def empty(self, shape, dtype):
            self.made.append(np.empty(shape, dtype))
            return self.made[-1]

    arena = Arena()
    with allocating_in(arena):
        out = default_collate([torch.ones(3, dtype=torch.bfloat16)] * 2)
    assert out.dtype == torch.bfloat16
    assert out.data_ptr() == arena.made[0].ctypes.data  # bfloat16 allocated as int16, viewed
    assert arena.made[0].dtype == np.int16


def test_when_samples_hold_tensors_numbers_and_arrays_become_tensors_too():
    """New-user trial: (tensor, int) samples gave a numpy label batch, which torch's
    cross_entropy refuses; torch's default_collate makes every field a tensor."""
    torch = pytest.importorskip("torch")
    _, labels = default_collate([(torch.ones(2), 1), (torch.zeros(2), 2)])
    assert isinstance(labels, torch.Tensor)
    assert labels.dtype == torch.int64
    assert labels.tolist() == [1, 2]
    batch = default_collate([{"x": torch.ones(1), "y": np.float32(0.5), "name": "a"}] * 2)
    assert isinstance(batch["y"], torch.Tensor)
    assert batch["y"].dtype == torch.float32
    assert batch["name"] == ["a", "a"]
    swapped = default_collate([(torch.ones(1), np.array([1, 2], dtype=">i4"))] * 2)[1]
    assert swapped.tolist() == [[1, 2], [1, 2]]  # another byte order is made native for torch
    assert isinstance(default_collate([(np.ones(2), 1)] * 2)[1], np.ndarray)  # no tensor: numpy


def test_tensor_batches_keep_the_container_types_torch_keeps():
    """Attack: samples holding a tensor in a defaultdict raised TypeError ('first argument must
    be callable or None': the batch was rebuilt with defaultdict(pairs)), a list subclass came
    back a plain list, and the numbers in a deque or a MutableMapping stayed numpy. torch's
    default_collate keeps each container's type (and attributes) and makes every leaf a tensor."""
    torch = _torch()

    class Row(list):
        pass

    class Record(collections.abc.MutableMapping):
        def __init__(self, data, source):
            self.data, self.source = dict(data), source

        def __getitem__(self, key):
            return self.data[key]

        def __setitem__(self, key, value):
            self.data[key] = value

        def __delitem__(self, key):
            del self.data[key]

        def __iter__(self):
            return iter(self.data)

        def __len__(self):
            return len(self.data)

    by_default = default_collate([collections.defaultdict(list, x=torch.ones(1), y=i) for i in range(2)])
    assert type(by_default) is collections.defaultdict
    assert by_default.default_factory is list
    assert by_default["y"].tolist() == [0, 1]
    assert isinstance(by_default["y"], torch.Tensor)
    row = default_collate([Row([torch.ones(1), i]) for i in range(2)])
    assert type(row) is Row
    assert isinstance(row[1], torch.Tensor)
    queue = default_collate([collections.deque([torch.ones(1), i]) for i in range(2)])
    assert type(queue) is collections.deque
    assert isinstance(queue[1], torch.Tensor)
    assert queue[1].tolist() == [0, 1]
    record = default_collate([Record({"x": torch.ones(1), "y": i}, "disk") for i in range(2)])
    assert type(record) is Record
    assert record.source == "disk"
    assert isinstance(record["y"], torch.Tensor)


def test_default_convert_keeps_stacked_samples_whole():
    """Samples read at once stay columns: taken apart per sample, a large read became a list of
    per-sample lists (slow, and not what the dataset returned)."""
    stacked = StackedSamples((np.zeros((4, 3)), np.arange(4)), "tuple", 4)
    assert default_convert(stacked) is stacked
