import numpy as np
import pytest

from tinytorch.data.storage.span import ShardSpan, gather_records, span_supported

pytestmark = pytest.mark.skipif(not span_supported(), reason="Linux only")


def test_files_are_mapped_back_to_back_and_read_only(tmp_path):
    contents = [bytes(range(10)), b"", bytes([7]) * 5000]
    paths = []
    for i, data in enumerate(contents):
        path = tmp_path / f"f{i}"
        path.write_bytes(data)
        paths.append(path)
    span = ShardSpan(paths, [len(c) for c in contents])
    for data, start in zip(contents, span.starts.tolist(), strict=True):
        assert span.data[start : start + len(data)].tobytes() == data
    assert not span.data.flags.writeable
    assert span.starts.tolist()[1] % 4096 == 0
    span.close()


def test_gather_records_reads_rows_at_any_byte():
    data = np.arange(20, dtype=np.uint8)
    out = gather_records(data, np.array([3, 0, 15]), 4)
    assert out.tolist() == [[3, 4, 5, 6], [0, 1, 2, 3], [15, 16, 17, 18]]


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        ShardSpan([tmp_path / "nope"], [10])
