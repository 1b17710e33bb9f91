import json

import numpy as np

from tinytorch.data.storage.array_cache import fingerprint, load_arrays, save_arrays


def test_round_trip_is_memory_mapped_and_read_only(tmp_path):
    arrays = {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "y": np.arange(3)}
    save_arrays(tmp_path / "c", arrays, {"v": 1}, meta={"names": ["a"]})
    loaded, meta = load_arrays(tmp_path / "c", {"v": 1})
    np.testing.assert_array_equal(loaded["x"], arrays["x"])
    assert meta == {"names": ["a"]}
    assert type(loaded["x"]) is np.ndarray
    assert not loaded["x"].flags.writeable
    assert isinstance(loaded["x"].base, np.memmap)


def test_other_source_or_missing_cache_is_not_trusted(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(3)}, {"v": 1})
    assert load_arrays(tmp_path / "c", {"v": 2}) is None
    assert load_arrays(tmp_path / "missing", {"v": 1}) is None


def test_truncated_array_file_is_not_trusted(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(1000)}, {"v": 1})
    path = tmp_path / "c" / "x.npy"
    path.write_bytes(path.read_bytes()[:500])
    assert load_arrays(tmp_path / "c", {"v": 1}) is None


def test_manifest_with_wrong_shape_is_not_trusted(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(10)}, {"v": 1})
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    manifest["arrays"]["x"]["shape"] = [11]
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
    assert load_arrays(tmp_path / "c", {"v": 1}) is None


def test_rewrite_replaces_and_leaves_no_temporaries(tmp_path):
    save_arrays(tmp_path / "c", {"x": np.zeros(3)}, {"v": 1})
    save_arrays(tmp_path / "c", {"x": np.ones(3)}, {"v": 2})
    assert load_arrays(tmp_path / "c", {"v": 2})[0]["x"].tolist() == [1, 1, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_fingerprint_changes_when_a_file_is_replaced(tmp_path):
    f = tmp_path / "a"
    f.write_bytes(b"1")
    before = fingerprint([f])
    f.write_bytes(b"22")
    assert fingerprint([f]) != before
