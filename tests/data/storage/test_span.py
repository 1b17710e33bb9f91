import os

import numpy as np
import pytest

from tinytorch.data.storage.span import ShardSpan, SpanError, gather_records, span_supported

pytestmark = pytest.mark.skipif(not span_supported(), reason="Linux only")


@pytest.fixture
def opened():
    """Open files by path; closed after the test (the span does not own them)."""
    fds = []

    def open_all(paths):
        fds.extend(os.open(p, os.O_RDONLY) for p in paths)
        return fds[-len(paths) :]

    yield open_all
    for fd in fds:
        os.close(fd)


def test_files_are_mapped_back_to_back_and_read_only(tmp_path, opened):
    contents = [bytes(range(10)), b"", bytes([7]) * 5000]
    paths = []
    for i, data in enumerate(contents):
        path = tmp_path / f"f{i}"
        path.write_bytes(data)
        paths.append(path)
    span = ShardSpan(opened(paths), [len(c) for c in contents])
    for data, start in zip(contents, span.starts.tolist(), strict=True):
        assert span.data[start : start + len(data)].tobytes() == data
    assert not span.data.flags.writeable
    assert span.starts.tolist()[1] % (2 << 20) == 0  # 2 MiB slots: whole-folio mappings
    assert span.data.ctypes.data % (2 << 20) == 0
    span.close()


@pytest.mark.parametrize("record", [1, 4, 256, 257, 1000])  # small (opaque items) and large (rows)
def test_gather_records_reads_records_at_any_byte(record):
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)
    offsets = np.array([3, 0, 5000 - record, 17, 3])
    out = gather_records(data, offsets, record)
    assert out.shape == (5, record)
    assert out.dtype == np.uint8
    assert out.tolist() == [data[o : o + record].tolist() for o in offsets]
    assert gather_records(data, np.array([], dtype=np.int64), record).shape == (0, record)


def test_a_file_that_cannot_be_mapped_raises_span_error(tmp_path, opened):
    (tmp_path / "f").write_bytes(b"x" * 10)
    fd = os.open(tmp_path / "f", os.O_WRONLY)  # not readable: PROT_READ mapping refused
    try:
        with pytest.raises(SpanError, match="could not map shard 0"):
            ShardSpan([fd], [10])
    finally:
        os.close(fd)


def test_released_and_prefetched_shards_still_read_the_same(tmp_path, opened):
    contents = [bytes([i]) * 10_000 for i in range(3)]
    paths = []
    for i, data in enumerate(contents):
        paths.append(tmp_path / f"f{i}")
        paths[-1].write_bytes(data)
    span = ShardSpan(opened(paths), [len(c) for c in contents])
    before = [span.data[s : s + 10_000].tobytes() for s in span.starts.tolist()]
    for k in range(3):
        span.prefetch(k)
        span.release(k)
    assert [span.data[s : s + 10_000].tobytes() for s in span.starts.tolist()] == before == contents
    span.close()
    span.release(0)  # a closed span ignores advice instead of touching unmapped memory


def test_prefetch_checks_the_page_cache_first(tmp_path, opened):
    path = tmp_path / "shard"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    span = ShardSpan(opened([path]), [1 << 20])
    path.read_bytes()
    assert span.is_cached(0)  # read just now: prefetch would ask for nothing
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    if span.is_cached(0):
        span.close()
        pytest.skip("this filesystem keeps the file in memory (tmpfs)")
    span.prefetch(0)  # asks the kernel to read it back
    assert span.data[: 1 << 20].tobytes() == bytes(range(256)) * 4096
    span.close()
