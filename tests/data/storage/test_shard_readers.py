"""The two shard readers: the same bytes, the same checks, the same meaning of max_open_shards."""

import os
import struct

import numpy as np
import pytest

from tinytorch.data.storage import span_reader
from tinytorch.data.storage.mapped_reader import MappedReader
from tinytorch.data.storage.shard_checks import Verifier
from tinytorch.data.storage.shard_files import stat_shard
from tinytorch.data.storage.shard_index import ShardIndex
from tinytorch.data.storage.shard_readers import open_reader
from tinytorch.data.storage.shard_writer import ShardWriter
from tinytorch.data.storage.shards import CorruptShardError, read_manifest
from tinytorch.data.storage.span import ShardSpan, span_supported
from tinytorch.data.storage.span_reader import SpanReader, grid_offset

KINDS = [MappedReader, *([SpanReader] if span_supported() else [])]
# The span keeps its shard files open while there are few of them; with many it checks by path.
READERS = ["mapped", *(["span", "span without descriptors"] if span_supported() else [])]


@pytest.fixture(params=READERS)
def kind(request, monkeypatch):
    if request.param == "span without descriptors":
        monkeypatch.setattr(span_reader, "fd_budget", lambda: 0)
    return MappedReader if request.param == "mapped" else SpanReader


def write(root, samples, per_shard):
    writer = ShardWriter(root, samples_per_shard=per_shard, bytes_per_shard=None)
    for s in samples:
        writer.add(s)
    writer.close()


def reader(kind, root, max_open_shards=None, verify="crc32"):
    manifest = read_manifest(root)
    identities = [stat_shard(root, s) for s in manifest.shards]
    return kind(root, manifest, identities, Verifier(root, manifest, verify), max_open_shards)


def read(r, indices):
    shards, rows = ShardIndex([s.samples for s in r.manifest.shards]).locate(
        np.asarray(indices, dtype=np.intp)
    )
    return r.read(shards, rows)


def samples(n=60, width=48):
    rng = np.random.default_rng(0)
    return [
        (rng.integers(0, 256, width, dtype=np.uint8), i, rng.bytes(int(rng.integers(0, 50))), f"name{i}")
        for i in range(n)
    ]


@pytest.mark.parametrize("max_open_shards", [None, 3])
def test_every_reader_returns_the_written_bytes(tmp_path, kind, max_open_shards):
    data = samples()
    write(tmp_path, data, per_shard=7)
    order = np.random.default_rng(1).permutation(len(data))
    r = reader(kind, tmp_path, max_open_shards)
    for batch in np.array_split(order, 5):
        got = read(r, batch)
        np.testing.assert_array_equal(got["0"], np.stack([data[i][0] for i in batch]))
        assert got["0"].dtype == np.uint8
        assert got["1"].tolist() == batch.tolist()
        assert got["1"].dtype == np.int64
        assert got["2"] == [data[i][2] for i in batch]
        assert all(type(v) is bytes for v in got["2"])
        assert got["3"] == [f"name{i}" for i in batch]
    if max_open_shards is not None:
        assert len(r.in_use()) <= max_open_shards
    r.close()


@pytest.mark.parametrize("max_open_shards", [None, 2])
def test_max_open_shards_means_the_same_in_both_readers(tmp_path, max_open_shards):
    write(tmp_path, samples(40), per_shard=5)  # 8 shards
    seen = []
    for kind in KINDS:
        r = reader(kind, tmp_path, max_open_shards)
        for window in ([0, 1, 5, 6], [10, 11], [20, 25], [30, 39]):  # shards 0,1 / 2 / 4,5 / 6,7
            read(r, window)
        seen.append((r.in_use(), r.entries))
    expected = ([6, 7], 7) if max_open_shards == 2 else ([0, 1, 2, 4, 5, 6, 7], 7)
    assert seen == [expected] * len(KINDS)


def test_records_on_a_grid_or_at_any_byte():
    assert grid_offset(np.array([0, 96, 192 + 48]), 48) == 0
    assert grid_offset(np.array([16, 96 + 16]), 48) == 16
    assert grid_offset(np.array([16, 64 + 16]), 48) is None
    assert grid_offset(np.array([0, 2 << 20]), 1155) is None  # 2 MiB is no multiple of 1155
    assert grid_offset(np.array([0, 64]), 0) is None


