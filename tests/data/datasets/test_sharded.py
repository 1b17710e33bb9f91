import json
import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tinytorch import (
    CorruptShardError,
    DataLoader,
    ShardedDataset,
    ShardError,
    TensorDataset,
    WindowedShuffleSampler,
    default_collate,
    write_shards,
)
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.storage.shard_files import verify_shards


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
    assert ds.opened == 10  # each shard entered once: the windows read shards in turn


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


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=6), st.randoms(use_true_random=False))
@example([2, 5], random.Random(0))
@example([4, 1, 3], random.Random(0))
def test_any_shard_sizes_read_back(tmp_path_factory, counts, shuffler):
    # Writers fill shards evenly, but a manifest may list any counts (uneven, last one largest):
    # finding a sample's shard must not assume even ones.
    from tinytorch.data.storage.shard_writer import ShardWriter

    path = tmp_path_factory.mktemp("uneven")
    x, y = images(sum(counts))
    writer = ShardWriter(path, samples_per_shard=None, bytes_per_shard=None)
    i = 0
    for count in counts:
        for _ in range(count):
            writer.add((x[i], y[i]))
            i += 1
        writer.flush()
    writer.close()
    order = list(range(len(y)))
    shuffler.shuffle(order)
    for ds in (ShardedDataset(path), ShardedDataset(path, max_open_shards=2)):
        assert [s.samples for s in ds.manifest.shards] == counts
        got = ds.__getitems__(order).collated()
        np.testing.assert_array_equal(got[0], x[order])
        np.testing.assert_array_equal(got[1], order)


@pytest.mark.parametrize("width", [48, 1155])
def test_records_on_a_grid_or_at_any_byte_read_back(tmp_path, width):
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


# --- untrusted manifests and files (issue 16) -------------------------------------------------


def two_shards(tmp_path):
    """A valid two-shard dataset (uint8 images, int64 labels)."""
    x, y = images(100)
    write_shards(TensorDataset(x, y), tmp_path / "d", samples_per_shard=50, progress=False)
    return tmp_path / "d"


def edit_manifest(root, change, keep_checksum=False):
    raw = json.loads((root / "manifest.json").read_text())
    if not keep_checksum:
        del raw["checksum"]  # as a hand edit that also removed it, or a manifest from before it
    change(raw)
    (root / "manifest.json").write_text(json.dumps(raw))


# Each of these was a SIGSEGV in the reader, or a raw Python error, while verify said OK.
CHANGED_NUMBERS = {
    "sample count +200": (
        lambda r: r["shards"][0].update(samples=r["shards"][0]["samples"] + 200),
        r"offsets\['1'\]",
    ),
    "field offset past the end": (
        lambda r: r["shards"][0]["offsets"].update({"0": 10**6}),
        r"offsets\['0'\] is 1000000",
    ),
    "field offset negative": (
        lambda r: r["shards"][1]["offsets"].update({"1": -4096}),
        r"offsets\['1'\] is -4096",
    ),
    "larger shape": (
        lambda r: r["fields"][0].update(shape=[3, 40, 40]),
        r"offsets\['1'\] is \d+, expected 240000",
    ),
    "wider dtype": (lambda r: r["fields"][0].update(dtype="<f8"), r"offsets\['1'\] is \d+, expected 19200"),
    "a file outside the dataset": (lambda r: r["shards"][0].update(file="../x"), r"file is '\.\./x'"),
    "an absolute path": (lambda r: r["shards"][0].update(file="/etc/hostname"), "file is '/etc/hostname'"),
    "a negative count": (lambda r: r["shards"][0].update(samples=-5), r"samples is -5"),
    "valid JSON of the wrong shape": (lambda r: r.update(shards={"a": 1}), "shards is dict"),
}


@pytest.mark.parametrize("name", sorted(CHANGED_NUMBERS))
def test_a_manifest_with_one_changed_number_is_refused_before_anything_is_mapped(tmp_path, name):
    change, message = CHANGED_NUMBERS[name]
    root = two_shards(tmp_path)
    edit_manifest(root, change)
    with pytest.raises(CorruptShardError, match=message) as caught:
        ShardedDataset(root)
    assert caught.value.path == str(root / "manifest.json")
    with pytest.raises(CorruptShardError, match=message):
        verify_shards(root)  # what `tinytorch-data verify` runs: the same checks


def test_a_manifest_edited_after_writing_is_refused_by_its_checksum(tmp_path):
    root = two_shards(tmp_path)
    edit_manifest(root, lambda r: r["fields"][0].update(shape=[4, 4, 4]), keep_checksum=True)
    with pytest.raises(
        CorruptShardError, match="checksum is .* the manifest was changed after it was written"
    ):
        ShardedDataset(root)


