"""ImageFolder: torchvision's listing, the batched read, bad files, and the decode threads' lifecycle."""

from __future__ import annotations

import gc
import os
import pickle
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support.fifo import without_hanging
from support.images import (
    ORDER_FILES,
    TORCHVISION_ORDER,
    bomb,
    broken,
    damaged_dds,
    jpeg,
    pillow_rgb,
    variants,
    write_folder,
)
from tinytorch.data import (
    DataLoader,
    ImageDecodeError,
    ImageFolder,
    ImageTooLargeError,
    SkippedImageWarning,
    get_worker_info,
)
from tinytorch.data.cpus import available_cores
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.seeding import BatchContext, Stream, batch_context, derive_rng, get_batch_context
from tinytorch.data.storage.decode import IMG_EXTENSIONS


def decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("tinytorch-decode")]


@pytest.fixture
def same_size(tmp_path):
    """Three classes of 32x32 JPEGs (CIFAR-like): 5 + 4 + 3 files."""
    files = {
        cls: {f"{k:03d}.jpg": jpeg(32, 32, seed=10 * c + k) for k in range(n)}
        for c, (cls, n) in enumerate([("cat", 5), ("dog", 4), ("frog", 3)])
    }
    return write_folder(tmp_path / "same", files)


@pytest.fixture
def mixed(tmp_path):
    """Every kind of file the decoders handle, in two classes, several sizes."""
    kinds = variants()
    names = sorted(kinds)
    files = {"a": {n: kinds[n] for n in names[::2]}, "b": {n: kinds[n] for n in names[1::2]}}
    return write_folder(tmp_path / "mixed", files)


# -- listing: torchvision's rules (the rules themselves: test_folder_listing.py) ------------------


def test_classes_samples_and_order_match_torchvision(tmp_path):
    for name in ORDER_FILES:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["C_upper", "a_class", "b_class"]
    assert ds.class_to_idx == {"C_upper": 0, "a_class": 1, "b_class": 2}
    relative = [(os.path.relpath(p, tmp_path), t) for p, t in ds.samples]
    assert relative == TORCHVISION_ORDER
    assert ds.imgs == ds.samples
    assert ds.targets.dtype == np.int64
    assert ds.targets.tolist() == [t for _, t in TORCHVISION_ORDER]
    assert len(ds) == len(TORCHVISION_ORDER)
    assert ds.samples[0][0] == os.path.join(str(tmp_path), "C_upper", "k.bmp")  # torchvision's join
    assert ds.extensions == IMG_EXTENSIONS


def test_file_names_that_are_not_utf8_are_kept(tmp_path):
    (tmp_path / "cat").mkdir()
    name = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: a surrogate escape in Python's str
    (tmp_path / "cat" / name).write_bytes(jpeg(8, 8))
    ds = ImageFolder(tmp_path)
    assert ds.samples == [(os.path.join(str(tmp_path), "cat", name), 0)]
    assert ds[0][0].shape == (3, 8, 8)
    assert ds.__getitems__([0]).collated()[0].shape == (1, 3, 8, 8)


def test_is_valid_file_and_extensions_select_files(tmp_path):
    for name in ORDER_FILES:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    only_jpg = ImageFolder(tmp_path, extensions=(".jpg",), allow_empty=True)
    assert [os.path.basename(p) for p, _ in only_jpg.samples] == [
        ".hidden.jpg", "A.JPG", "a.jpg", "z.jpg", "v.jpg", "w.jpg",
    ]  # fmt: skip
    chosen = ImageFolder(tmp_path, is_valid_file=lambda p: p.endswith("png"), allow_empty=True)
    assert [os.path.basename(p) for p, _ in chosen.samples] == ["10.png", "2.png", "y.png"]
    with pytest.raises(ValueError, match="Both extensions and is_valid_file"):
        ImageFolder(tmp_path, is_valid_file=lambda p: True, extensions=(".jpg",))


def test_samples_can_be_reassigned_as_in_torchvision(same_size):
    ds = ImageFolder(same_size)
    ds.samples = [s for s in ds.samples if s[1] != 0]
    assert len(ds) == 7
    assert ds.targets.tolist() == [1] * 4 + [2] * 3
    image, target = ds[0]
    assert target == 1
    np.testing.assert_array_equal(image, pillow_rgb((same_size / "dog" / "000.jpg").read_bytes()))


