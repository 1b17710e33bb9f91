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
