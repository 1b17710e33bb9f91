"""Writing shards: the manifest, and a new dataset replacing an old one only once complete."""

import errno
import json
import os

import numpy as np
import pytest

from tinytorch.data.storage import shard_writer
from tinytorch.data.storage.shard_writer import ShardWriter, replacing_directory
from tinytorch.data.storage.shards import MANIFEST, read_manifest


def write(tmp_path, samples, per_shard=3):
    writer = ShardWriter(tmp_path, samples_per_shard=per_shard, bytes_per_shard=None)
    for s in samples:
        writer.add(s)
    return writer.close()


def test_manifest_describes_fields_shards_and_checksums(tmp_path):
    m = write(tmp_path, [(np.full((2, 2), i, np.uint8), i, f"s{i}") for i in range(7)])
    raw = json.loads((tmp_path / MANIFEST).read_text())
    assert raw["format"] == "tinytorch-shards"
    assert raw["version"] == 1
    assert raw["samples"] == 7
    assert [s["samples"] for s in raw["shards"]] == [3, 3, 1]
    assert [f["kind"] for f in raw["fields"]] == ["array", "array", "str"]
    assert raw["fields"][0]["shape"] == [2, 2]
    assert raw["fields"][1]["dtype"] == "<i8"
    assert all(len(s["sha256"]) == 64 for s in raw["shards"])
    assert all(0 <= s["crc32"] < 2**32 for s in raw["shards"])
    assert read_manifest(tmp_path) == m
    assert sorted(os.listdir(tmp_path)) == [MANIFEST, "shard-00000.tts", "shard-00001.tts", "shard-00002.tts"]


def test_bytes_per_shard(tmp_path):
    writer = ShardWriter(tmp_path, samples_per_shard=None, bytes_per_shard=100)
    for _i in range(10):
        writer.add(np.zeros(40, np.uint8))
    assert [s.samples for s in writer.close().shards] == [3, 3, 3, 1]


def test_inconsistent_samples_are_refused_naming_the_sample(tmp_path):
    writer = ShardWriter(tmp_path, samples_per_shard=10, bytes_per_shard=None)
    writer.add((np.zeros(3), 1))
    with pytest.raises(ValueError, match=r"sample 1 field '0' is array float64 \(4,\)"):
        writer.add((np.zeros(4), 1))
    with pytest.raises(ValueError, match="sample 1 has fields"):
        writer.add({"a": 1})
    with pytest.raises(TypeError, match="cannot store"):
        ShardWriter(tmp_path, samples_per_shard=1, bytes_per_shard=None).add([object()])


@pytest.mark.parametrize(
    ("sample", "error", "match"),
    [
        ((), ValueError, r"sample 0 has no fields \(an empty tuple or list\)"),
        ({}, ValueError, r"sample 0 has no fields \(an empty dict\)"),
        (
            (np.zeros((0,) * 33),),
            ValueError,
            r"sample 0 field '0': its shape is 33 dimensions .* holds at most 32 dimensions",
        ),
        ((np.zeros((0, 2**41)),), ValueError, r"field '0': its shape\[1\] is 2199023255552"),
        ({1: 2}, TypeError, r"sample 0 has the key 1 \(int\): dict samples need str keys"),
        ((np.zeros(2, dtype=[("a", "<i4")]),), TypeError, r"field '0': dtype .* would read back as \|V4"),
        ((2**70,), TypeError, r"field '0': cannot store int values of dtype object"),
    ],
)
def test_what_the_reader_refuses_is_refused_at_write_time(tmp_path, sample, error, match):
    """Hostile-tester item 2: () and a 33-dimensional array were written but not readable, a
    dict key 1 came back as "1". The reader's rules (shards.field_problem, fields_problem) are
    applied to the first sample."""
    with pytest.raises(error, match=match):
        ShardWriter(tmp_path, samples_per_shard=1, bytes_per_shard=None).add(sample)
    assert os.listdir(tmp_path) == []


