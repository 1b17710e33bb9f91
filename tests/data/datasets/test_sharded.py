import os
import random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tinytorch import (
    DataLoader,
    ShardedDataset,
    ShardError,
    TensorDataset,
    WindowedShuffleSampler,
    default_collate,
    write_shards,
)
from tinytorch.data.datasets.stacked import StackedSamples


def images(n=100):
    x = np.random.default_rng(0).integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)
    return x, np.arange(n, dtype=np.int64)


@pytest.fixture
def sharded(tmp_path):
    x, y = images()
    write_shards(TensorDataset(x, y), tmp_path / "s", samples_per_shard=30, progress=False)
    return ShardedDataset(tmp_path / "s"), x, y


def test_round_trip_random_access(sharded):
    ds, x, _y = sharded
    assert len(ds) == 100
    assert ds.num_shards == 4
    batch = ds.__getitems__([99, 0, 31, 30, 5])
    assert isinstance(batch, StackedSamples)
    bx, by = batch.collated()
    np.testing.assert_array_equal(bx, x[[99, 0, 31, 30, 5]])
    np.testing.assert_array_equal(by, [99, 0, 31, 30, 5])
    image, label = ds[-1]
    np.testing.assert_array_equal(image, x[99])
    assert label == 99


def test_every_field_kind_round_trips(tmp_path):
    samples = [
        {
            "img": np.full((2,), i, np.float32),
            "label": i,
            "flag": bool(i % 2),
            "name": f"n{i}",
            "jpeg": bytes(range(i)),
        }
        for i in range(12)
    ]
    write_shards(iter(samples), tmp_path / "d", samples_per_shard=5, progress=False)
    ds = ShardedDataset(tmp_path / "d")
    for i in (0, 7, 11):
        got = ds[i]
        assert got["name"] == f"n{i}"
        assert got["jpeg"] == bytes(range(i))
        assert got["flag"] == bool(i % 2)
        np.testing.assert_array_equal(got["img"], samples[i]["img"])
    batch = default_collate(ds.__getitems__([11, 0]))
    assert batch["label"].tolist() == [11, 0]
    assert batch["name"] == ["n11", "n0"]


def test_single_array_samples(tmp_path):
    write_shards([np.full(3, i) for i in range(5)], tmp_path / "a", samples_per_shard=2, progress=False)
    ds = ShardedDataset(tmp_path / "a")
    np.testing.assert_array_equal(ds[4], [4, 4, 4])


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_every_sample_once_per_epoch_in_both_modes(sharded, workers):
    ds, _, _ = sharded
    for sampler in (None, WindowedShuffleSampler(ds, 2, seed=1)):
        loader = DataLoader(
            ds, batch_size=16, shuffle=sampler is None, sampler=sampler, seed=3, num_workers=workers
        )
        seen = np.concatenate([b[1] for b in loader])
        assert sorted(seen.tolist()) == list(range(100))


def test_same_batches_for_any_number_of_workers(sharded):
    ds, _, _ = sharded

    def epoch(workers):
        sampler = WindowedShuffleSampler(ds, 2, seed=4)
        return [b[1].tolist() for b in DataLoader(ds, batch_size=7, sampler=sampler, num_workers=workers)]

    assert epoch(0) == epoch(1) == epoch(2)


def test_windowed_shuffle_never_holds_more_than_k_shards(tmp_path):
    x, y = images(200)
    write_shards(TensorDataset(x, y), tmp_path / "w", samples_per_shard=20, progress=False)
    ds = ShardedDataset(tmp_path / "w", max_open_shards=3)
    most = 0
    for _batch in DataLoader(ds, batch_size=10, sampler=WindowedShuffleSampler(ds, 3, seed=0)):
        most = max(most, len(ds.open_shards()))
    assert most <= 3
    assert ds.opened == 10  # each shard mapped once: the windows read shards in turn


