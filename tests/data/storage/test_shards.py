import json

import numpy as np
import pytest

from tinytorch.data.storage.shards import MANIFEST, ShardError, ShardWriter, read_manifest


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
    assert read_manifest(tmp_path) == m


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


def test_empty_source_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no samples"):
        ShardWriter(tmp_path, samples_per_shard=1, bytes_per_shard=None).close()


def test_missing_manifest_means_unfinished(tmp_path):
    with pytest.raises(ShardError, match="did not finish"):
        read_manifest(tmp_path)


def test_unknown_version_and_garbage(tmp_path):
    write(tmp_path, [np.zeros(2)])
    raw = json.loads((tmp_path / MANIFEST).read_text())
    raw["version"] = 99
    (tmp_path / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ShardError, match="format version 99"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ShardError, match="not valid JSON"):
        read_manifest(tmp_path)
