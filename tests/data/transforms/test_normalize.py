import numpy as np
import pytest

from tinytorch.data.transforms.compose import Compose
from tinytorch.data.transforms.normalize import Normalize, ToFloat, ToFloatNormalize


def test_to_float_scales_integers_and_casts_floats():
    x = np.array([[[0, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(ToFloat()(x), np.array([[[0.0, 1.0]]], dtype=np.float32))
    assert ToFloat()(x).dtype == np.float32
    f = np.array([[[0.5, 2.0]]], dtype=np.float64)
    np.testing.assert_array_equal(ToFloat()(f), f.astype(np.float32))


def test_normalize_per_channel():
    x = np.stack([np.full((2, 2), 2.0), np.full((2, 2), 6.0)])
    out = Normalize([1.0, 2.0], [0.5, 2.0])(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], 2.0)
    np.testing.assert_allclose(out[1], 2.0)


def test_fused_to_float_normalize_equals_the_two_steps():
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 5, 5), dtype=np.uint8)
    mean, std = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
    fused = Compose([ToFloat(), Normalize(mean, std)])
    assert len(fused.steps) == 1
    assert type(fused.steps[0]) is ToFloatNormalize
    two_steps = Normalize(mean, std)(ToFloat()(x))
    np.testing.assert_allclose(fused(x), two_steps, rtol=1e-6, atol=1e-6)


def test_fused_pipeline_on_float_input_does_not_rescale():
    x = np.random.default_rng(0).random((2, 3, 4, 4)).astype(np.float32)
    fused = Compose([ToFloat(), Normalize([0.5] * 3, [0.25] * 3)])
    np.testing.assert_allclose(fused(x), (x - 0.5) / 0.25, rtol=1e-6)


def test_normalize_errors():
    with pytest.raises(ValueError, match="statistics for 3 channels but the input has 2"):
        Normalize([0, 0, 0], [1, 1, 1])(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="positive"):
        Normalize([0], [0])
    with pytest.raises(ValueError, match="rank 3"):
        Normalize([0], [1])(np.zeros((4, 4)))


def test_normalize_arguments_name_the_fix():
    with pytest.raises(ValueError, match=r"Normalize mean must be finite, got \[0.5, nan\]"):
        Normalize([0.5, float("nan")], [1, 1])
    with pytest.raises(
        TypeError, match=r"Normalize std must be numbers, one per channel.*e.g. Normalize\(mean="
    ):
        Normalize([0.5], ["wide"])
    with pytest.raises(ValueError, match="got 3 means and 2 stds"):
        Normalize([0, 0, 0], [1, 1])
    assert Normalize(np.float32(0.5), np.float64(0.25))(np.ones((1, 2, 2), np.float32)).tolist() == [
        [[2.0, 2.0]] * 2
    ]


@pytest.mark.parametrize(("mean", "std"), [([], []), ([], [0.5]), ([0.5], [])])
def test_empty_statistics_are_refused_when_built(mean, std):
    # Normalize([], []) was accepted and failed only on the first batch ("statistics for 0 channels")
    with pytest.raises(ValueError, match="Normalize needs at least one mean and one std"):
        Normalize(mean, std)