def test_interrupted_write_is_not_a_dataset(tmp_path):
    def broken():
        for i in range(50):
            if i == 40:
                raise RuntimeError("disk full")
            yield np.zeros(3) + i

    with pytest.raises(RuntimeError, match="disk full"):
        write_shards(broken(), tmp_path / "b", samples_per_shard=10, progress=False)
    with pytest.raises(ShardError, match="did not finish"):
        ShardedDataset(tmp_path / "b")


def test_existing_dataset_needs_overwrite(sharded, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_shards([np.zeros(1)], tmp_path / "s", progress=False)
    write_shards([np.zeros(1)], tmp_path / "s", overwrite=True, progress=False)
    assert len(ShardedDataset(tmp_path / "s")) == 1


def test_truncated_missing_and_corrupt_shards(sharded, tmp_path):
    _ds, _, _ = sharded
    shard = tmp_path / "s" / "shard-00001.tts"
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    with pytest.raises(ShardError, match="shard-00001.tts has .* bytes, the manifest says"):
        ShardedDataset(tmp_path / "s")[35]
    shard.write_bytes(data[:5] + bytes([data[5] ^ 1]) + data[6:])
    with pytest.raises(ShardError, match="shard-00001.tts .* sha256"):
        ShardedDataset(tmp_path / "s").verify()
    for span in (True, False):
        ds = ShardedDataset(tmp_path / "s", verify=True)
        ds._use_span = span and ds._use_span
        assert ds[5][1] == 5  # shard 0 is intact: shards are verified one by one on first read
        with pytest.raises(ShardError, match="sha256"):
            ds[35]
    os.remove(shard)
    with pytest.raises(ShardError, match="shard-00001.tts is missing"):
        ShardedDataset(tmp_path / "s")[35]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 99), min_size=1, max_size=40))
def test_getitems_equals_getitem(tmp_path_factory, indices):
    path = tmp_path_factory.getbasetemp() / "prop"
    if not (path / "manifest.json").exists():
        x, y = images()
        write_shards(TensorDataset(x, y), path, samples_per_shard=17, progress=False)
    ds = ShardedDataset(path)
    fast = ds.__getitems__(indices).collated()
    np.testing.assert_array_equal(fast[1], indices)
    for k, i in enumerate(indices):
        np.testing.assert_array_equal(fast[0][k], ds[i][0])


def test_span_and_per_shard_reads_agree(tmp_path):
    x, y = images(100)
    write_shards(TensorDataset(x, y), tmp_path / "agree", samples_per_shard=13, progress=False)
    span = ShardedDataset(tmp_path / "agree")  # all shards in one mapping (Linux)
    per_shard = ShardedDataset(tmp_path / "agree", max_open_shards=3)
    per_shard._use_span = False  # what other systems and variable-size fields use
    order = np.random.default_rng(0).permutation(100)
    for batch in np.array_split(order, 7):
        a, b = span.__getitems__(batch).collated(), per_shard.__getitems__(batch).collated()
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)
            assert u.dtype == v.dtype
    assert len(per_shard.open_shards()) <= 3


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=6), st.randoms(use_true_random=False))
@example([2, 5], random.Random(0))
@example([4, 1, 3], random.Random(0))
def test_any_shard_sizes_read_back(tmp_path_factory, counts, shuffler):
    # Writers fill shards evenly, but a manifest may list any counts (uneven, last one largest):
    # finding a sample's shard must not assume even ones.
    from tinytorch.data.storage.shards import ShardWriter

    path = tmp_path_factory.mktemp("uneven")
    x, y = images(sum(counts))
    writer = ShardWriter(path, samples_per_shard=None, bytes_per_shard=None)
    i = 0
    for count in counts:
        for _ in range(count):
            writer.add((x[i], y[i]))
            i += 1
        writer._flush()
    writer.close()
    order = list(range(len(y)))
    shuffler.shuffle(order)
    for ds in (ShardedDataset(path), ShardedDataset(path, max_open_shards=2)):
        assert [s.samples for s in ds.manifest.shards] == counts
        got = ds.__getitems__(order).collated()
        np.testing.assert_array_equal(got[0], x[order])
        np.testing.assert_array_equal(got[1], order)


