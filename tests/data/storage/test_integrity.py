import pickle
import zlib

import pytest

from tinytorch.data.storage.integrity import (
    CorruptDatasetError,
    FileRecord,
    FileStamp,
    file_crc32,
    read_records,
    stamp_is_settled,
    write_records,
)


def test_corrupt_dataset_error_keeps_its_path_through_pickle(tmp_path):
    error = CorruptDatasetError("bad", path=tmp_path / "f")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is CorruptDatasetError
    assert (str(again), again.path) == ("bad", tmp_path / "f")
    assert isinstance(again, ValueError)


def test_stamp_changes_with_any_write_and_round_trips_as_json(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    stamp = FileStamp.of(path)
    assert FileStamp.from_json(stamp.to_json()) == stamp
    path.write_bytes(b"abcd")
    assert FileStamp.of(path) != stamp


@pytest.mark.parametrize("value", [None, [1, 2, 3], [1, 2, 3, "4"], [1, 2, 3, 4.0], "x", [True, 1, 2, 3]])
def test_anything_else_is_no_stamp(value):
    assert FileStamp.from_json(value) is None


def test_a_stamp_is_settled_only_when_older_than_the_clock():
    stamp = FileStamp(1, 2, 100, 100)
    assert stamp_is_settled(stamp, 101)
    assert not stamp_is_settled(stamp, 100)  # the same tick: a later write could keep this stamp


def test_file_crc32_is_zlibs(tmp_path):
    data = bytes(range(256)) * 50_000
    (tmp_path / "f").write_bytes(data)
    assert file_crc32(tmp_path / "f") == zlib.crc32(data)


def test_record_says_what_differs():
    record = FileRecord.of(b"hello")
    assert record.describe_mismatch(b"hello") is None
    assert record.describe_mismatch(b"hell") == "has 4 bytes, expected 5"
    assert record.describe_mismatch(b"hellO").startswith("has sha256 ")


def test_records_round_trip_and_damaged_ones_count_as_none(tmp_path):
    path = tmp_path / "sub" / "files.json"
    records = {"a": FileRecord.of(b"1"), "b/c": FileRecord.of(b"22")}
    write_records(path, records, {"origin": "archive"})
    assert read_records(path) == (records, {"origin": "archive"})
    for text in ["{", "[]", '{"info": {}, "files": {"a": {"size": "x"}}}', '{"files": {}}']:
        path.write_text(text)
        assert read_records(path) is None
    assert read_records(tmp_path / "missing.json") is None