def test_datasets_written_before_checksums_were_recorded_still_read(tmp_path):
    root = two_shards(tmp_path)  # as written by tinytorch before the manifest checksum and CRC-32
    edit_manifest(root, lambda r: [s.pop("crc32") for s in r["shards"]])
    ds = ShardedDataset(root)  # verify="crc32" falls back to the SHA-256 these manifests have
    assert ds[99][1] == 99
    flip_a_bit(root / "shard-00000.tts")
    with pytest.raises(CorruptShardError, match=r"shard-00000\.tts: sha256"):
        ShardedDataset(root)[0]


def test_a_truncated_grown_or_missing_shard_is_refused_at_open(tmp_path):
    root = two_shards(tmp_path)
    shard = root / "shard-00001.tts"
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    with pytest.raises(
        CorruptShardError, match=r"shard-00001\.tts: size is \d+ bytes: the file is truncated"
    ):
        ShardedDataset(root)
    shard.write_bytes(data + b"\0" * 64)
    with pytest.raises(CorruptShardError, match=r"shard-00001\.tts: size"):
        ShardedDataset(root)
    os.remove(shard)
    with pytest.raises(CorruptShardError, match=r"shard-00001\.tts: file is missing"):
        ShardedDataset(root)


def flip_a_bit(path, at=5):
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))


def test_a_bit_flipped_shard_fails_by_default_instead_of_training(tmp_path):
    root = two_shards(tmp_path)
    flip_a_bit(root / "shard-00001.tts")
    ds = ShardedDataset(root)
    assert ds[5][1] == 5  # shard 0 is intact: shards are checked one by one, before their first read
    with pytest.raises(CorruptShardError, match=r"shard-00001\.tts: crc32 is \d+: the file is corrupt"):
        ds[55]
    with pytest.raises(CorruptShardError, match="crc32"):
        ds[55]  # every time, not only the first
    for verify in ("sha256", True):
        with pytest.raises(CorruptShardError, match="shard-00001.tts: sha256"):
            ShardedDataset(root, verify=verify)[55]
    assert ShardedDataset(root, verify="size")[55][1] == 55  # checks sizes and layout only: documented
    with pytest.raises(CorruptShardError, match="shard-00001.tts: sha256"):
        ds.verify()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_shard_truncated_during_an_epoch_is_an_error_naming_it(tmp_path, workers):
    root = two_shards(tmp_path)
    ds = ShardedDataset(root)
    loader = DataLoader(ds, batch_size=10, num_workers=workers, worker_type="thread")
    batches = iter(loader)
    next(batches)
    os.truncate(root / "shard-00001.tts", 100)
    with pytest.raises(CorruptShardError, match=r"shard-00001\.tts: size.* is 100 bytes"):
        for _ in batches:
            pass
    with pytest.raises(CorruptShardError, match=r"shard-00001\.tts"):
        ds.check_mapped_files()


def test_with_process_workers_the_loader_raises_the_error_naming_the_shard(tmp_path):
    root = two_shards(tmp_path)
    ds = ShardedDataset(root)
    loader = DataLoader(ds, batch_size=10, num_workers=2, worker_type="process", prefetch_factor=1)
    batches = iter(loader)
    next(batches)
    os.truncate(root / "shard-00001.tts", 100)
    with pytest.raises(CorruptShardError, match=r"shard-00001\.tts: size.* is 100 bytes") as caught:
        for _ in batches:
            pass
    assert isinstance(caught.value.__cause__, CorruptShardError)
    assert caught.value.__cause__.field.startswith("size")
    loader.close()


def test_check_mapped_files_passes_until_a_file_changes(tmp_path):
    root = two_shards(tmp_path)
    ds = ShardedDataset(root)
    ds.check_mapped_files()
    ds[99]
    ds.check_mapped_files()
    flip_a_bit(root / "shard-00000.tts")  # rewritten in place: size kept, modification time not
    os.utime(root / "shard-00000.tts", ns=(0, 10**9))
    with pytest.raises(CorruptShardError, match=r"shard-00000\.tts: .*modified"):
        ds.check_mapped_files()


def test_a_dataset_replaced_under_a_pickled_copy_is_not_read_with_the_old_manifest(tmp_path):
    import pickle

    root = two_shards(tmp_path)
    copy = pickle.dumps(ShardedDataset(root))
    x, y = images(100)
    write_shards(TensorDataset(255 - x, y), root, samples_per_shard=50, overwrite=True, progress=False)
    with pytest.raises(CorruptShardError, match="replaced or modified after the dataset was opened"):
        pickle.loads(copy)[0]


