import numpy as np
import pytest

from tinytorch.data.transforms.image import Cutout, RandomCrop, RandomErasing, RandomHorizontalFlip


def images(n=8, c=3, h=6, w=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def test_crop_shape_dtype_and_content_comes_from_the_padded_image():
    x = images()
    out = RandomCrop(4, padding=1)(x, np.random.default_rng(0))
    assert out.shape == (8, 3, 4, 4)
    assert out.dtype == np.uint8


def test_crop_offsets_are_uniform_over_all_positions():
    # 81 positions for padding 4 on a 32-pixel image (size 32). Chi-square with 80 degrees of
    # freedom: the 99.9% quantile is 124.8; with this fixed seed the statistic is far below.
    crop = RandomCrop(32, padding=4)
    u = crop.draw(np.random.default_rng(123), 81 * 400)
    at = crop.offsets(u, *crop.positions(32, 32))
    counts = np.bincount(at.top * 9 + at.left, minlength=81)
    assert counts.shape == (81,)
    expected = len(u) / 81
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 124.8
    assert at.top.min() == 0
    assert at.top.max() == 8


def test_crop_batch_equals_per_sample_with_the_same_draws():
    x = images(n=16)
    crop = RandomCrop(5, padding=2, pad_mode="reflect")
    params = crop.draw(np.random.default_rng(1), 16)
    batch = crop.apply(x, params)
    for i in range(16):
        single = crop.apply(x[i : i + 1], params[i : i + 1])[0]
        np.testing.assert_array_equal(batch[i], single)


def test_crop_positions_match_a_manual_crop():
    x = images(n=1)
    crop = RandomCrop(6, padding=2, fill=7)
    params = np.array([[0.0, 0.99]])  # top 0, left 4 of 5 positions
    out = crop.apply(x, params)[0]
    padded = np.pad(x[0], ((0, 0), (2, 2), (2, 2)), constant_values=7)
    np.testing.assert_array_equal(out, padded[:, 0:6, 4:10])


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_modes_match_numpy(mode):
    x = images(n=2)
    padded = RandomCrop(6, padding=3, pad_mode=mode).pad(x)
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)), mode=mode))


