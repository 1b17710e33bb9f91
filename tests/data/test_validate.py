import numpy as np
import pytest

from tinytorch.data.validate import check_bool, check_int


def test_check_int_accepts_ints_and_numpy_ints():
    assert check_int(3, "n") == 3
    assert check_int(np.int32(4), "n", minimum=1) == 4


@pytest.mark.parametrize("bad", [1.0, "1", None, True])
def test_check_int_refuses_non_ints_with_the_name(bad):
    with pytest.raises(TypeError, match=r"batch_size must be a positive int, got"):
        check_int(bad, "batch_size", minimum=1)


def test_check_int_refuses_small_values_and_gives_the_hint():
    with pytest.raises(ValueError, match=r"num_workers must be a non-negative int, got -1; use 0"):
        check_int(-1, "num_workers", hint="use 0")


def test_check_bool():
    assert check_bool(np.bool_(True), "x") is True
    with pytest.raises(TypeError, match="drop_last must be True or False, got int 1"):
        check_bool(1, "drop_last")
