"""In-use bookkeeping, the verification modes, and checksums checked once across threads and forks."""

import contextlib
import multiprocessing
import os
import threading

import numpy as np
import pytest

from tinytorch.data.storage import shard_checks
from tinytorch.data.storage.shard_checks import ChecksumRecord, InUse, Verifier, resolve_verify
from tinytorch.data.storage.shard_files import Identity, stat_shard
from tinytorch.data.storage.shard_writer import ShardWriter
from tinytorch.data.storage.shards import CorruptShardError, read_manifest


def test_in_use_keeps_at_most_limit_and_the_earliest_entered_leaves_first():
    in_use = InUse(2)
    assert in_use.enter([0, 1]) == ([0, 1], [])
    assert in_use.enter([1, 0]) == ([], [])  # already in use: nothing changes, order kept
    assert in_use.enter([2]) == ([2], [0])
    assert in_use.shards() == [1, 2]
    assert in_use.enter([3, 4, 5]) == ([3, 4, 5], [1, 2, 3])  # more at once than the limit
    assert in_use.entries == 6
    unbounded = InUse(None)
    unbounded.enter(range(100))
    assert len(unbounded.shards()) == 100


def test_verify_modes():
    assert resolve_verify("crc32") == "crc32"
    assert resolve_verify(np.True_) == resolve_verify(True) == "sha256"
    assert resolve_verify(False) == "size"
    with pytest.raises(ValueError, match="'crc32' \\(the default\\)"):
        resolve_verify("md5")
    with pytest.raises(TypeError, match="verify must be one of"):
        resolve_verify(1)


def test_a_checksum_record_is_shared_with_forked_processes_for_the_same_file_only():
    record = ChecksumRecord(3)
    a, b = Identity(1, 2, 10, 3), Identity(1, 9, 10, 3)
    process = multiprocessing.get_context("fork").Process(target=record.record, args=(1, a))
    process.start()
    process.join()
    assert record.passed(1, a)  # recorded in the child, seen here
    assert not record.passed(1, b)  # another file under the same name: checked again
    assert not record.passed(0, a)
    import pickle

    copy = pickle.loads(pickle.dumps(record))
    assert copy.passed(1, a)


def shards(tmp_path, n=4):
    writer = ShardWriter(tmp_path, samples_per_shard=1, bytes_per_shard=None)
    for i in range(n):
        writer.add(np.full(1000, i))
    manifest = writer.close()
    return manifest, [stat_shard(tmp_path, info) for info in manifest.shards]


def test_threads_split_the_checking_and_each_shard_is_checked_once(tmp_path, monkeypatch):
    manifest, identities = shards(tmp_path, 8)
    checked = []
    real = shard_checks.check_checksum

    def counting(fd, path, info, mode):
        checked.append(info.file)
        real(fd, path, info, mode)

    monkeypatch.setattr(shard_checks, "check_checksum", counting)
    verifier = Verifier(tmp_path, manifest, "crc32")
    fds = {k: os.open(tmp_path / s.file, os.O_RDONLY) for k, s in enumerate(manifest.shards)}
    threads = [
        threading.Thread(
            target=verifier.ensure,
            args=(list(range(8)), lambda k: contextlib.nullcontext(fds[k]), identities.__getitem__),
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(checked) == sorted(s.file for s in manifest.shards)
    verifier.ensure(list(range(8)), lambda k: contextlib.nullcontext(fds[k]), identities.__getitem__)
    assert len(checked) == 8  # passed once: never again for the same files
    for fd in fds.values():
        os.close(fd)


def test_a_corrupt_shard_fails_in_every_thread_that_needs_it(tmp_path):
    manifest, identities = shards(tmp_path, 2)
    path = tmp_path / manifest.shards[1].file
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    identities = [stat_shard(tmp_path, info) for info in manifest.shards]
    verifier = Verifier(tmp_path, read_manifest(tmp_path), "sha256")
    errors = []

    def need():
        with open(path, "rb") as f, open(tmp_path / manifest.shards[0].file, "rb") as g:
            try:
                fds = [g.fileno(), f.fileno()]
                verifier.ensure([0, 1], lambda k: contextlib.nullcontext(fds[k]), identities.__getitem__)
            except CorruptShardError as e:
                errors.append(e)

    threads = [threading.Thread(target=need) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 3
    assert all(e.field == "sha256" and e.path == str(path) for e in errors)
