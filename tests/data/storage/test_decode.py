"""Decoding image files: both decoders against Pillow's (torchvision's) output, bad input, bombs."""

from __future__ import annotations

import io
import os
import pickle
import struct
import threading

import numpy as np
import pytest
from PIL import Image

from support.fifo import without_hanging
from support.images import bomb, broken, damaged_dds, encode, jpeg, picture, pillow_rgb, variants
from tinytorch.data.storage.decode import (
    MAX_IMAGE_PIXELS,
    ImageDecodeError,
    ImageDecoder,
    ImageTooLargeError,
    decode_image,
    fast_decoder_available,
    image_to_chw,
    read_file,
    read_image,
)

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

needs_simplejpeg = pytest.mark.skipif(not fast_decoder_available(), reason="simplejpeg not installed")
DECODERS = ["pillow", pytest.param("simplejpeg", marks=needs_simplejpeg)]
FILES = variants()


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", sorted(FILES))
def test_every_kind_decodes_to_what_torchvisions_loader_gives(decoder, name):
    # Pillow's convert("RGB") is torchvision's pil_loader; simplejpeg uses the same libjpeg-turbo
    # settings (accurate IDCT, fancy upsampling), so the bytes match exactly here.
    out = decode_image(FILES[name], decoder=decoder)
    expected = pillow_rgb(FILES[name])
    assert out.dtype == np.uint8
    assert out.shape == expected.shape
    assert out.shape[0] == 3
    np.testing.assert_array_equal(out, expected)


def test_channel_order_is_rgb_channels_first():
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red
    rgb[..., 2] = 10
    out = decode_image(encode(Image.fromarray(rgb), "PNG"))
    assert out.shape == (3, 4, 6)
    assert (out[0] == 200).all()
    assert (out[1] == 0).all()
    assert (out[2] == 10).all()


def test_grayscale_becomes_three_equal_channels_and_alpha_is_dropped():
    gray = decode_image(FILES["gray.png"])
    np.testing.assert_array_equal(gray[0], gray[1])
    np.testing.assert_array_equal(gray[1], gray[2])
    with Image.open(io.BytesIO(FILES["alpha.png"])) as image:
        rgb = np.asarray(image)[..., :3].transpose(2, 0, 1)
    np.testing.assert_array_equal(decode_image(FILES["alpha.png"]), rgb)  # not composited


@needs_simplejpeg
def test_decoders_agree_on_jpegs_of_many_sizes():
    for height, width in [(1, 1), (7, 9), (32, 32), (31, 65), (120, 90)]:
        data = jpeg(height, width, seed=height)
        fast = decode_image(data, decoder="simplejpeg")
        slow = decode_image(data, decoder="pillow")
        assert fast.shape == (3, height, width)
        # Same library, same settings: equal; a tolerance would hide a channel-order bug.
        np.testing.assert_array_equal(fast, slow)
        # And both are close to the picture that was encoded (quality 90).
        source = picture(height, width, seed=height).transpose(2, 0, 1).astype(int)
        assert np.abs(fast.astype(int) - source).mean() < 8


@pytest.mark.parametrize("decoder", DECODERS)
def test_decode_size_scales_jpegs_by_a_power_of_two(decoder):
    data = jpeg(64, 96)
    full = decode_image(data, decoder=decoder)
    assert decode_image(data, decoder=decoder, decode_size=16).shape == (3, 16, 24)  # 1/4
    assert decode_image(data, decoder=decoder, decode_size=(30, 40)).shape == (3, 32, 48)  # 1/2
    assert decode_image(data, decoder=decoder, decode_size=(33, 10)).shape == (3, 64, 96)  # none fits
    assert decode_image(data, decoder=decoder, decode_size=1).shape == (3, 8, 12)  # 1/8 at most
    np.testing.assert_array_equal(decode_image(data, decoder=decoder, decode_size=64), full)
    # odd sizes round up, as libjpeg does
    assert decode_image(jpeg(33, 47), decoder=decoder, decode_size=16).shape == (3, 17, 24)
    # not JPEG: decoded in full
    assert decode_image(FILES["alpha.png"], decoder=decoder, decode_size=4).shape == (3, 20, 30)


