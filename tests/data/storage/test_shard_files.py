"""Shard files against their manifest: open, per-batch and full checks, the same decisions."""

import json
import os
import struct

import numpy as np
import pytest

from tinytorch.data import ShardedDataset
from tinytorch.data.storage.shard_files import (
    check_checksum,
    check_ends,
    check_size,
    check_unchanged,
    data_lengths,
    open_shard,
    stat_shard,
    verify_shards,
)
from tinytorch.data.storage.shard_writer import ShardWriter
from tinytorch.data.storage.shards import MANIFEST, CorruptShardError, manifest_checksum


@pytest.fixture
def dataset(tmp_path):
    """Two shards of (uint8 image, label, JPEG-like bytes of varying length)."""
    writer = ShardWriter(tmp_path, samples_per_shard=3, bytes_per_shard=None)
    for i in range(5):
        writer.add((np.full((2, 2), i, np.uint8), i, bytes([i]) * (10 * i)))
    return tmp_path, writer.close()


def ends_offset(manifest, k):
    return manifest.shards[k].offsets["2"]


def test_open_checks_type_size_and_identity(dataset):
    root, manifest = dataset
    info = manifest.shards[1]
    fd, identity = open_shard(root, info, None)
    os.close(fd)
    assert identity == stat_shard(root, info)
    os.truncate(root / info.file, info.nbytes - 1)
    with pytest.raises(
        CorruptShardError, match=r"shard-00001\.tts: size is \d+ bytes: the file is truncated"
    ):
        open_shard(root, info, None)
    os.truncate(root / info.file, info.nbytes)  # the right size again, but not the file opened before
    with pytest.raises(CorruptShardError, match="identity .* replaced or modified"):
        open_shard(root, info, identity)
    os.remove(root / info.file)
    with pytest.raises(CorruptShardError, match="file is missing"):
        stat_shard(root, info)


def test_a_fifo_named_like_a_shard_is_refused_without_hanging(dataset):
    root, manifest = dataset
    info = manifest.shards[0]
    os.remove(root / info.file)
    os.mkfifo(root / info.file)
    with pytest.raises(
        CorruptShardError, match=r"file type is a FIFO \(named pipe\), expected a regular file"
    ):
        open_shard(root, info, None)


def test_a_file_changed_while_open_is_found(dataset):
    root, manifest = dataset
    info = manifest.shards[0]
    fd, identity = open_shard(root, info, None)
    try:
        check_unchanged(fd, root / info.file, identity)
        check_size(fd, root / info.file, info.nbytes)
        os.truncate(root / info.file, 64)
        with pytest.raises(
            CorruptShardError, match=r"shard-00000\.tts: size is 64 bytes, expected \d+ bytes"
        ):
            check_size(fd, root / info.file, info.nbytes)
        with pytest.raises(
            CorruptShardError, match=r"shard-00000\.tts: size and modification time is 64 bytes"
        ):
            check_unchanged(fd, root / info.file, identity)
    finally:
        os.close(fd)


def test_variable_data_lengths_make_the_layout_exact(dataset):
    root, manifest = dataset
    with open(root / manifest.shards[0].file, "rb") as f:
        assert data_lengths(f.fileno(), root / manifest.shards[0].file, manifest, 0) == {"2": 30}
    path = root / manifest.shards[0].file
    data = bytearray(path.read_bytes())
    last = ends_offset(manifest, 0) + 8 * 3
    for bad, message in [(10**9, r"bytes is \d+, expected \d+"), (-5, "last end offset is -5")]:
        data[last : last + 8] = struct.pack("<q", bad)
        path.write_bytes(bytes(data))
        with open(path, "rb") as f, pytest.raises(CorruptShardError, match=message):
            data_lengths(f.fileno(), path, manifest, 0)