def test_crop_bad_arguments():
    with pytest.raises(ValueError, match="larger than the padded input"):
        RandomCrop(10, padding=1)(images(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="pad_mode"):
        RandomCrop(4, pad_mode="wrap")
    with pytest.raises(ValueError, match="size must be a positive int"):
        RandomCrop(0)


def test_flip_rate_and_content():
    x = images(n=20_000, c=1, h=1, w=3)
    flip = RandomHorizontalFlip(p=0.3)
    params = flip.draw(np.random.default_rng(5), len(x))
    out = flip.apply(x, params)
    flipped = np.all(out == x[..., ::-1], axis=(1, 2, 3)) & ~np.all(x == x[..., ::-1], axis=(1, 2, 3))
    # Binomial(20000, 0.3): sd ~ 65; tolerance of 5 sd.
    assert abs(params.sum() - 6000) < 325
    np.testing.assert_array_equal(out[params], x[params][..., ::-1])
    np.testing.assert_array_equal(out[~params], x[~params])
    assert flipped.sum() <= params.sum()


def test_flip_does_not_modify_its_input():
    x = images()
    before = x.copy()
    RandomHorizontalFlip(1.0)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(x, before)


def test_erasing_zeroes_one_rectangle_per_selected_image():
    x = np.full((500, 3, 16, 16), 9, dtype=np.uint8)
    erase = RandomErasing(p=0.5, value=0)
    params = erase.draw(np.random.default_rng(2), len(x))
    out = erase.apply(x, params)
    rect = erase.rectangles(params, 16, 16)
    zeros = (out == 0).all(axis=1).sum(axis=(1, 2))
    np.testing.assert_array_equal(zeros, np.where(rect.apply, rect.height * rect.width, 0))
    area = rect.height * rect.width / 256
    assert area.min() >= 0.015
    assert area.max() <= 0.36
    assert abs(rect.apply.mean() - 0.5) < 0.08
    assert (x == 9).all()


def test_cutout_square_is_clipped_at_borders():
    x = np.ones((1, 1, 8, 8), dtype=np.float32)
    out = Cutout(4).apply(x, np.array([[0.0, 0.0, 0.0]]))  # centre (0, 0): 2x2 visible
    assert (out == 0).sum() == 4
    assert out[0, 0, :2, :2].sum() == 0


def test_erasing_batch_equals_per_sample():
    x = images(n=10, h=12, w=12)
    erase = RandomErasing(p=0.7)
    params = erase.draw(np.random.default_rng(9), 10)
    batch = erase.apply(x, params)
    for i in range(10):
        np.testing.assert_array_equal(batch[i], erase.apply(x[i : i + 1], params[i : i + 1])[0])


def test_bad_probabilities():
    for make in (
        lambda: RandomHorizontalFlip(1.5),
        lambda: RandomErasing(p=-0.1),
        lambda: Cutout(2, p=2),
    ):
        with pytest.raises(ValueError, match=r"p must be a number >= 0 and <= 1, got"):
            make()


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        # Issue 16 item 8: RandomCrop(32.5) surfaced a numpy internal error.
        (
            lambda: RandomCrop(32.5),
            TypeError,
            r"RandomCrop size must be an int or a sequence \(h, w\) of ints, got float 32.5; write RandomCrop\(size=32\)",
        ),
        (lambda: RandomCrop((32, 0)), ValueError, "RandomCrop size must be a positive int, got 0"),
        (
            lambda: RandomCrop((1, 2, 3)),
            ValueError,
            "RandomCrop size must be an int or a sequence \\(h, w\\) of ints, got 3 values",
        ),
        (lambda: RandomCrop("32"), TypeError, "RandomCrop size must be an int or a sequence"),
        (
            lambda: RandomCrop(32, padding=2.0),
            TypeError,
            "RandomCrop padding must be a non-negative int, got float",
        ),
        (
            lambda: RandomCrop(32, padding=(1, 2)),
            TypeError,
            "RandomCrop padding must be a non-negative int, got tuple",
        ),
        (lambda: RandomCrop(32, fill="black"), TypeError, "RandomCrop fill must be a number"),
        (lambda: RandomCrop(32, fill=float("nan")), ValueError, "RandomCrop fill must be a number, got nan"),
        (lambda: RandomHorizontalFlip("0.5"), TypeError, "RandomHorizontalFlip p must be a number"),
        (
            lambda: RandomErasing(scale=(0.5, 0.1)),
            ValueError,
            r"scale must be a pair \(lo, hi\) with lo <= hi, got \(0.5, 0.1\); write \(0.1, 0.5\)",
        ),
        (
            lambda: RandomErasing(scale=(0, 0.3)),
            ValueError,
            "RandomErasing scale must be a number > 0 and <= 1, got 0",
        ),
        (lambda: RandomErasing(ratio=0.3), TypeError, r"RandomErasing ratio must be a pair \(lo, hi\)"),
        (lambda: RandomErasing(value=None), TypeError, "RandomErasing value must be a number"),
        (lambda: Cutout(8.5), TypeError, "Cutout size must be a positive int, got float 8.5"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_fix(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_numpy_scalars_of_the_right_kind_are_accepted():
    crop = RandomCrop(np.int64(8), padding=np.uint8(2), fill=np.float32(3))
    assert crop.size == (8, 8)
    assert type(crop.size[0]) is int
    assert crop.padding == 2
    assert RandomCrop([6]).size == (6, 6)
    assert RandomCrop(np.array([6, 7])).size == (6, 7)
    assert RandomHorizontalFlip(np.float32(0.25)).p == 0.25
    assert RandomErasing(p=np.float64(0.5), scale=(np.float32(0.25), 0.5)).scale == (0.25, 0.5)
    assert Cutout(np.int32(4), p=np.float16(1)).size == 4


def test_fused_crop_then_flip_equals_the_two_steps():
    from tinytorch.data.transforms.compose import Compose

    x = images(n=64, h=10, w=12)
    for mode in ("constant", "reflect"):
        steps = [RandomCrop((8, 9), padding=2, pad_mode=mode), RandomHorizontalFlip(0.5)]
        fused = Compose(steps)
        assert type(fused.steps[0]).__name__ == "CropThenFlip"
        rng = np.random.default_rng(4)
        expected = steps[1](steps[0](x, rng), rng)
        np.testing.assert_array_equal(fused(x, np.random.default_rng(4)), expected)


@pytest.mark.parametrize(
    ("transform", "name"),
    [
        (RandomCrop(6, padding=1, fill=300), "RandomCrop fill=300"),
        (RandomCrop(6, padding=1, fill=-1), "RandomCrop fill=-1"),
        (RandomErasing(p=1, value=300), "RandomErasing value=300"),
        (Cutout(3, value=256), "Cutout value=256"),
    ],
)
def test_a_fill_outside_the_image_dtype_is_refused_not_wrapped(transform, name):
    # uint8 images: fill=300 used to pad with 44 and fill=-1 with 255 (numpy's wrap-around);
    # torchvision's Pad refuses both ("value cannot be converted to type uint8_t without overflow")
    x = images(n=2)
    with pytest.raises(ValueError, match=rf"{name} is outside the range of the uint8 images \(0 to 255\)"):
        transform(x, rng=np.random.default_rng(0))


def test_a_fill_inside_the_dtype_is_truncated_as_torchvision_casts_it():
    x = np.full((1, 1, 2, 2), 7, np.uint8)
    crop = RandomCrop(4, padding=1, fill=255.7)
    assert crop(x, rng=np.random.default_rng(0))[0, 0, 0].tolist() == [255, 255, 255, 255]
    floats = RandomCrop(4, padding=1, fill=300)(x.astype(np.float32), rng=np.random.default_rng(0))
    assert floats[0, 0, 0].tolist() == [300.0] * 4
    assert Cutout(8, value=-0.5)(x, rng=np.random.default_rng(0))[0, 0].tolist() == [[0, 0], [0, 0]]


def test_torchvisions_names_for_padding_are_taken():
    """A torchvision script's RandomCrop(32, padding=4, padding_mode="reflect") raised TypeError."""
    x = np.arange(2 * 3 * 6 * 6, dtype=np.uint8).reshape(2, 3, 6, 6)
    ours = RandomCrop(6, padding=3, padding_mode="reflect").pad(x)
    np.testing.assert_array_equal(ours, RandomCrop(6, padding=3, pad_mode="reflect").pad(x))
    assert RandomCrop(4, padding=None).padding == 0  # torchvision's default
    with pytest.raises(ValueError, match="pad_mode='edge' and padding_mode='reflect'.*pass one"):
        RandomCrop(4, padding=1, pad_mode="edge", padding_mode="reflect")
    with pytest.raises(ValueError, match="pad_mode must be"):
        RandomCrop(4, padding_mode="wrap")