@needs_simplejpeg
def test_decode_size_gives_the_same_pixels_on_both_paths():
    for name in ("big.jpg", "progressive.jpg", "gray.jpg"):
        fast = decode_image(FILES[name], decoder="simplejpeg", decode_size=8)
        slow = decode_image(FILES[name], decoder="pillow", decode_size=8)
        np.testing.assert_array_equal(fast, slow)


def test_scaled_decode_is_close_to_a_downscaled_full_decode():
    data = jpeg(64, 96)
    half = decode_image(data, decode_size=32).astype(float)
    full = decode_image(data).astype(float)
    pooled = full.reshape(3, 32, 2, 48, 2).mean(axis=(2, 4))
    assert np.abs(half - pooled).mean() < 4  # not exact: the IDCT does the filtering


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", sorted(broken()))
def test_broken_files_raise_decode_errors_naming_the_file(decoder, name, tmp_path):
    path = tmp_path / name
    path.write_bytes(broken()[name])
    with pytest.raises(ImageDecodeError) as info:
        read_image(path, decoder=decoder)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)
    assert isinstance(info.value, OSError)  # as Pillow's UnidentifiedImageError is


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 65_537, 200_000, 3 << 20])
def test_read_file_returns_every_byte(tmp_path, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert read_file(str(path)) == data


def test_error_messages_say_what_is_wrong(tmp_path):
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageDecodeError, match="not in any format Pillow reads"):
        decode_image(b"hello")
    with pytest.raises(ImageDecodeError, match="could not be read.*exists"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageDecodeError, match="could not be read"):
        read_image(tmp_path)  # a directory


def test_a_fifo_or_a_device_is_refused_not_read(tmp_path):
    """Hostile-tester item 4: a FIFO hung the read forever, a link to /dev/zero read until
    MemoryError. (/dev/null stands in for /dev/zero: the same rule, and a regression ends.)"""
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageDecodeError, match=r"x\.png could not be read \(it is a FIFO") as info:
        without_hanging(lambda: read_image(fifo), [fifo])
    assert info.value.path == str(fifo)
    assert isinstance(info.value.__cause__, OSError)
    os.symlink(os.devnull, tmp_path / "zero.png")
    with pytest.raises(ImageDecodeError, match=r"zero\.png could not be read \(it is a character device"):
        read_image(tmp_path / "zero.png")


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_error_a_decoder_raises_for_the_content_is_an_image_decode_error(decoder):
    """Hostile-tester item 5: a damaged file that Pillow takes for DDS raised NotImplementedError
    ("Unknown pixel format flags"), which on_error="skip" did not skip."""
    with pytest.raises(ImageDecodeError, match=r"x\.png could not be decoded.*NotImplementedError") as info:
        ImageDecoder.resolve(decoder)(damaged_dds(), "x.png")
    assert isinstance(info.value.__cause__, NotImplementedError)
    assert info.value.path == "x.png"

    def out_of_memory(*args):
        raise MemoryError

    decode = ImageDecoder.resolve(decoder)
    decode_anything = ImageDecoder("pillow")
    object.__setattr__(decode_anything, "_pillow", out_of_memory)
    with pytest.raises(MemoryError):  # the machine's state, not the file's: never skipped
        decode_anything(encode(Image.fromarray(picture(4, 4)), "PNG"), "x.png")
    with pytest.raises(TypeError, match="read_image"):
        decode("x.png")  # type: ignore[arg-type]


@needs_simplejpeg
def test_a_jpeg_simplejpeg_refuses_falls_back_to_pillow():
    good = FILES["rgb.jpg"]
    # Extra bytes before a marker: libjpeg warns ("Corrupt JPEG data"), simplejpeg's strict mode
    # refuses, Pillow (torchvision) decodes. We must decode it as Pillow does, not fail.
    at = good.rindex(b"\xff\xd9")
    damaged = good[:at] + b"\x00\x00" + good[at:]
    np.testing.assert_array_equal(decode_image(damaged, decoder="simplejpeg"), pillow_rgb(damaged))


def _jpeg_declaring(width, height):
    data = bytearray(jpeg(8, 8))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)  # SOF0: length(2) precision(1) height width
    return bytes(data)