def test_samples_and_targets_cannot_drift_apart(same_size):
    ds = ImageFolder(same_size)
    with pytest.raises(TypeError, match="assign a new list"):
        ds.samples[0] = (ds.samples[0][0], 2)  # torchvision would silently keep reading label 0
    with pytest.raises(TypeError, match="assign a new list"):
        ds.samples.append(ds.samples[0])
    with pytest.raises(ValueError, match="read-only"):
        ds.targets[0] = 2
    ds.targets = [9] * len(ds)  # relabelling takes effect in reads and in samples
    assert ds[0][1] == 9
    assert ds.__getitems__([0, 11]).collated()[1].tolist() == [9, 9]
    assert ds.samples[0][1] == 9
    with pytest.raises(ValueError, match="one label per sample"):
        ds.targets = [1, 2]
    assert isinstance(ds.samples, list)  # still a list to read


def test_listing_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.jpg").write_bytes(jpeg(4, 4))
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder.*root/<class>/<image>"):
        ImageFolder(tmp_path / "flat")
    root = write_folder(tmp_path / "r", {"cat": {"1.jpg": jpeg(4, 4)}, "dog": {"a.txt": b"x"}, "emu": {}})
    with pytest.raises(
        FileNotFoundError, match=r"Found no valid file for the classes dog, emu\. Supported"
    ) as e:
        ImageFolder(root)
    assert "allow_empty=True" in str(e.value)
    ds = ImageFolder(root, allow_empty=True)
    assert ds.classes == ["cat", "dog", "emu"]
    assert len(ds) == 1


def test_an_extension_pillow_cannot_decode_is_refused(tmp_path):
    root = write_folder(tmp_path, {"cat": {"1.heic": b"x"}})
    with pytest.raises(ValueError, match=r"cannot decode files ending in '\.heic'.*loader="):
        ImageFolder(root, extensions=(".heic",))
    ds = ImageFolder(root, extensions=(".heic",), loader=lambda p: np.zeros((3, 2, 2), np.uint8))
    assert ds[0][0].shape == (3, 2, 2)