def test_end_offsets_must_rise_from_zero_to_the_length():
    check_ends(np.array([0, 3, 3, 9]), 9, "f", "x")
    with pytest.raises(CorruptShardError, match="end offset 0 is 2, expected 0"):
        check_ends(np.array([2, 3, 9]), 9, "f", "x")
    with pytest.raises(CorruptShardError, match="end offset 2 is 1, expected at least 3"):
        check_ends(np.array([0, 3, 1, 9]), 9, "f", "x")


def test_checksums_find_one_flipped_bit(dataset):
    root, manifest = dataset
    info = manifest.shards[1]
    path = root / info.file
    data = bytearray(path.read_bytes())
    data[7] ^= 4
    path.write_bytes(bytes(data))
    for mode in ("crc32", "sha256"):
        with (
            open(path, "rb") as f,
            pytest.raises(CorruptShardError, match=f"{mode} is .*: the file is corrupt"),
        ):
            check_checksum(f.fileno(), path, info, mode)


def test_verify_checks_what_the_readers_check_and_more(dataset):
    root, manifest = dataset
    progress = []
    assert verify_shards(root, progress=lambda done, total: progress.append((done, total))) == manifest
    total = sum(s.nbytes for s in manifest.shards)
    assert progress == [(manifest.shards[0].nbytes, total), (total, total)]
    path = root / manifest.shards[1].file
    good = path.read_bytes()
    middle = ends_offset(manifest, 1) + 8
    path.write_bytes(good[:middle] + struct.pack("<q", 999) + good[middle + 8 :])
    with pytest.raises(
        CorruptShardError, match=r"shard-00001\.tts: field '2'.s end offset 2 is \d+, expected at least 999"
    ):
        verify_shards(root)
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # in the padding: only checksums see it
    with pytest.raises(CorruptShardError, match="sha256"):
        verify_shards(root)
    path.write_bytes(good)
    (root / "manifest.json").write_text(
        (root / "manifest.json").read_text().replace('"samples": 3', '"samples": 203', 1)
    )
    with pytest.raises(CorruptShardError, match=r"manifest\.json: checksum"):
        verify_shards(root)


def text_dataset(root, values):
    """A dataset whose field '0' holds ``values`` (bytes), its manifest edited to call the
    field ``str`` and its checksum recomputed: what the hostile tester did."""
    writer = ShardWriter(root, samples_per_shard=2, bytes_per_shard=None)
    for v in values:
        writer.add((v,))
    writer.close()
    raw = json.loads((root / MANIFEST).read_text())
    raw["fields"][0]["kind"] = "str"
    raw["checksum"] = manifest_checksum(raw)
    (root / MANIFEST).write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([b"ok", b"fine", b"\xff\xfe", b"x"], r"shard-00001\.tts: field '0' sample 0 is undecodable bytes"),
        # Each half of "é" (c3 a9): the values together decode, each alone does not.
        ([b"a", "é".encode()[:1], "é".encode()[1:]], r"shard-00000\.tts: field '0' sample 1 is undecodable"),
        (
            [b"a", b"b", "é".encode()[:1], "é".encode()[1:]],
            r"shard-00001\.tts: field '0' sample 1 is a value starting inside a character",
        ),
    ],
)
def test_verify_decodes_every_str_value_as_the_reader_does(tmp_path, values, match):
    """Hostile-tester item 3: verify said OK for a str field that is not UTF-8 while reading
    raised CorruptShardError."""
    text_dataset(tmp_path, values)
    with pytest.raises(CorruptShardError, match=match):
        verify_shards(tmp_path)
    ds = ShardedDataset(tmp_path)
    with pytest.raises(CorruptShardError, match="UTF-8"):  # the reader's own check
        ds.__getitems__(list(range(len(values))))
    ds.close()


def test_verify_accepts_every_str_the_writer_writes(tmp_path):
    values = ["", "a", "é", "", "日本語", "🙂", ""]
    writer = ShardWriter(tmp_path, samples_per_shard=3, bytes_per_shard=None)
    for v in values:
        writer.add((v,))
    writer.close()
    verify_shards(tmp_path)
    ds = ShardedDataset(tmp_path)
    assert [ds[i][0] for i in range(len(values))] == values
    ds.close()
