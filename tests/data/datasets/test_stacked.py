import numpy as np
import pytest

from tinytorch.data.datasets.stacked import StackedSamples


def test_tuple_samples_unstack_and_collate_to_a_list():
    s = StackedSamples.of_tuples([np.arange(3), np.array(["a", "b", "c"])])
    assert len(s) == 3
    assert s[1] == (1, "b")
    assert [x[0] for x in s] == [0, 1, 2]
    assert isinstance(s.collated(), list)
    assert s[0:2] == [(0, "a"), (1, "b")]


def test_dict_and_array_samples():
    d = StackedSamples.of_dicts({"x": np.zeros((2, 3)), "y": [5, 6]})
    assert d[1]["y"] == 6
    assert d.collated()["x"].shape == (2, 3)
    a = StackedSamples.of_arrays(np.ones((4, 2)))
    assert a[3].shape == (2,)
    assert a.collated().shape == (4, 2)
    assert a.map_columns(lambda c: c * 2).collated().sum() == 16


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="same length"):
        StackedSamples.of_tuples([np.arange(3), np.arange(4)])