def test_a_field_named_like_another_fields_values_is_refused(tmp_path):
    writer = ShardWriter(tmp_path, samples_per_shard=10, bytes_per_shard=None)
    with pytest.raises(ValueError, match="'x.data'"):
        writer.add({"x": b"jpeg", "x.data": 1})


def test_empty_source_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no samples"):
        ShardWriter(tmp_path, samples_per_shard=1, bytes_per_shard=None).close()


def old_dataset(tmp_path):
    target = tmp_path / "d"
    with replacing_directory(target, overwrite=False) as directory:
        write(directory, [np.full(2, i) for i in range(4)])
    return target


def test_a_new_directory_appears_whole_and_nothing_else_is_left(tmp_path):
    target = old_dataset(tmp_path)
    assert len(read_manifest(target).shards) == 2
    assert sorted(os.listdir(tmp_path)) == ["d"]


@pytest.mark.parametrize("exchange", [True, False])  # renameat2, or two renames
def test_the_old_dataset_is_replaced_only_when_the_new_one_is_complete(tmp_path, monkeypatch, exchange):
    target = old_dataset(tmp_path)
    if not exchange:
        monkeypatch.setattr(shard_writer, "exchange_entries", lambda a, b: False)

    def broken():
        with replacing_directory(target, overwrite=True) as new:
            write(new, [np.zeros(1)])
            raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        broken()
    assert read_manifest(target).total == 4  # the old one, intact
    assert sorted(os.listdir(tmp_path)) == ["d"]  # no temporary directory left
    with replacing_directory(target, overwrite=True) as new:
        write(new, [np.zeros(1)])
    assert read_manifest(target).total == 1
    assert sorted(os.listdir(tmp_path)) == ["d"]  # the old one removed