# --- writes never lose the old data ------------------------------------------------------------


def test_overwrite_keeps_the_old_dataset_until_the_new_one_is_complete(tmp_path):
    root = two_shards(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_shards([np.zeros(1)], root, progress=False)

    def broken():
        for i in range(50):
            if i == 40:
                raise RuntimeError("source broke")
            yield np.zeros(3) + i

    with pytest.raises(RuntimeError, match="source broke"):
        write_shards(broken(), root, samples_per_shard=10, overwrite=True, progress=False)
    assert len(ShardedDataset(root)) == 100  # the old one, intact
    assert sorted(os.listdir(tmp_path)) == ["d"]  # no temporary litter
    write_shards([np.zeros(1)], root, overwrite=True, progress=False)
    assert len(ShardedDataset(root)) == 1
    assert sorted(os.listdir(root)) == ["manifest.json", "shard-00000.tts"]


def test_a_full_disk_names_the_file_and_keeps_the_old_dataset(tmp_path, monkeypatch):
    import errno

    from tinytorch.data.storage import shard_writer

    root = two_shards(tmp_path)
    real = shard_writer.os.fsync
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(shard_writer.os, "fsync", fsync)
    with pytest.raises(
        OSError, match=r"could not write shard-00002\.tts of .*d \(No space left on device\); .* unchanged"
    ) as caught:
        write_shards(np.zeros((10, 4)), root, samples_per_shard=2, overwrite=True, progress=False)
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert len(ShardedDataset(root)) == 100
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_an_interrupted_first_write_leaves_nothing(tmp_path):
    def broken():
        yield np.zeros(3)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_shards(broken(), tmp_path / "b", samples_per_shard=1, progress=False)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ShardError, match="did not finish"):
        ShardedDataset(tmp_path / "b")


# --- encoded records (issue 17) ----------------------------------------------------------------


def encoded(n=40):
    """JPEG-like records: bytes of varying length (some empty) and an int label."""
    rng = np.random.default_rng(3)
    return [(b"\xff\xd8" + rng.bytes(int(rng.integers(0, 300))) if i % 7 else b"", i % 10) for i in range(n)]


def test_encoded_records_round_trip_with_random_access_and_the_windowed_shuffle(tmp_path):
    records = encoded()
    write_shards(records, tmp_path / "e", samples_per_shard=6, progress=False)
    ds = ShardedDataset(tmp_path / "e")
    assert ds[13] == records[13]
    batch = default_collate(ds.__getitems__([39, 0, 13]))
    assert batch[0] == [records[39][0], b"", records[13][0]]
    assert batch[1].tolist() == [records[39][1], 0, 3]
    for sampler in (None, WindowedShuffleSampler(ds, 2, seed=0)):
        for workers in (0, 2):
            loader = DataLoader(
                ds, batch_size=8, shuffle=sampler is None, sampler=sampler, seed=1, num_workers=workers
            )
            seen = [value for b in loader for value in b[0]]
            assert sorted(seen) == sorted(r[0] for r in records)
    thread = ds.read_ahead([1, 2])
    if thread is not None:  # Linux: the span reads encoded shards too
        thread.join(timeout=10)
    verify_shards(tmp_path / "e")


def test_corrupt_encoded_records_are_errors(tmp_path):
    write_shards(encoded(), tmp_path / "e", samples_per_shard=6, progress=False)
    info = ShardedDataset(tmp_path / "e").manifest.shards[2]
    path = tmp_path / "e" / info.file
    good = path.read_bytes()
    ends = info.offsets["0"]
    path.write_bytes(good[: ends + 16] + (10**6).to_bytes(8, "little") + good[ends + 24 :])
    with pytest.raises(CorruptShardError, match="crc32"):
        ShardedDataset(tmp_path / "e")[13]
    with pytest.raises(CorruptShardError, match=r"field '0'.s end offsets"):
        ShardedDataset(tmp_path / "e", verify="size")[13]  # never read outside the shard
    with pytest.raises(CorruptShardError, match=r"field '0'.s end offset 3"):
        verify_shards(tmp_path / "e")


