import numpy as np
import pytest

from tinytorch.data.datasets.indexing import check_index, check_indices


def test_check_index_negative_and_bounds():
    assert check_index(-1, 5) == 4
    assert check_index(np.int64(2), 5) == 2
    with pytest.raises(
        IndexError, match=r"index 5 is out of range for dataset of length 5 \(valid: -5 to 4\)"
    ):
        check_index(5, 5)
    with pytest.raises(IndexError):
        check_index(-6, 5)
    with pytest.raises(TypeError, match="indices must be integers, got float"):
        check_index(1.0, 5)


def test_check_indices_vectorized():
    np.testing.assert_array_equal(check_indices([0, -1, 2], 5), [0, 4, 2])
    assert check_indices([], 5).dtype == np.intp
    with pytest.raises(IndexError, match="index 9 is out of range"):
        check_indices([0, 9], 5)
    with pytest.raises(IndexError, match="index -7 is out of range"):
        check_indices([-7, 0], 5)
    with pytest.raises(TypeError, match="dtype float64"):
        check_indices(np.array([0.0]), 5)
    with pytest.raises(ValueError, match="1-D"):
        check_indices(np.zeros((2, 2), dtype=int), 5)


def test_errors_are_also_the_classes_torch_raises():
    from tinytorch.data.datasets.indexing import IndexOutOfRangeError, IndexTypeError

    with pytest.raises(IndexOutOfRangeError) as out_of_range:
        check_index(-6, 5)
    assert isinstance(out_of_range.value, IndexError)
    assert isinstance(out_of_range.value, ValueError)
    with pytest.raises(IndexTypeError) as wrong_type:
        check_index("0", 5)
    assert isinstance(wrong_type.value, TypeError)
    assert isinstance(wrong_type.value, IndexError)
    with pytest.raises(IndexOutOfRangeError):
        check_indices([5], 5)


def test_boolean_masks_select_where_true():
    np.testing.assert_array_equal(check_indices(np.array([True, False, True]), 3), [0, 2])
    with pytest.raises(IndexError, match="mask of 2 entries; it needs 3"):
        check_indices([True, False], 3)
