import numpy as np
import pytest

from tinytorch import DataLoader, TensorDataset
from tinytorch.data.seeding import BatchContext, batch_context
from tinytorch.data.transforms.base import resolve_rng
from tinytorch.data.transforms.compose import Compose
from tinytorch.data.transforms.image import RandomCrop, RandomHorizontalFlip
from tinytorch.data.transforms.normalize import Normalize, ToFloat

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def augment():
    return Compose(
        [
            RandomCrop(32, padding=4),
            RandomHorizontalFlip(),
            ToFloat(),
            Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )


def batch(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def test_random_transform_without_a_generator_says_what_to_do():
    with pytest.raises(
        ValueError, match=r"rng=numpy.random.default_rng\(seed\), or use it inside a DataLoader"
    ):
        RandomHorizontalFlip()(batch())
    with pytest.raises(TypeError, match="rng=numpy.random.Generator"):
        RandomHorizontalFlip()(batch(), rng=42)


def test_deterministic_transform_needs_no_generator():
    assert ToFloat()(batch()).dtype == np.float32


def test_generator_comes_from_the_batch_context():
    with batch_context(BatchContext(1, 2, 3)):
        a = augment()(batch())
    b = augment()(batch(), BatchContext(1, 2, 3).rng)
    np.testing.assert_array_equal(a, b)
    with batch_context(BatchContext(1, 2, 3)):
        assert resolve_rng(None, "x").random() == BatchContext(1, 2, 3).rng.random()


def test_tuple_batches_transform_the_first_item():
    x, y = batch(), np.arange(4)
    out = augment()((x, y), np.random.default_rng(0))
    assert isinstance(out, tuple)
    assert out[0].shape == (4, 3, 32, 32)
    assert out[1] is y
    listed = augment()([x, y], np.random.default_rng(0))
    assert isinstance(listed, list)
    np.testing.assert_array_equal(listed[0], out[0])


def test_sample_and_batch_shapes():
    one = augment()(batch(1)[0], np.random.default_rng(0))
    assert one.shape == (3, 32, 32)
    with pytest.raises(ValueError, match=r"got shape \(32, 32\)"):
        augment()(np.zeros((32, 32), np.uint8), np.random.default_rng(0))


def test_golden_values_of_a_seeded_augmentation():
    # Pins the random stream of the standard CIFAR augmentation: a change must be deliberate.
    out = augment()(batch(), np.random.default_rng(2024))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 16, 16], [1.6781, 0.8683, -0.9734, 1.17], atol=1e-4)
    np.testing.assert_allclose(float(out.sum()), -2973.81, atol=0.05)


def test_as_batch_transform_is_identical_for_equal_seeds():
    ds = TensorDataset(batch(50), np.arange(50))
    a = [x for x, _ in DataLoader(ds, batch_size=16, shuffle=True, seed=3, batch_transform=augment())]
    b = [x for x, _ in DataLoader(ds, batch_size=16, shuffle=True, seed=3, batch_transform=augment())]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert a[0].dtype == np.float32