@pytest.mark.parametrize(("width", "grid"), [(48, True), (1155, False)])
def test_span_reads_records_on_a_grid_or_by_byte_offset(tmp_path, width, grid):
    # Slots are multiples of every record size when that costs little address space: then a
    # batch is a take of whole rows; a record size like 3*5*7*11 bytes is read by byte offset.
    x = np.random.default_rng(1).integers(0, 256, (60, width), dtype=np.uint8)
    y = np.arange(60, dtype=np.int64)
    write_shards(TensorDataset(x, y), tmp_path / "g", samples_per_shard=7, progress=False)
    ds = ShardedDataset(tmp_path / "g")
    order = np.random.default_rng(2).permutation(60)
    got = ds.__getitems__(order).collated()
    np.testing.assert_array_equal(got[0], x[order])
    np.testing.assert_array_equal(got[1], order)
    if ds._span is not None:  # Linux
        assert (ds._span_fields["0"].rows is not None) is grid
        assert ds._span_fields["1"].rows is not None  # int64 labels: always on a grid


def test_read_ahead_brings_shards_into_the_page_cache(tmp_path):
    x, y = images(100)
    write_shards(TensorDataset(x, y), tmp_path / "r", samples_per_shard=20, progress=False)
    ds = ShardedDataset(tmp_path / "r", max_open_shards=2)
    if not ds._use_span:
        assert ds.read_ahead([0, 1]) is None  # nothing to do without the span
        return
    for path in (tmp_path / "r").glob("*.tts"):
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    thread = ds.read_ahead([3, 1])
    thread.join(timeout=10)
    span = ds._span
    assert span._resident(3)
    assert span._resident(1)
    assert ds.open_shards() == []  # read ahead, not in use: this process keeps no mapping
    np.testing.assert_array_equal(ds.__getitems__([65, 21]).collated()[0], x[[65, 21]])
    with pytest.raises(IndexError):
        ds.read_ahead([5])
    assert ds.read_ahead([]) is None


def test_read_ahead_is_skipped_for_variable_size_fields(tmp_path):
    write_shards([(b"ab", 1), (b"c", 2)], tmp_path / "v", samples_per_shard=1, progress=False)
    assert ShardedDataset(tmp_path / "v").read_ahead([0]) is None


def test_a_dataset_pickles_after_use_without_its_mappings(tmp_path):
    # Spawned workers get the dataset pickled: after reads in this process it holds views of
    # its mappings, which must not travel (they would be the whole dataset, or unreadable gaps).
    import pickle

    x, y = images(100)
    write_shards(TensorDataset(x, y), tmp_path / "p", samples_per_shard=30, progress=False)
    ds = ShardedDataset(tmp_path / "p", max_open_shards=2)
    ds.__getitems__([1, 50, 99])
    data = pickle.dumps(ds)
    assert len(data) < 10_000
    copy = pickle.loads(data)
    np.testing.assert_array_equal(copy.__getitems__([99, 1]).collated()[0], x[[99, 1]])
    spawned = DataLoader(ds, batch_size=25, num_workers=1, multiprocessing_context="spawn")
    np.testing.assert_array_equal(np.concatenate([b[1] for b in spawned]), y)


def test_zero_size_fields_read_back(tmp_path):
    # A field of empty arrays has 0-byte records: no grid to align to, nothing to gather.
    samples = [(np.zeros((0,), np.float32), np.full(3, i)) for i in range(10)]
    write_shards(samples, tmp_path / "z", samples_per_shard=4, progress=False)
    for ds in (ShardedDataset(tmp_path / "z"), ShardedDataset(tmp_path / "z", max_open_shards=1)):
        empty, values = ds.__getitems__([1, 7, 9]).collated()
        assert empty.shape == (3, 0)
        np.testing.assert_array_equal(values[:, 0], [1, 7, 9])