def test_metadata_is_stored_with_the_shards_and_checked_to_be_json(tmp_path):
    meta = {"classes": ["cat", "dog"], "source": {"root": "/photos", "files": 2}}
    write_shards(encoded(4), tmp_path / "m", metadata=meta, progress=False)
    ds = ShardedDataset(tmp_path / "m")
    assert ds.metadata == meta
    assert ShardedDataset(tmp_path / "m").metadata is not meta  # read back, not kept
    write_shards(encoded(4), tmp_path / "none", progress=False)
    assert ShardedDataset(tmp_path / "none").metadata == {}
    for bad, message in (
        ({"x": object()}, "JSON values only"),
        ({"x": float("nan")}, "JSON values only"),
        ({1: "a"}, "dict with str keys"),
        (["cat"], "dict with str keys"),
    ):
        with pytest.raises(TypeError, match=message):
            write_shards(encoded(4), tmp_path / "bad", metadata=bad, progress=False)
        assert not (tmp_path / "bad").exists()  # refused before anything is written


# --- arguments -----------------------------------------------------------------------------


def test_numeric_arguments_accept_numpy_integers_and_refuse_floats(tmp_path):
    x, y = images(20)
    write_shards(TensorDataset(x, y), tmp_path / "n", samples_per_shard=np.int64(7), progress=False)
    ds = ShardedDataset(tmp_path / "n", max_open_shards=np.int32(2))
    assert ds.num_shards == 3
    assert len(list(WindowedShuffleSampler(ds, np.int64(2), seed=np.uint8(3)))) == 20
    with pytest.raises(TypeError, match="samples_per_shard must be a positive int, got float 7.0"):
        write_shards(TensorDataset(x, y), tmp_path / "f", samples_per_shard=7.0, progress=False)
    with pytest.raises(TypeError, match="max_open_shards"):
        ShardedDataset(tmp_path / "n", max_open_shards=2.5)
    with pytest.raises(ValueError, match="verify must be one of"):
        ShardedDataset(tmp_path / "n", verify="yes")
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        write_shards(TensorDataset(x, y), tmp_path / "n", overwrite=1, progress=False)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc")
def test_close_releases_every_mapping_and_file_and_reads_reopen(tmp_path):
    root = two_shards(tmp_path)

    def held():
        with open("/proc/self/maps") as f:
            maps = sum(str(root) in line for line in f)
        fds = sum(
            os.readlink(f"/proc/self/fd/{fd}").startswith(str(root))
            for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")
        )
        return maps, fds

    ds = ShardedDataset(root)
    ds[99]
    assert held() != (0, 0)
    ds.close()
    assert held() == (0, 0)
    assert ds[99][1] == 99  # opens again
    del ds
    assert held() == (0, 0)  # and garbage collection releases them too


@pytest.mark.parametrize("sample", [(), (np.zeros((1,) * 33, np.uint8),), {1: np.int64(2)}])
def test_write_shards_refuses_what_it_could_not_read_back_and_leaves_nothing(tmp_path, sample):
    """Hostile-tester item 2: these were written, then ShardedDataset refused them (or key 1
    came back as "1")."""
    with pytest.raises((ValueError, TypeError), match="sample 0"):
        write_shards([sample] * 3, tmp_path / "d", progress=False)
    assert os.listdir(tmp_path) == []


_KILLED_WRITER = """
import pathlib, sys, time
import numpy as np
from tinytorch import write_shards

def samples():
    for i in range(10):
        if i == 6:  # two shards are on disk: say so, then wait to be killed
            pathlib.Path(sys.argv[2]).write_text("ready")
            time.sleep(60)
        yield np.full(2, i)

write_shards(samples(), sys.argv[1], samples_per_shard=3, progress=False)
"""


def test_a_write_killed_mid_way_leaves_no_dataset_and_the_next_write_names_its_leftover(tmp_path):
    # Regression: after kill -9 mid-way, the rerun wrote the dataset but said nothing of the
    # .d.tmp-XXXXXXXX (two shard files) the killed write left beside it, forever.
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path / "d"), str(ready)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), "the writer did not reach the third shard"
    finally:
        child.kill()
        child.wait()
    left = [name for name in os.listdir(tmp_path) if name.startswith(".d.tmp-")]
    assert len(left) == 1
    assert not (tmp_path / "d").exists()
    with pytest.warns(UserWarning, match=rf"holds {left[0]}: what a write .* killed") as caught:
        write_shards([np.full(2, i) for i in range(4)], tmp_path / "d", progress=False)
    assert caught[0].filename == __file__  # points at the caller's write_shards line
    assert len(ShardedDataset(tmp_path / "d")) == 4
    verify_shards(tmp_path / "d")
    assert sorted(os.listdir(tmp_path / left[0])) == ["shard-00000.tts", "shard-00001.tts"]  # not deleted
