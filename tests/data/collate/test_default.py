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


def test_default_convert_is_identity():
    x = {"a": np.zeros(1)}
    assert default_convert(x) is x


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