def test_a_shard_truncated_while_in_use_is_an_error_naming_it(tmp_path, kind):
    write(tmp_path, samples(20), per_shard=5)
    r = reader(kind, tmp_path, verify="size")
    read(r, [0, 7, 19])
    path = tmp_path / "shard-00001.tts"
    os.truncate(path, 64)
    read(r, [0, 19])  # other shards go on being read
    with pytest.raises(
        CorruptShardError,
        match=r"shard-00001\.tts: size is 64 bytes, expected \d+ bytes \(as when it was opened\)",
    ):
        read(r, [0, 7])  # instead of SIGBUS
    with pytest.raises(CorruptShardError, match=r"shard-00001\.tts: size"):
        r.check_files()


def test_check_files_names_a_shard_changed_by_path_even_before_it_is_read(tmp_path, kind):
    write(tmp_path, samples(20), per_shard=5)
    r = reader(kind, tmp_path)
    r.check_files()
    path = tmp_path / "shard-00003.tts"
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)  # the same bytes in another file
    with pytest.raises(CorruptShardError, match=r"shard-00003\.tts: identity"):
        r.check_files()


def test_end_offsets_changed_after_open_never_read_outside_the_shard(tmp_path, kind):
    write(tmp_path, samples(20), per_shard=5)
    r = reader(kind, tmp_path, verify="size")
    info = r.manifest.shards[1]
    path = tmp_path / info.file
    fd = os.open(path, os.O_RDWR)
    try:
        # Rewritten in place: same size, and (on a coarse clock) possibly the same mtime.
        os.pwrite(fd, struct.pack("<q", 1 << 40), info.offsets["2"] + 8 * 2)
        stat = os.fstat(fd)
        os.utime(fd, ns=(stat.st_atime_ns, r.identities[1].mtime_ns))
    finally:
        os.close(fd)
    with pytest.raises(CorruptShardError, match=r"shard-00001\.tts: field '2'.s end offsets"):
        read(r, [6, 7])


def test_a_closed_reader_opens_again(tmp_path, kind):
    write(tmp_path, samples(10), per_shard=5)
    r = reader(kind, tmp_path)
    before = read(r, [9, 0])["1"].tolist()
    r.close()
    r.close()
    assert r.in_use() == []
    assert read(r, [9, 0])["1"].tolist() == before


def test_the_span_reader_is_chosen_where_it_works(tmp_path):
    write(tmp_path, samples(10), per_shard=5)
    manifest = read_manifest(tmp_path)
    identities = [stat_shard(tmp_path, s) for s in manifest.shards]
    chosen = open_reader(tmp_path, manifest, identities, Verifier(tmp_path, manifest, "size"), None)
    assert type(chosen) is (SpanReader if span_supported() else MappedReader)


@pytest.mark.skipif(not span_supported(), reason="Linux only")
def test_read_ahead_brings_shards_into_the_page_cache(tmp_path):
    write(tmp_path, [np.full(4096, i, np.uint8) for i in range(100)], per_shard=20)
    r = reader(SpanReader, tmp_path, max_open_shards=2)
    paths = sorted(tmp_path.glob("*.tts"))
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    for fd in fds:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    probe = ShardSpan(fds, [p.stat().st_size for p in paths])  # mincore on the same files
    cold = not probe.is_cached(3)
    r.read_ahead([3, 1]).join(timeout=10)
    assert probe.is_cached(3)
    assert probe.is_cached(1)
    assert r.in_use() == []  # read ahead, not in use: this process keeps no mapping
    assert r.verifier.record.passed(3, r.identities[3])  # checked on the way
    assert read(r, [65, 21])["0"][:, 0].tolist() == [65, 21]
    assert r.read_ahead([]) is None
    probe.close()
    for fd in fds:
        os.close(fd)
    if not cold:
        pytest.skip("this filesystem keeps files in memory (tmpfs): read-ahead not observable")


def test_mapped_reader_reads_nothing_ahead(tmp_path):
    write(tmp_path, samples(10), per_shard=5)
    assert reader(MappedReader, tmp_path).read_ahead([0]) is None
