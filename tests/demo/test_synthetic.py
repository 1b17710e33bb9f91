import numpy as np

from tinytorch.demo.synthetic import synthetic_cifar


def test_shapes_dtypes_and_determinism():
    x, y = synthetic_cifar(50, seed=3)
    assert x.shape == (50, 3, 32, 32)
    assert x.dtype == np.uint8
    assert y.dtype == np.int64
    assert set(y.tolist()) <= set(range(10))
    x2, _ = synthetic_cifar(50, seed=3)
    np.testing.assert_array_equal(x, x2)
    assert not np.array_equal(x, synthetic_cifar(50, seed=4)[0])


def test_classes_are_separable_by_their_means():
    x, y = synthetic_cifar(2000, seed=0)
    means = np.stack([x[y == k].mean(axis=0) for k in range(10)])
    distances = ((x[:, None].astype(np.float32) - means[None]) ** 2).sum(axis=(2, 3, 4))
    assert (distances.argmin(axis=1) == y).mean() > 0.5
