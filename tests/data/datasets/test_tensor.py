import numpy as np
import pytest

from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.datasets.tensor import TensorDataset


def make():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10, dtype=np.int64)
    return TensorDataset(x, y), x, y


def test_getitem_returns_aligned_rows_and_accepts_negative_indices():
    ds, x, _y = make()
    assert len(ds) == 10
    xi, yi = ds[-1]
    np.testing.assert_array_equal(xi, x[9])
    assert yi == 9


def test_getitem_out_of_range():
    ds, _, _ = make()
    with pytest.raises(IndexError, match="index 10 is out of range for TensorDataset of length 10"):
        ds[10]


def test_getitems_reads_a_stacked_batch():
    ds, x, _y = make()
    batch = ds.__getitems__([3, -1, 0])
    assert isinstance(batch, StackedSamples)
    bx, by = batch.collated()
    np.testing.assert_array_equal(bx, x[[3, 9, 0]])
    np.testing.assert_array_equal(by, [3, 9, 0])
    with pytest.raises(IndexError):
        ds.__getitems__([0, 11])


def test_array_likes_are_accepted():
    ds = TensorDataset([[1, 2], [3, 4]], [0, 1])
    assert ds[1][0].tolist() == [3, 4]


def test_different_lengths_name_the_shapes():
    with pytest.raises(ValueError, match=r"array 0: \(3,\), array 1: \(4,\)"):
        TensorDataset(np.zeros(3), np.zeros(4))


def test_no_arrays_and_scalars_are_refused():
    with pytest.raises(ValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.float64(1.0))


def test_slices_lists_arrays_and_masks_index_every_array_as_in_torch():
    ds, x, y = make()
    sx, sy = ds[2:5]
    np.testing.assert_array_equal(sx, x[2:5])
    np.testing.assert_array_equal(sy, y[2:5])
    lx, ly = ds[[3, -1]]
    np.testing.assert_array_equal(lx, x[[3, 9]])
    assert ly.tolist() == [3, 9]
    assert ds[np.array([1, 2])][1].tolist() == [1, 2]
    mask = np.arange(10) % 4 == 0
    assert ds[mask][1].tolist() == [0, 4, 8]
    with pytest.raises(IndexError, match="boolean mask of 3 entries"):
        ds[[True, False, True]]


def test_bad_indices_raise_what_torch_raises():
    ds, _, _ = make()
    with pytest.raises(IndexError):  # torch: IndexError (tensor indexing)
        ds[1.0]
    with pytest.raises(IndexError):
        ds[-11]
    with pytest.raises(IndexError):
        ds[[0, 10]]


def test_a_tensor_numpy_cannot_hold_is_named():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"array 1 \(Tensor of dtype torch.bfloat16\).*tensor.float\(\)"):
        TensorDataset(np.zeros(2), torch.zeros(2, dtype=torch.bfloat16))
