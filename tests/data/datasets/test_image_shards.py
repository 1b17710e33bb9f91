"""ImageShards: an image folder written as encoded shards reads back as the folder does."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import warnings

import numpy as np
import pytest

from support.images import broken, jpeg, variants, write_folder
from tinytorch.data import (
    CorruptShardError,
    DataLoader,
    ImageDecodeError,
    ImageFolder,
    ImageShards,
    ImageTooLargeError,
    ShardError,
    SkippedImageWarning,
    WindowedShuffleSampler,
    write_image_shards,
    write_shards,
)
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.seeding import BatchContext, batch_context, get_batch_context
from tinytorch.data.storage.shards import MANIFEST
from tinytorch.data.transforms.compose import Compose
from tinytorch.data.transforms.image import RandomHorizontalFlip
from tinytorch.data.transforms.resize import RandomResizedCrop


@pytest.fixture
def mixed(tmp_path):
    """Every kind of file the decoders handle, in three classes, several sizes."""
    kinds = variants()
    names = sorted(kinds)
    files = {
        "a": {n: kinds[n] for n in names[::3]},
        "b": {n: kinds[n] for n in names[1::3]},
        "c": {n: kinds[n] for n in names[2::3]},
    }
    return write_folder(tmp_path / "mixed", files)


@pytest.fixture
def same_size(tmp_path):
    """Three classes of 32x32 JPEGs: 7 + 6 + 5 files."""
    files = {
        cls: {f"{k:03d}.jpg": jpeg(32, 32, seed=10 * c + k) for k in range(n)}
        for c, (cls, n) in enumerate([("cat", 7), ("dog", 6), ("frog", 5)])
    }
    return write_folder(tmp_path / "same", files)


def both(root, tmp_path, per_shard=3, **kwargs):
    write_image_shards(root, tmp_path / "shards", samples_per_shard=per_shard, progress=False)
    return ImageFolder(root, **kwargs), ImageShards(tmp_path / "shards", **kwargs)


def assert_same_samples(a, b):
    assert len(a) == len(b)
    for (x, tx), (y, ty) in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype
        assert tx == ty


# -- the same samples as the folder ---------------------------------------------------------------


def test_samples_are_byte_identical_to_the_folders(mixed, tmp_path):
    folder, shards = both(mixed, tmp_path, num_threads=2)
    assert shards.classes == folder.classes == ["a", "b", "c"]
    assert shards.class_to_idx == folder.class_to_idx
    assert shards.targets.dtype == np.int64
    np.testing.assert_array_equal(shards.targets, folder.targets)
    with pytest.raises(ValueError, match="read-only"):
        shards.targets[0] = 1
    assert shards.num_shards == 4  # 11 files, 3 a shard
    assert_same_samples([shards[i] for i in range(len(shards))], [folder[i] for i in range(len(folder))])
    order = np.random.default_rng(0).permutation(len(folder))
    batch = shards.__getitems__(order)  # mixed sizes: a list of samples, as the folder's
    assert isinstance(batch, list)
    assert_same_samples(batch, folder.__getitems__(order))
    np.testing.assert_array_equal(shards[-1][0], folder[len(folder) - 1][0])
    with pytest.raises(IndexError):
        shards[len(shards)]
    folder.close()
    shards.close()


def test_a_batch_of_one_size_is_stacked_as_the_folders(same_size, tmp_path):
    folder, shards = both(same_size, tmp_path, num_threads=2)
    indices = [17, 0, 4, 7, 7, 12]
    got, want = shards.__getitems__(indices), folder.__getitems__(indices)
    assert isinstance(got, StackedSamples)
    (x, y), (wx, wy) = got.collated(), want.collated()
    assert x.shape == (6, 3, 32, 32)
    assert x.flags.c_contiguous
    np.testing.assert_array_equal(x, wx)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, wy)
    folder.close()
    shards.close()


def test_the_same_transform_semantics_and_loader_batches(same_size, tmp_path):
    """A per-sample random transform draws the same numbers for a folder and its shards, for any
    workers; the windowed shuffle and random access give every sample once."""
    write_image_shards(same_size, tmp_path / "s", samples_per_shard=4, progress=False)
    crop = Compose([RandomResizedCrop(16, scale=(0.3, 1.0)), RandomHorizontalFlip()])

    def epoch(dataset, sampler=None, **kwargs):
        loader = DataLoader(dataset, batch_size=5, shuffle=sampler is None, sampler=sampler, seed=2, **kwargs)
        out = [(x.copy(), y.copy()) for x, y in loader]
        loader.close()
        return out

    folder = ImageFolder(same_size, transform=crop)
    reference = epoch(folder)
    assert reference[0][0].shape == (5, 3, 16, 16)
    for kwargs in ({}, {"num_workers": 2, "worker_type": "thread"}, {"num_workers": 2}):
        with ImageShards(tmp_path / "s", transform=crop) as shards:
            for (a, ya), (b, yb) in zip(epoch(shards, **kwargs), reference, strict=True):
                np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(ya, yb)
    shards = ImageShards(tmp_path / "s", max_open_shards=4)
    for workers in (0, 2):
        sampler = WindowedShuffleSampler(shards, 2, seed=1)
        labels = np.concatenate([y for _, y in epoch(shards, sampler, num_workers=workers)])
        assert sorted(labels.tolist()) == sorted(shards.targets.tolist())
    assert len(shards.shards.open_shards()) <= 4
    folder.close()
    shards.close()


def test_decoder_settings_are_the_folders(tmp_path):
    root = write_folder(
        tmp_path / "f", {"x": {"big.jpg": jpeg(64, 96), "small.png": variants()["alpha.png"]}}
    )
    folder, shards = both(root, tmp_path, decode_size=16, decoder="pillow")
    assert shards[0][0].shape == (3, 16, 24)
    assert_same_samples([shards[0], shards[1]], [folder[0], folder[1]])


def test_pickled_and_spawned_copies_read_the_same(same_size, tmp_path):
    folder, shards = both(same_size, tmp_path, num_threads=2)
    first = shards.__getitems__([0, 5, 9]).collated()[0]
    copy = pickle.loads(pickle.dumps(shards))
    assert not copy._threads.running
    np.testing.assert_array_equal(copy.__getitems__([0, 5, 9]).collated()[0], first)
    loader = DataLoader(shards, batch_size=6, num_workers=1, multiprocessing_context="spawn")
    images = np.concatenate([x for x, _ in loader])
    loader.close()
    np.testing.assert_array_equal(images, folder.__getitems__(list(range(len(folder)))).collated()[0])
    for ds in (folder, shards, copy):
        ds.close()


def test_shards_hold_the_bytes_labels_and_paths(same_size, tmp_path):
    write_image_shards(ImageFolder(same_size), tmp_path / "s", bytes_per_shard=4000, progress=False)
    raw = json.loads((tmp_path / "s" / MANIFEST).read_text())
    assert raw["metadata"] == {"classes": ["cat", "dog", "frog"]}
    assert [(f["name"], f["kind"]) for f in raw["fields"]] == [
        ("image", "bytes"),
        ("label", "array"),
        ("path", "str"),
    ]
    shards = ImageShards(tmp_path / "s")
    assert shards.num_shards > 1  # the size target split them
    record = shards.shards[8]
    assert record["image"] == (same_size / "dog" / "001.jpg").read_bytes()
    assert int(record["label"]) == 1
    assert record["path"] == os.path.join("dog", "001.jpg")


def test_a_shuffled_write_stores_the_folders_samples_in_a_seeded_order(same_size, tmp_path):
    folder = ImageFolder(same_size)
    write_image_shards(folder, tmp_path / "s", samples_per_shard=6, shuffle_seed=7, progress=False)
    shards = ImageShards(tmp_path / "s")
    order = np.random.default_rng(7).permutation(len(folder))
    assert sorted(order.tolist()) != order.tolist()
    assert shards.shards.metadata["shuffle_seed"] == 7
    np.testing.assert_array_equal(shards.targets, folder.targets[order])
    assert_same_samples([shards[i] for i in range(len(shards))], [folder[int(j)] for j in order])
    starts = shards.shard_starts.tolist()
    per_shard = [set(shards.targets[a:b].tolist()) for a, b in itertools.pairwise(starts)]
    assert all(len(classes) > 1 for classes in per_shard)  # in the folder's order, 2 of 3 hold one class
    with pytest.raises(TypeError, match="shuffle_seed"):
        write_image_shards(folder, tmp_path / "t", shuffle_seed=1.5, progress=False)


def test_an_image_folder_subset_and_names_that_are_not_utf8(tmp_path):
    root = tmp_path / "f"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    (root / "cat" / os.fsdecode(b"caf\xe9.jpg")).write_bytes(jpeg(8, 8))
    (root / "dog" / "d.jpg").write_bytes(jpeg(8, 8, seed=1))
    (root / "dog" / "skip.jpg").write_bytes(b"")
    folder = ImageFolder(root)
    folder.samples = [s for s in folder.samples if not s[0].endswith("skip.jpg")]
    write_image_shards(folder, tmp_path / "s", progress=False)
    shards = ImageShards(tmp_path / "s")
    assert len(shards) == 2
    assert shards.shards[0]["path"] == "cat/caf\\xe9.jpg"  # the undecodable byte kept visibly
    assert_same_samples([shards[0], shards[1]], [folder[0], folder[1]])


def test_empty_classes_are_kept_as_classes(tmp_path):
    root = write_folder(tmp_path / "f", {"a": {"1.jpg": jpeg(8, 8)}, "b": {}, "c": {"2.jpg": jpeg(8, 8)}})
    write_image_shards(ImageFolder(root, allow_empty=True), tmp_path / "s", progress=False)
    shards = ImageShards(tmp_path / "s")
    assert shards.classes == ["a", "b", "c"]
    assert shards.targets.tolist() == [0, 2]


# -- bad images: the same errors as the folder's --------------------------------------------------


@pytest.fixture
def with_bad_files(tmp_path):
    bad = broken()
    files = {
        "a": {"0_good.jpg": jpeg(32, 32, seed=1), "1_truncated.jpg": bad["truncated.jpg"]},
        "b": {"0_empty.jpg": bad["empty.jpg"], "1_good.jpg": jpeg(32, 32, seed=2)},
        "c": {"0_text.png": bad["not_an_image.jpg"], "1_good.jpg": jpeg(32, 32, seed=3)},
    }
    return write_folder(tmp_path / "bad", files)


def test_a_bad_image_in_a_shard_raises_what_the_bad_file_raises(with_bad_files, tmp_path):
    folder, shards = both(with_bad_files, tmp_path, num_threads=2)
    for indices, index in (([1], 1), ([0, 3, 4, 1, 2], 4), ([2], 2)):
        with pytest.raises(ImageDecodeError) as from_folder:
            folder.__getitems__(indices)
        with pytest.raises(ImageDecodeError) as from_shards:
            shards.__getitems__(indices)
        assert type(from_shards.value) is type(from_folder.value)
        assert from_shards.value.index == from_folder.value.index == index
        # the message: the sample, where its bytes are and the file they came from, the cause
        folder_text, shard_text = str(from_folder.value), str(from_shards.value)
        assert shard_text.startswith(f"sample {index}: {tmp_path / 'shards'}/shard-0000")
        relative = os.path.relpath(from_folder.value.path, with_bad_files)
        assert f"(from {relative})" in shard_text
        assert shard_text.split(relative + ")", 1)[1] == folder_text.split(relative, 1)[1]
    with pytest.raises(ImageDecodeError, match=r"^sample 1: .*row 1 \(from a/1_truncated\.jpg\)"):
        shards[1]
    for workers in (0, 2):
        loader = DataLoader(shards, batch_size=2, num_workers=workers)
        with pytest.raises(ImageDecodeError, match=r"sample 1: .*1_truncated\.jpg"):
            list(loader)
    folder.close()
    shards.close()


def test_skip_leaves_the_same_samples_out(with_bad_files, tmp_path):
    folder, shards = both(with_bad_files, tmp_path, on_error="skip", num_threads=2)
    for ds in (folder, shards):
        context = BatchContext(seed=0, epoch=0, batch_index=0)
        with batch_context(context), pytest.warns(SkippedImageWarning) as record:
            images, targets = ds.__getitems__([0, 1, 2, 3, 4, 5]).collated()
        assert [str(w.message).split(":")[0] for w in record] == [
            "skipped sample 1", "skipped sample 2", "skipped sample 4",
        ]  # fmt: skip
        assert context.skipped == 3
        assert targets.tolist() == [0, 1, 2]
        np.testing.assert_array_equal(images, folder.__getitems__([0, 3, 5]).collated()[0])
    positions = []

    def record_position(image):
        positions.append(get_batch_context().position)
        return image

    shards.transform = record_position
    with warnings.catch_warnings(), batch_context(BatchContext(0, 0, 0)):
        warnings.simplefilter("ignore", SkippedImageWarning)
        shards.__getitems__([0, 1, 2, 3, 4, 5])
    assert sorted(positions) == [0, 3, 5]  # a skipped sample shifts no other sample's randomness


def test_a_flipped_bit_is_caught_by_the_checksum_and_otherwise_by_the_decoder(same_size, tmp_path):
    write_image_shards(same_size, tmp_path / "s", samples_per_shard=100, progress=False)
    info = ImageShards(tmp_path / "s").shards.manifest.shards[0]
    path = tmp_path / "s" / info.file
    data = bytearray(path.read_bytes())
    start = info.offsets["image.data"]
    data[start : start + 40] = b"\0" * 40  # the first JPEG's header
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match="crc32"):
        ImageShards(tmp_path / "s")[0]
    with pytest.raises(
        ImageDecodeError, match=r"sample 0: .*row 0 \(from cat/000\.jpg\) could not be decoded"
    ):
        ImageShards(tmp_path / "s", verify="size")[0]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_in_shards_are_refused(tmp_path):
    from support.images import bomb

    root = write_folder(
        tmp_path / "f", {"a": {"ok.png": variants()["alpha.png"], "zbomb.png": bomb(10_000, 10_000)}}
    )
    write_image_shards(root, tmp_path / "s", progress=False)
    with pytest.raises(ImageTooLargeError, match=r"sample 1: .*\(from a/zbomb\.png\) declares 10000x10000"):
        ImageShards(tmp_path / "s").__getitems__([0, 1])


# -- what ImageShards refuses ----------------------------------------------------------------------


def test_shards_that_are_not_image_shards_say_how_to_make_them(tmp_path):
    write_shards([(b"x", 1)], tmp_path / "tuples", progress=False)
    with pytest.raises(
        ShardError, match=r"fields \['0', '1'\] \(tuple samples\), not encoded images.*convert imagefolder"
    ):
        ImageShards(tmp_path / "tuples")
    write_shards([{"image": b"x", "label": 1}], tmp_path / "nameless", progress=False)
    with pytest.raises(ShardError, match=r"no class names.*metadata=\{'classes'"):
        ImageShards(tmp_path / "nameless")
    write_shards(
        [{"image": b"x", "label": 1.5}], tmp_path / "floats", metadata={"classes": ["a"]}, progress=False
    )
    with pytest.raises(CorruptShardError, match="field 'label' is array float64"):
        ImageShards(tmp_path / "floats")
    write_shards([{"image": "x", "label": 0}], tmp_path / "text", metadata={"classes": ["a"]}, progress=False)
    with pytest.raises(CorruptShardError, match="field 'image' is 'str', expected kind 'bytes'"):
        ImageShards(tmp_path / "text")
    for classes in (["a", "a"], "ab", [1, 2]):
        write_shards(
            [{"image": b"x", "label": 0}],
            tmp_path / "c",
            metadata={"classes": classes},
            overwrite=True,
            progress=False,
        )
        with pytest.raises(CorruptShardError, match=r"metadata\['classes'\]"):
            ImageShards(tmp_path / "c")
    with pytest.raises(ValueError, match="on_error must be"):
        ImageShards(tmp_path / "c", on_error="ignore")


def test_a_label_outside_the_classes_is_refused_on_read_and_by_verify(tmp_path):
    records = [{"image": jpeg(8, 8), "label": k} for k in (0, 1, 5)]  # 5: no such class
    write_shards(
        records, tmp_path / "s", samples_per_shard=2, metadata={"classes": ["a", "b"]}, progress=False
    )
    shards = ImageShards(tmp_path / "s")
    assert shards[1][1] == 1
    with pytest.raises(
        CorruptShardError,
        match=r"shard-00001\.tts row 0: field 'label' is 5, expected a class index in \[0, 2\)",
    ):
        shards.__getitems__([0, 2])
    with pytest.raises(CorruptShardError, match="field 'label' is 5"):
        shards.targets  # noqa: B018
    with pytest.raises(CorruptShardError, match="field 'label' is 5"):
        shards.verify()


def test_the_shards_cannot_go_inside_the_folder(same_size):
    with pytest.raises(ValueError, match="inside the image folder"):
        write_image_shards(same_size, same_size / "shards", progress=False)
    with pytest.raises(ValueError, match="inside the image folder"):
        write_image_shards(same_size, same_size, overwrite=True, progress=False)
    assert sorted(p.name for p in same_size.iterdir()) == ["cat", "dog", "frog"]


def test_close_releases_threads_and_mappings_and_reads_reopen(same_size, tmp_path):
    folder, shards = both(same_size, tmp_path, num_threads=2)
    shards.__getitems__(list(range(8)))
    assert shards._threads.running
    shards.close()
    assert not shards._threads.running
    np.testing.assert_array_equal(shards[3][0], folder[3][0])
    assert "ImageShards(" in repr(shards)
    assert "18 images in 6 shards, 3 classes" in repr(shards)
