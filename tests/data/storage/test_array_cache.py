import errno
import json
import os
import time
import types

import numpy as np
import pytest

from support.cifar_files import is_mapped
from tinytorch.data.storage import array_cache
from tinytorch.data.storage.array_cache import fingerprint, load_arrays, save_arrays
from tinytorch.data.storage.integrity import CorruptDatasetError, FileStamp


def wait_for_the_filesystem_clock(path):
    """Until a file created now gets a later change time than ``path`` (one clock tick, ~1-10 ms)."""
    probe = path.with_name(".probe")
    while True:
        probe.write_bytes(b"")
        passed = probe.stat().st_ctime_ns > path.stat().st_ctime_ns
        probe.unlink()
        if passed:
            return
        time.sleep(0.001)


def flip_byte(path, offset=-1):
    with open(path, "r+b") as f:
        f.seek(offset, os.SEEK_END if offset < 0 else os.SEEK_SET)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def manifest(directory):
    return json.loads((directory / "manifest.json").read_text())


def test_round_trip_is_memory_mapped_and_read_only(tmp_path):
    arrays = {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "y": np.arange(3)}
    save_arrays(tmp_path / "c", arrays, {"v": 1}, meta={"names": ["a"]})
    loaded = load_arrays(tmp_path / "c", {"v": 1})
    np.testing.assert_array_equal(loaded.arrays["x"], arrays["x"])
    np.testing.assert_array_equal(loaded.arrays["y"], arrays["y"])
    assert loaded.meta == {"names": ["a"]}
    assert type(loaded.arrays["x"]) is np.ndarray
    assert not loaded.arrays["x"].flags.writeable
    assert is_mapped(loaded.arrays["x"])
    assert [f.path.name for f in loaded.files] == ["x.npy", "y.npy"]


def test_files_are_standard_npy(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.arange(5.0)}, {"v": 1})
    np.testing.assert_array_equal(np.load(tmp_path / "c" / "x.npy"), np.arange(5.0))


def test_other_source_or_missing_cache_is_not_trusted(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(3)}, {"v": 1})
    assert load_arrays(tmp_path / "c", {"v": 2}) is None
    assert load_arrays(tmp_path / "missing", {"v": 1}) is None


def test_truncated_array_file_names_the_file(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(1000)}, {"v": 1})
    path = tmp_path / "c" / "x.npy"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CorruptDatasetError, match="has 500 bytes, its manifest says") as info:
        load_arrays(tmp_path / "c", {"v": 1})
    assert info.value.path == path


def test_manifest_with_wrong_shape_is_not_trusted(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(10)}, {"v": 1})
    doc = manifest(tmp_path / "c")
    doc["arrays"]["x"]["shape"] = [11]
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(CorruptDatasetError, match=r"x.npy holds float64 \(10,\), its manifest says"):
        load_arrays(tmp_path / "c", {"v": 1})


def test_damaged_manifest_names_it(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(10)}, {"v": 1})
    (tmp_path / "c" / "manifest.json").write_text('{"version": 2, "source"')
    with pytest.raises(CorruptDatasetError, match="manifest.json cannot be read"):
        load_arrays(tmp_path / "c", {"v": 1})


def test_missing_array_file_names_it(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(10)}, {"v": 1})
    (tmp_path / "c" / "x.npy").unlink()
    with pytest.raises(CorruptDatasetError, match="x.npy is missing from the cache"):
        load_arrays(tmp_path / "c", {"v": 1})


def test_a_flipped_byte_right_after_the_build_is_caught(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.arange(1000)}, {"v": 1})
    flip_byte(tmp_path / "c" / "x.npy")  # same size, maybe the same clock tick as the write
    with pytest.raises(CorruptDatasetError, match=r"x.npy has CRC-32 \w+, expected \w+"):
        load_arrays(tmp_path / "c", {"v": 1})


def test_a_flipped_byte_right_after_a_verifying_open_is_caught(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.arange(1000)}, {"v": 1})
    assert load_arrays(tmp_path / "c", {"v": 1}) is not None  # may record the stamp
    flip_byte(tmp_path / "c" / "x.npy", offset=200)
    with pytest.raises(CorruptDatasetError, match="CRC-32"):
        load_arrays(tmp_path / "c", {"v": 1})


