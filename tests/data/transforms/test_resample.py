import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tinytorch.data.transforms.resample import Boxes, check_interpolation, resized_crops


def image(c=3, h=30, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (c, h, w), dtype=np.uint8)


def boxes(*rows):
    return Boxes(*(np.array(column, np.int64) for column in zip(*rows, strict=True)))


def pillow(x, box, size):
    """Crop, then resize each plane with Pillow directly (what torchvision does on PIL images)."""
    top, left, h, w = box
    planes = [Image.fromarray(np.ascontiguousarray(p[top : top + h, left : left + w])) for p in x]
    return np.stack([np.asarray(p.resize(size[::-1], Image.Resampling.BILINEAR)) for p in planes])


def test_each_image_is_cropped_then_resized_like_pillow():
    images = [image(seed=0), image(h=25, w=31, seed=1)]
    box_list = [(3, 5, 20, 30), (0, 0, 25, 31)]
    out = resized_crops(images, boxes(*box_list), (9, 11))
    assert out.shape == (2, 3, 9, 11)
    for x, box, got in zip(images, box_list, out, strict=True):
        np.testing.assert_array_equal(got, pillow(x, box, (9, 11)))


def test_layouts_give_the_same_bytes():
    x = image()
    hwc_view = np.ascontiguousarray(x.transpose(1, 2, 0)).transpose(2, 0, 1)  # a decoded photo's layout
    strided = np.repeat(x, 2, axis=2)[:, :, ::2]  # not contiguous at all
    box = boxes((2, 4, 21, 33))
    expected = resized_crops([x], box, (8, 10))
    for layout in (hwc_view, strided):
        np.testing.assert_array_equal(resized_crops([layout], box, (8, 10)), expected)


def test_a_box_of_the_output_size_is_copied_as_resampling_would():
    x = image()
    out = resized_crops([x], boxes((4, 6, 12, 15)), (12, 15))
    np.testing.assert_array_equal(out[0], x[:, 4:16, 6:21])
    np.testing.assert_array_equal(out[0], pillow(x, (4, 6, 12, 15), (12, 15)))


def test_float32_planes():
    x = image().astype(np.float32) / 255
    out = resized_crops([x], boxes((0, 0, 30, 40)), (10, 13))
    assert out.dtype == np.float32
    reference = resized_crops([image()], boxes((0, 0, 30, 40)), (10, 13)) / 255
    # Pillow rounds uint8 to integers between its two passes; float keeps the fractions.
    np.testing.assert_allclose(out, reference, atol=1.5 / 255)


@pytest.mark.parametrize(
    ("box", "error", "message"),
    [
        (
            (0, 0, 31, 40),
            ValueError,
            r"box 0 \(top=0, left=0, height=31, width=40\) is not inside its image of 30 x 40",
        ),
        ((-1, 0, 5, 5), ValueError, "is not inside its image"),
        ((0, 0, 0, 5), ValueError, "is not inside its image"),
    ],
)
def test_bad_boxes(box, error, message):
    with pytest.raises(error, match=message):
        resized_crops([image()], boxes(box), (4, 4))


def test_boxes_must_be_integers_one_per_image():
    with pytest.raises(TypeError, match="boxes must be integer arrays"):
        resized_crops([image()], Boxes(*(np.array([v]) for v in (0.0, 0.5, 10.0, 10.0))), (4, 4))
    with pytest.raises(ValueError, match="one box per image: 2 images, 1 boxes"):
        resized_crops([image(), image()], boxes((0, 0, 5, 5)), (4, 4))


def test_interpolation_names():
    assert check_interpolation("Bicubic", "Resize") == "bicubic"
    with pytest.raises(ValueError, match="Resize interpolation must be 'nearest', 'bilinear' or 'bicubic'"):
        check_interpolation(2, "Resize")


def test_threads_resize_concurrently_with_the_same_results():
    images = [image(h=60, w=80, seed=s) for s in range(6)]
    box = boxes(*[(5, 5, 50, 70)] * 6)
    expected = resized_crops(images, box, (20, 24))
    failures = []

    def work():
        for _ in range(5):
            if not np.array_equal(resized_crops(images, box, (20, 24)), expected):
                failures.append(1)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 30), st.integers(1, 30), st.data())
def test_a_channels_last_photo_is_read_in_place_with_the_same_bytes(height, width, out_h, out_w, data):
    """Decoded photos are (H, W, 3) in memory: Pillow reads the box's rows in place (row
    stride), including boxes at the image's last row and column, and the output planes equal
    cropping first and resizing with Pillow, flipped or not."""
    hwc = np.random.default_rng(height * 100 + width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    bh, bw = data.draw(st.integers(1, height)), data.draw(st.integers(1, width))
    top, left = data.draw(st.integers(0, height - bh)), data.draw(st.integers(0, width - bw))
    flip = data.draw(st.booleans())
    got = resized_crops(
        [hwc.transpose(2, 0, 1)], boxes((top, left, bh, bw)), (out_h, out_w), flips=np.array([flip])
    )[0]
    crop = Image.fromarray(np.ascontiguousarray(hwc[top : top + bh, left : left + bw]))
    expected = np.asarray(crop.resize((out_w, out_h), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_array_equal(got, expected[..., ::-1] if flip else expected)
