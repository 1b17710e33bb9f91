import numpy as np
import pytest

from tinytorch.data.validate import check_bool, check_float, check_int


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


@pytest.mark.parametrize("good", [0.5, 1, np.float32(0.5), np.float64(0.25), np.int64(1), np.array(0.5)])
def test_check_float_accepts_every_real_number_kind(good):
    value = check_float(good, "p", minimum=0, maximum=1)
    assert type(value) is float
    assert value == float(np.asarray(good))


@pytest.mark.parametrize("bad", [True, np.bool_(False), "0.5", None, [0.5], 1j])
def test_check_float_refuses_non_numbers(bad):
    with pytest.raises(TypeError, match=r"p must be a number >= 0 and <= 1, got"):
        check_float(bad, "p", minimum=0, maximum=1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, 1.5])
def test_check_float_refuses_nan_infinity_and_out_of_range(bad):
    with pytest.raises(ValueError, match=r"p must be a number >= 0 and <= 1, got .*; pass a probability"):
        check_float(bad, "p", minimum=0, maximum=1, hint="pass a probability")


def test_check_float_exclusive_bounds():
    assert check_float(1e-9, "eps", minimum=0, exclusive_minimum=True) == 1e-9
    with pytest.raises(ValueError, match="eps must be a number > 0, got 0"):
        check_float(0.0, "eps", minimum=0, exclusive_minimum=True)