def test_bad_arguments(same_size):
    with pytest.raises(ValueError, match="on_error must be"):
        ImageFolder(same_size, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decoder must be"):
        ImageFolder(same_size, decoder="opencv")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ImageFolder(same_size, num_threads=1.5)  # type: ignore[arg-type]


# -- reading ------------------------------------------------------------------------------------


def test_getitem_is_torchvisions_loader_output_as_chw(mixed):
    ds = ImageFolder(mixed, num_threads=0)
    for i, (path, target) in enumerate(ds.samples):
        image, label = ds[i]
        assert label == target
        assert isinstance(label, int)
        assert image.dtype == np.uint8
        assert image.shape[0] == 3
        np.testing.assert_array_equal(image, pillow_rgb(Path(path).read_bytes()))
    with pytest.raises(IndexError):
        ds[len(ds)]
    np.testing.assert_array_equal(ds[-1][0], ds[len(ds) - 1][0])


def test_a_batch_of_mixed_sizes_is_a_list_of_samples(mixed):
    ds = ImageFolder(mixed, num_threads=2)
    batch = ds.__getitems__([3, 0, 5, 3])
    assert isinstance(batch, list)
    for (image, target), i in zip(batch, [3, 0, 5, 3], strict=True):
        expected_image, expected_target = ds[i]
        np.testing.assert_array_equal(image, expected_image)
        assert target == expected_target
    ds.close()


def test_a_batch_of_one_size_comes_back_stacked(same_size):
    ds = ImageFolder(same_size, num_threads=2)
    indices = np.array([11, 0, 4, 7, 7])
    batch = ds.__getitems__(indices)
    assert isinstance(batch, StackedSamples)
    images, targets = batch.collated()
    assert images.shape == (5, 3, 32, 32)
    assert images.dtype == np.uint8
    assert images.flags.c_contiguous
    assert targets.dtype == np.int64
    assert targets.tolist() == [2, 0, 0, 1, 1]
    for k, i in enumerate(indices):
        np.testing.assert_array_equal(images[k], ds[int(i)][0])
    ds.close()


@pytest.mark.parametrize("threads", [0, 1, 2, 5])
def test_the_bytes_do_not_depend_on_the_number_of_threads(mixed, same_size, threads):
    for root in (mixed, same_size):
        reference = ImageFolder(root, num_threads=0)
        ds = ImageFolder(root, num_threads=threads)
        order = np.random.default_rng(1).permutation(len(ds))
        got, want = ds.__getitems__(order), reference.__getitems__(order)
        for (a, ta), (b, tb) in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
            assert ta == tb
        ds.close()


def test_loader_batches_are_the_same_for_any_workers(same_size):
    def epoch(**kwargs):
        with ImageFolder(same_size, num_threads=2) as ds:
            loader = DataLoader(ds, batch_size=4, shuffle=True, seed=3, **kwargs)
            batches = [(x.copy(), y.copy()) for x, y in loader]
            loader.close()
        return batches

    reference = epoch()
    assert [x.shape for x, _ in reference] == [(4, 3, 32, 32)] * 3
    for kwargs in ({"num_workers": 2, "worker_type": "thread"}, {"num_workers": 2, "worker_type": "process"}):
        for (a, ya), (b, yb) in zip(epoch(**kwargs), reference, strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(ya, yb)


def test_spawned_workers_get_the_dataset_without_its_threads(same_size):
    with ImageFolder(same_size, num_threads=2) as ds:
        reference = ds.__getitems__(list(range(len(ds)))).collated()[0]  # threads running here
        loader = DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="spawn")
        images = np.concatenate([x for x, _ in loader])
        loader.close()
    np.testing.assert_array_equal(images, reference)


def test_per_sample_transforms_get_their_samples_generator(same_size):
    def jitter(image):
        rng = get_batch_context().rng
        return image.astype(np.int16) + rng.integers(-3, 4)

    def epoch(workers):
        ds = ImageFolder(same_size, transform=jitter, target_transform=lambda t: t * 10)
        loader = DataLoader(ds, batch_size=5, seed=1, collate_fn=list, num_workers=workers)
        out = [s for batch in loader for s in batch]
        ds.close()
        return out

    zero, two = epoch(0), epoch(2)
    for (a, ta), (b, tb) in zip(zero, two, strict=True):
        np.testing.assert_array_equal(a, b)
        assert ta == tb
    # each sample drew from its own stream (seed, epoch 0, batch, position), in the decode threads
    plain = ImageFolder(same_size, num_threads=0)
    for i, (image, _) in enumerate(zero):
        shift = derive_rng(1, Stream.SAMPLE, 0, i // 5, i % 5).integers(-3, 4)
        np.testing.assert_array_equal(image, plain[i][0].astype(np.int16) + shift)
    assert [t for _, t in zero] == [0] * 5 + [10] * 4 + [20] * 3


def test_decode_size_and_decoder_reach_the_decoder(tmp_path):
    root = write_folder(tmp_path, {"x": {"big.jpg": jpeg(64, 96), "small.png": variants()["alpha.png"]}})
    ds = ImageFolder(root, decode_size=16, decoder="pillow")
    assert ds[0][0].shape == (3, 16, 24)
    assert ds[1][0].shape == (3, 20, 30)  # not a JPEG: full size


def test_a_user_loader_returning_pil_or_arrays(same_size):
    pil = ImageFolder(same_size, loader=lambda p: Image.open(p).convert("L"))
    assert pil[0][0].shape == (1, 32, 32)
    stacked = pil.__getitems__([0, 1])
    assert stacked.collated()[0].shape == (2, 1, 32, 32)
    channels_last = ImageFolder(same_size, loader=lambda p: np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(TypeError, match="channels-last"):
        channels_last[0]
    with pytest.raises(TypeError, match="channels-last"):  # a bug in the loader is never skipped
        ImageFolder(same_size, on_error="skip", loader=channels_last.loader).__getitems__([0, 1])


# -- bad files ----------------------------------------------------------------------------------


@pytest.fixture
def with_bad_files(tmp_path):
    bad = broken()
    files = {
        "a": {"0_good.jpg": jpeg(32, 32, seed=1), "1_truncated.jpg": bad["truncated.jpg"]},
        "b": {"0_empty.jpg": bad["empty.jpg"], "1_good.jpg": jpeg(32, 32, seed=2)},
        "c": {"0_text.png": bad["not_an_image.jpg"], "1_good.jpg": jpeg(32, 32, seed=3)},
    }
    return write_folder(tmp_path, files)


def test_a_bad_file_names_the_file_and_the_sample_index(with_bad_files):
    ds = ImageFolder(with_bad_files, num_threads=2)
    with pytest.raises(ImageDecodeError, match=r"^sample 1: .*1_truncated\.jpg could not be decoded") as e:
        ds[1]
    assert (e.value.index, e.value.path) == (1, ds.samples[1][0])
    # the first bad file in batch order, whatever the threads finish first
    with pytest.raises(ImageDecodeError, match=r"^sample 4: .*0_text\.png") as e:
        ds.__getitems__([0, 3, 4, 1, 2])
    assert e.value.index == 4
    with pytest.raises(ImageDecodeError, match=r"sample 2: .*0_empty\.jpg is empty"):
        ds.__getitems__([2])
    ds.close()


def test_a_bad_file_in_a_loader_is_raised_with_its_index(with_bad_files):
    ds = ImageFolder(with_bad_files)
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=2, num_workers=workers)
        with pytest.raises(ImageDecodeError, match=r"sample 1: .*1_truncated\.jpg"):
            list(loader)
    ds.close()


def test_skip_leaves_bad_files_out_and_counts_them(with_bad_files):
    ds = ImageFolder(with_bad_files, on_error="skip", num_threads=2)
    context = BatchContext(seed=0, epoch=0, batch_index=0)
    with batch_context(context), pytest.warns(SkippedImageWarning) as record:
        batch = ds.__getitems__([0, 1, 2, 3, 4, 5])
    messages = [str(w.message) for w in record]
    assert [m.split(":")[0] for m in messages] == ["skipped sample 1", "skipped sample 2", "skipped sample 4"]
    assert "1_truncated.jpg" in messages[0]
    assert context.skipped == 3
    images, targets = batch.collated()
    # never replaced by another sample: exactly the good ones, in order, with their own labels
    assert targets.tolist() == [0, 1, 2]
    for k, i in enumerate([0, 3, 5]):
        np.testing.assert_array_equal(images[k], pillow_rgb(Path(ds.samples[i][0]).read_bytes()))
    with pytest.raises(ImageDecodeError):  # a single sample cannot be skipped
        ds[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImageWarning)
        assert ds.__getitems__([1, 2]) == []  # every file bad: an empty batch
    ds.close()


def test_skip_keeps_each_samples_randomness(with_bad_files):
    positions = []

    def record(image):
        positions.append(get_batch_context().position)
        return image

    ds = ImageFolder(with_bad_files, on_error="skip", transform=record, num_threads=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedImageWarning)
        with batch_context(BatchContext(0, 0, 0)):
            ds.__getitems__([0, 1, 2, 3, 4, 5])
    assert positions == [0, 3, 5]  # the samples' positions in the requested batch


@pytest.fixture
def with_special_files(tmp_path):
    """Hostile-tester items 4 and 5: a FIFO hung the read forever (even with on_error="skip"), a
    link to a device read until MemoryError, a damaged file Pillow takes for DDS raised a raw
    NotImplementedError. (/dev/null stands in for /dev/zero: the same rule, and it ends.)"""
    root = write_folder(tmp_path, {"a": {"0.jpg": jpeg(8, 8, seed=1), "3.jpg": jpeg(8, 8, seed=2)}})
    os.mkfifo(root / "a" / "1_fifo.png")
    os.symlink(os.devnull, root / "a" / "2_device.png")
    (root / "a" / "4_dds.png").write_bytes(damaged_dds())
    return root


def test_fifos_devices_and_every_decoder_error_are_bad_files(with_special_files):
    fifo = with_special_files / "a" / "1_fifo.png"
    ds = ImageFolder(with_special_files, num_threads=2)
    assert [Path(p).name for p, _ in ds.samples] == [
        "0.jpg",
        "1_fifo.png",
        "2_device.png",
        "3.jpg",
        "4_dds.png",
    ]
    expected = {
        1: r"^sample 1: .*1_fifo\.png could not be read \(it is a FIFO \(named pipe\), not a regular file\)",
        2: r"^sample 2: .*2_device\.png could not be read \(it is a character device",
        4: r"^sample 4: .*4_dds\.png could not be decoded as an image \(NotImplementedError",
    }
    for i, match in expected.items():
        with pytest.raises(ImageDecodeError, match=match) as e:
            without_hanging(lambda i=i: ds.__getitems__([0, i]), [fifo])
        assert (e.value.index, e.value.path) == (i, ds.samples[i][0])
        assert e.value.__cause__ is not None
    skipping = ImageFolder(with_special_files, on_error="skip", num_threads=2)
    with pytest.warns(SkippedImageWarning) as record:
        batch = without_hanging(lambda: skipping.__getitems__(range(5)), [fifo])
    assert [str(w.message).split(":")[0] for w in record] == [f"skipped sample {i}" for i in (1, 2, 4)]
    assert batch.collated()[0].shape == (2, 3, 8, 8)
    ds.close()
    skipping.close()


def test_a_user_loader_is_never_given_a_fifo_and_its_file_errors_are_bad_files(with_special_files):
    fifo = with_special_files / "a" / "1_fifo.png"

    def pil_loader(path):  # torchvision's
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")

    ds = ImageFolder(with_special_files, loader=pil_loader, on_error="skip", num_threads=0)
    with pytest.warns(SkippedImageWarning) as record:
        batch = without_hanging(lambda: ds.__getitems__(range(5)), [fifo])
    messages = [str(w.message) for w in record]
    assert "1_fifo.png could not be read (it is a FIFO" in messages[0]
    assert "the loader failed on" in messages[2]
    assert "NotImplementedError" in messages[2]
    assert len(batch.collated()[0]) == 2

    def buggy(path):
        raise AttributeError("a bug in the loader")

    with pytest.raises(AttributeError, match="a bug in the loader"):  # never skipped as a bad file
        ImageFolder(with_special_files, loader=buggy, on_error="skip", num_threads=0).__getitems__([0])


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_in_a_folder_are_refused(tmp_path):
    root = write_folder(
        tmp_path, {"a": {"ok.png": variants()["alpha.png"], "zbomb.png": bomb(10_000, 10_000)}}
    )
    ds = ImageFolder(root)
    with pytest.raises(ImageTooLargeError, match=r"sample 1: .*zbomb\.png declares 10000x10000"):
        ds.__getitems__([0, 1])


# -- the decode threads: lifecycle --------------------------------------------------------------


def test_no_thread_before_the_first_batch_and_close_stops_them(same_size):
    ds = ImageFolder(same_size, num_threads=2)
    assert ds._threads._executor is None
    ds[0]
    assert ds._threads._executor is None  # a single read decodes in the calling thread
    ds.__getitems__(list(range(8)))
    threads = list(ds._threads._executor._threads)
    assert threads
    assert all(t.is_alive() and t.name.startswith("tinytorch-decode") for t in threads)
    ds.close()
    assert not any(t.is_alive() for t in threads)  # close() waits for them
    ds.__getitems__(list(range(8)))  # usable again after close
    again = list(ds._threads._executor._threads)
    with ds:
        pass
    assert not any(t.is_alive() for t in again)


def test_garbage_collection_stops_the_threads(same_size):
    ds = ImageFolder(same_size, num_threads=2)
    ds.__getitems__(list(range(8)))
    threads = list(ds._threads._executor._threads)
    assert threads
    assert all(t.is_alive() for t in threads)
    del ds
    gc.collect()
    for t in threads:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in threads)


def test_pickling_carries_the_settings_not_the_threads(same_size):
    ds = ImageFolder(same_size, num_threads=3, decode_size=16)
    first = ds.__getitems__([0, 1, 2]).collated()[0]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.num_threads == 3
    assert not copy._threads.running
    assert copy.decode == ds.decode
    assert copy.samples == ds.samples
    np.testing.assert_array_equal(copy.__getitems__([0, 1, 2]).collated()[0], first)
    ds.close()
    copy.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_no_decode_thread_lives_across_a_fork(same_size):
    ds = ImageFolder(same_size, num_threads=2)
    ds.__getitems__(list(range(8)))
    assert ds._threads.running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no decode thread was inherited, and the dataset still reads
        try:
            ok = not decode_threads() and ds.__getitems__([0, 1]).collated()[0].shape == (2, 3, 32, 32)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    os.close(read)
    assert status == 0
    assert not ds._threads.running  # the parent stopped its idle pool before forking...
    ds.__getitems__(list(range(8)))  # ...and starts it again when needed
    assert ds._threads.running
    ds.close()


def _decode_threads_here(samples):
    return get_worker_info().dataset.num_threads


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_process_workers_split_the_cores_among_their_decode_threads(same_size, kind):
    """A folder read by 2 process workers decoded with a thread per core in each (4 decoders on
    2 cores); the default now gives each worker its share."""
    cores = available_cores()
    loader = DataLoader(
        ImageFolder(same_size), batch_size=2, num_workers=2, worker_type=kind, collate_fn=_decode_threads_here
    )
    expected = max(1, min(8, cores // 2)) if kind == "process" else min(8, cores)
    assert set(loader) == {expected}
    assert ImageFolder(same_size).num_threads == min(8, cores)
    assert ImageFolder(same_size, num_threads=3).num_threads == 3  # asked for: kept everywhere