@pytest.mark.parametrize("decoder", DECODERS)
def test_decompression_bombs_are_refused_from_the_header(decoder):
    with pytest.raises(ImageTooLargeError, match="10000x10000") as info:
        decode_image(_jpeg_declaring(10_000, 10_000), decoder=decoder)
    assert "max_pixels" in str(info.value)
    with pytest.raises(ImageTooLargeError, match="decompression"):
        decode_image(_jpeg_declaring(60_000, 60_000), decoder=decoder)
    with pytest.raises(ImageTooLargeError, match="decompression"):
        decode_image(bomb(20_000, 20_000), decoder=decoder)  # Pillow's own limit (2x) is hit first
    with pytest.raises(ImageTooLargeError, match="10000x10000"):
        decode_image(bomb(10_000, 10_000), decoder=decoder)  # Pillow only warns at 1x-2x; we refuse


def test_max_pixels_is_the_callers_choice():
    data = jpeg(30, 44)
    with pytest.raises(ImageTooLargeError, match="1,320 pixels, more than the limit of 1,000"):
        decode_image(data, max_pixels=1000)
    assert decode_image(data, max_pixels=1320).shape == (3, 30, 44)
    assert decode_image(data, max_pixels=None).shape == (3, 30, 44)
    assert MAX_IMAGE_PIXELS == Image.MAX_IMAGE_PIXELS  # documented as Pillow's default


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="decoder must be"):
        decode_image(FILES["rgb.jpg"], decoder="cv2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decode_size"):
        decode_image(FILES["rgb.jpg"], decode_size=0)
    with pytest.raises(ValueError, match="decode_size"):
        decode_image(FILES["rgb.jpg"], decode_size=(1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pixels"):
        decode_image(FILES["rgb.jpg"], max_pixels=0)


def test_simplejpeg_missing_says_how_to_install(monkeypatch):
    import tinytorch.data.storage.decode as decode

    monkeypatch.setattr(decode, "fast_decoder_available", lambda: False)
    with pytest.raises(ImportError, match=r"tinytorch-data\[images\]"):
        ImageDecoder.resolve("simplejpeg")
    assert ImageDecoder.resolve("auto").decoder == "pillow"


def test_decoder_pickles_and_errors_keep_their_fields():
    decoder = ImageDecoder.resolve("auto", 16, 1000)
    assert pickle.loads(pickle.dumps(decoder)) == decoder
    error = pickle.loads(pickle.dumps(ImageTooLargeError("big", path="/a.jpg", index=3)))
    assert type(error) is ImageTooLargeError
    assert (str(error), error.path, error.index) == ("big", "/a.jpg", 3)


def test_decoding_is_thread_safe_and_deterministic():
    data = [jpeg(40 + k, 50, seed=k) for k in range(8)]
    expected = [decode_image(d) for d in data]
    results: list[list[np.ndarray]] = [[] for _ in range(4)]

    def work(slot):
        results[slot] = [decode_image(d) for d in data for _ in range(3)][::3]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)


class TestImageToChw:
    def test_pil_images_keep_their_mode(self):
        rgb = Image.fromarray(picture(5, 7))
        assert image_to_chw(rgb).shape == (3, 5, 7)
        assert image_to_chw(rgb.convert("L")).shape == (1, 5, 7)
        assert image_to_chw(rgb.convert("RGBA")).shape == (4, 5, 7)
        np.testing.assert_array_equal(image_to_chw(rgb), picture(5, 7).transpose(2, 0, 1))

    def test_arrays_and_tensors(self):
        import torch

        chw = np.zeros((3, 5, 7), dtype=np.uint8)
        assert image_to_chw(chw) is chw
        assert image_to_chw(np.zeros((5, 7))).shape == (1, 5, 7)
        assert image_to_chw(torch.zeros(3, 5, 7, dtype=torch.uint8)).shape == (3, 5, 7)

    def test_channels_last_is_refused_with_the_fix(self):
        with pytest.raises(TypeError, match=r"transpose\(2, 0, 1\)"):
            image_to_chw(np.zeros((5, 7, 3)), "/x.jpg")
        with pytest.raises(TypeError, match="shape"):
            image_to_chw(np.zeros((2, 3, 4, 5)))