def test_a_write_in_the_same_clock_tick_as_the_check_is_never_missed(tmp_path, monkeypatch):
    """A filesystem with coarse timestamps (here 1000 s, like FAT's 2 s): a write right after a
    verifying open leaves the stamp as it was, so that stamp must not have been trusted."""
    real_fstat = os.fstat
    tick = 1000 * 10**9

    def coarse_fstat(fd):
        st = real_fstat(fd)
        return types.SimpleNamespace(
            st_mode=st.st_mode,
            st_ino=st.st_ino,
            st_size=st.st_size,
            st_mtime_ns=st.st_mtime_ns // tick * tick,
            st_ctime_ns=st.st_ctime_ns // tick * tick,
        )

    monkeypatch.setattr(array_cache.os, "fstat", coarse_fstat)
    save_arrays(tmp_path / "c", {"x": np.arange(1000)}, {"v": 1})
    load_arrays(tmp_path / "c", {"v": 1})
    assert manifest(tmp_path / "c")["arrays"]["x"]["verified"] is None  # same tick: not settled
    flip_byte(tmp_path / "c" / "x.npy", offset=300)
    with pytest.raises(CorruptDatasetError, match="CRC-32"):
        load_arrays(tmp_path / "c", {"v": 1})


def test_verified_files_are_trusted_on_their_stamp_then_rechecked_when_it_changes(tmp_path, monkeypatch):
    directory = tmp_path / "c"
    save_arrays(directory, {"x": np.arange(1000)}, {"v": 1})
    assert manifest(directory)["arrays"]["x"]["verified"] is None  # written now: not settled
    wait_for_the_filesystem_clock(directory / "x.npy")
    load_arrays(directory, {"v": 1})
    stamp = FileStamp.of(directory / "x.npy")
    assert manifest(directory)["arrays"]["x"]["verified"] == stamp.to_json()

    def no_full_read(f):
        raise AssertionError("read the whole file although its stamp was verified")

    monkeypatch.setattr(array_cache, "_crc32_from", no_full_read)
    np.testing.assert_array_equal(load_arrays(directory, {"v": 1}).arrays["x"], np.arange(1000))
    monkeypatch.undo()
    flip_byte(directory / "x.npy", offset=500)  # any later write changes the change time
    with pytest.raises(CorruptDatasetError, match="CRC-32"):
        load_arrays(directory, {"v": 1})


def test_a_copied_cache_is_verified_again(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.arange(1000)}, {"v": 1})
    wait_for_the_filesystem_clock(tmp_path / "c" / "x.npy")
    load_arrays(tmp_path / "c", {"v": 1})
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in (tmp_path / "c").iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    flip_byte(copy / "x.npy")
    with pytest.raises(CorruptDatasetError, match="CRC-32"):
        load_arrays(copy, {"v": 1})


def test_rewrite_replaces_and_leaves_no_temporaries(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(3)}, {"v": 1})
    save_arrays(tmp_path / "c", {"x": np.ones(3)}, {"v": 2})
    assert load_arrays(tmp_path / "c", {"v": 2}).arrays["x"].tolist() == [1, 1, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["manifest.json", "x.npy"]


def test_a_failed_rewrite_keeps_the_old_cache(tmp_path, monkeypatch):
    save_arrays(tmp_path / "c", {"x": np.zeros(3), "y": np.zeros(2)}, {"v": 1})
    calls = []

    def write_then_fail(self, data):
        calls.append(len(data))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(array_cache._Crc32Writer, "write", write_then_fail)
    with pytest.raises(OSError, match="No space left on device") as info:
        save_arrays(tmp_path / "c", {"x": np.ones(3), "y": np.ones(2)}, {"v": 2})
    assert info.value.filename == str(tmp_path / "c" / "x.npy")
    monkeypatch.undo()
    assert load_arrays(tmp_path / "c", {"v": 1}).arrays["x"].tolist() == [0, 0, 0]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["manifest.json", "x.npy", "y.npy"]


def test_check_size_names_a_mapped_file_that_shrank(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(10_000)}, {"v": 1})
    loaded = load_arrays(tmp_path / "c", {"v": 1})
    (mapped,) = loaded.files
    mapped.check_size()
    os.truncate(tmp_path / "c" / "x.npy", 100)
    with pytest.raises(
        CorruptDatasetError, match=r"x.npy changed size while memory-mapped: 80,128 bytes"
    ) as info:
        mapped.check_size()
    assert info.value.path == tmp_path / "c" / "x.npy"


def test_check_size_follows_the_mapped_file_not_the_name(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(10_000)}, {"v": 1})
    loaded = load_arrays(tmp_path / "c", {"v": 1})
    save_arrays(tmp_path / "c", {"x": np.zeros(10)}, {"v": 2})  # replaced by rename: harmless
    loaded.files[0].check_size()
    assert loaded.arrays["x"].sum() == 0


def test_fingerprint_changes_when_a_file_is_replaced(tmp_path):
    f = tmp_path / "a"
    f.write_bytes(b"1")
    before = fingerprint([f])
    f.write_bytes(b"22")
    assert fingerprint([f]) != before