def test_replacing_needs_overwrite_and_never_deletes_foreign_files(tmp_path):
    target = old_dataset(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"), replacing_directory(target, overwrite=False):
        pass
    (target / "notes.txt").write_text("mine")
    with (
        pytest.raises(FileExistsError, match=r"did not write \(notes\.txt\)"),
        replacing_directory(target, overwrite=True),
    ):
        pass
    assert (target / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with (
        pytest.raises(FileExistsError, match="is a file"),
        replacing_directory(tmp_path / "file", overwrite=True),
    ):
        pass
    assert sorted(os.listdir(tmp_path)) == ["d", "file"]


def test_an_empty_directory_is_replaced_without_overwrite(tmp_path):
    (tmp_path / "empty").mkdir()
    with replacing_directory(tmp_path / "empty", overwrite=False) as new:
        write(new, [np.zeros(1)])
    assert read_manifest(tmp_path / "empty").total == 1


@pytest.mark.parametrize("overwrite", [False, True])
def test_files_merely_named_like_shards_are_the_users(tmp_path, overwrite):
    """Hostile-tester item 1a: shard-named files with no manifest were taken for an unfinished
    write, and shard-00007.tts deleted. Only what a manifest the library wrote lists is ours."""
    target = tmp_path / "mine"
    target.mkdir()
    (target / "shard-00000.tts").write_text("my precious data")
    (target / "shard-00007.tts").write_text("mine")
    with (
        pytest.raises(FileExistsError, match=r"did not write \(shard-00000\.tts, shard-00007\.tts\)"),
        replacing_directory(target, overwrite=overwrite) as new,
    ):
        write(new, [np.zeros(1)])
    assert sorted(os.listdir(tmp_path)) == ["mine"]
    assert (target / "shard-00007.tts").read_text() == "mine"
    assert sorted(os.listdir(target)) == ["shard-00000.tts", "shard-00007.tts"]


def test_a_shard_the_manifest_does_not_list_or_an_edited_manifest_is_not_ours(tmp_path):
    target = old_dataset(tmp_path)  # lists shard-00000.tts and shard-00001.tts
    (target / "shard-00002.tts").write_text("mine")
    with (
        pytest.raises(FileExistsError, match=r"\(shard-00002\.tts\)"),
        replacing_directory(target, overwrite=True),
    ):
        pass
    (target / "shard-00002.tts").unlink()
    raw = json.loads((target / MANIFEST).read_text())
    raw["shards"].append({**raw["shards"][0], "file": "shard-00003.tts"})  # claims another file
    (target / MANIFEST).write_text(json.dumps(raw))
    with (
        pytest.raises(
            FileExistsError, match=r"its manifest.json is not one write_shards wrote, or was changed"
        ),
        replacing_directory(target, overwrite=True),
    ):
        pass
    assert sorted(os.listdir(tmp_path)) == ["d"]
    assert sorted(os.listdir(target)) == [MANIFEST, "shard-00000.tts", "shard-00001.tts"]


@pytest.mark.parametrize("listed", [False, True])
def test_a_directory_named_like_a_shard_is_refused_before_anything_is_swapped(tmp_path, listed):
    """Hostile-tester item 1b: a sub-directory shard-00009.tts/ in a dataset: the new dataset
    was swapped in, then IsADirectoryError, and the old one left as .b.tmp-XXXX."""
    target = old_dataset(tmp_path)
    name = "shard-00001.tts" if listed else "shard-00009.tts"  # listed: the manifest names it
    if listed:
        (target / name).unlink()
    (target / name).mkdir()
    (target / name / "notes.txt").write_text("x")
    with (
        pytest.raises(FileExistsError, match=rf"did not write \({name}\)"),
        replacing_directory(target, overwrite=True) as new,
    ):
        write(new, [np.zeros(1)])
    assert sorted(os.listdir(tmp_path)) == ["d"]  # nothing swapped, nothing left
    assert (target / name / "notes.txt").read_text() == "x"
    assert read_manifest(target).total == 4


@pytest.mark.parametrize("exchange", [True, False])
def test_a_symlinked_target_is_written_through_the_link(tmp_path, monkeypatch, exchange):
    """Hostile-tester item 1c: the link was replaced by a plain directory, the linked directory
    emptied, and a .link.tmp-XXXX symlink left. Now the dataset replaces the linked directory."""
    if not exchange:
        monkeypatch.setattr(shard_writer, "exchange_entries", lambda a, b: False)
    real = old_dataset(tmp_path)
    link = tmp_path / "link"
    os.symlink(real, link)
    with replacing_directory(link, overwrite=True) as new:
        write(new, [np.zeros(1)])
    assert os.path.islink(link)
    assert os.readlink(link) == str(real)
    assert read_manifest(real).total == 1
    assert sorted(os.listdir(tmp_path)) == ["d", "link"]  # no temporary directory or link left
    with pytest.raises(FileExistsError, match="overwrite=True"), replacing_directory(link, overwrite=False):
        pass
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "new" / "place", dangling)  # written through, as open() would
    with replacing_directory(dangling, overwrite=False) as new:
        write(new, [np.zeros(1)])
    assert read_manifest(tmp_path / "new" / "place").total == 1
    assert os.path.islink(dangling)


def test_a_failed_write_removes_the_parent_directories_it_created(tmp_path):
    with (
        pytest.raises(RuntimeError, match="source broke"),
        replacing_directory(tmp_path / "a" / "b" / "d", overwrite=False),
    ):
        raise RuntimeError("source broke")
    assert os.listdir(tmp_path) == []


def test_a_full_disk_leaves_the_old_dataset_and_no_litter(tmp_path, monkeypatch):
    target = old_dataset(tmp_path)
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shard_writer.os, "fsync", fsync)
    writing = []

    def fill():
        with replacing_directory(target, overwrite=True) as new:
            writer = ShardWriter(new, samples_per_shard=1, bytes_per_shard=None)
            try:
                for i in range(3):
                    writer.add(np.zeros(1) + i)
            finally:
                writing.append(writer.writing)

    with pytest.raises(OSError, match="No space") as caught:
        fill()
    assert writing[0].name == "shard-00001.tts"  # what write_shards names in its message
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert read_manifest(target).total == 4
    assert sorted(os.listdir(tmp_path)) == ["d"]
