import errno
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.cifar_files import cifar10_files, cifar100_files, py2_pickle
from support.fifo import without_hanging
from tinytorch.data.storage.cifar_format import CIFAR10, CIFAR100, CorruptDatasetError, read_split
from tinytorch.data.storage.regular_files import NotRegularFileError
from tinytorch.data.storage.unpickle import ForbiddenPickleError


def folder_with(tmp_path, files):
    folder = tmp_path / "f"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_reads_train_and_test_in_official_order(tmp_path):
    folder = folder_with(tmp_path, cifar10_files(per_batch=4))
    train = read_split(CIFAR10, folder, train=True)
    test = read_split(CIFAR10, folder, train=False)
    assert train.images.shape == (20, 3, 32, 32)
    assert train.images.dtype == np.uint8
    assert train.images.flags.c_contiguous
    assert test.images.shape == (4, 3, 32, 32)
    assert train.labels["labels"].dtype == np.int64
    # R, G, B planes: pixel (c, 0, 1) of image j is value 3072-row element c*1024 + 1.
    np.testing.assert_array_equal(train.images[:, 1, 0, 1], train.labels["labels"] * 20)
    assert train.names["label_names"][0] == "airplane"


def test_cifar100_has_fine_and_coarse(tmp_path):
    folder = folder_with(tmp_path, cifar100_files(train=6, test=2))
    split = read_split(CIFAR100, folder, train=True)
    assert set(split.labels) == {"fine_labels", "coarse_labels"}
    np.testing.assert_array_equal(split.labels["coarse_labels"], split.labels["fine_labels"] // 5)
    assert len(split.names["coarse_label_names"]) == 20


def replace(tmp_path, name, data):
    files = cifar10_files(per_batch=4)
    files[name] = data
    return folder_with(tmp_path, files)


def test_truncated_batch_names_the_file(tmp_path):
    data = cifar10_files(per_batch=4)["data_batch_3"]
    folder = replace(tmp_path, "data_batch_3", data[: len(data) // 2])
    with pytest.raises(CorruptDatasetError, match=r"data_batch_3 is truncated or not a valid pickle"):
        read_split(CIFAR10, folder, train=True)


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        (
            {b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4},
            r"'data' should be an \(n, 3072\) uint8 array, got uint8 of shape \(4, 3000\)",
        ),
        (
            {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3},
            r"'labels' has shape \(3,\), expected \(4,\)",
        ),
        (
            {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]},
            r"values lie in \[0, 10\], expected \[0, 9\]",
        ),
        (
            {b"data": np.zeros((3, 3072), np.uint8), b"labels": [0] * 3},
            "holds 3 images, but batches.meta says each batch holds 4",
        ),
        ({b"labels": [0] * 4}, "has no 'data' entry"),
        ([1, 2], "should hold a dict, got list"),
    ],
)
def test_malformed_batches_name_file_and_problem(tmp_path, batch, match):
    folder = replace(tmp_path, "data_batch_2", py2_pickle(batch))
    with pytest.raises(CorruptDatasetError, match=match) as info:
        read_split(CIFAR10, folder, train=True)
    assert "data_batch_2" in str(info.value)


def test_forbidden_global_in_a_batch(tmp_path):
    evil = b"\x80\x02cos\nsystem\nU\x04trueq\x85R."
    folder = replace(tmp_path, "test_batch", evil)
    with pytest.raises(ForbiddenPickleError, match="os.system"):
        read_split(CIFAR10, folder, train=False)


def test_missing_file(tmp_path):
    files = cifar10_files(per_batch=4)
    del files["data_batch_5"]
    with pytest.raises(FileNotFoundError, match="data_batch_5 is missing"):
        read_split(CIFAR10, folder_with(tmp_path, files), train=True)


# -- hostile files (hostile-tester items 4 and 5) ------------------------------------------------


def test_a_directory_or_fifo_in_place_of_a_batch_is_a_corrupt_dataset_error(tmp_path):
    folder = folder_with(tmp_path, cifar10_files(per_batch=4))
    (folder / "data_batch_1").unlink()
    (folder / "data_batch_1").mkdir()
    with pytest.raises(CorruptDatasetError, match=r"data_batch_1 cannot be read \(is a directory") as info:
        read_split(CIFAR10, folder, train=True)
    assert info.value.path == folder / "data_batch_1"
    assert isinstance(info.value.__cause__, NotRegularFileError)
    assert info.value.__cause__.errno == errno.EISDIR
    os.rmdir(folder / "data_batch_1")
    os.mkfifo(folder / "data_batch_1")
    with pytest.raises(CorruptDatasetError, match=r"data_batch_1 cannot be read \(is a FIFO"):
        without_hanging(lambda: read_split(CIFAR10, folder, train=True), [folder / "data_batch_1"])


def test_a_damaged_pickle_names_the_file_with_the_unpicklers_error_as_cause(tmp_path):
    bad_encoding = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x06\x00\x00\x00latiY1\x86R."
    folder = replace(tmp_path, "data_batch_4", bad_encoding)
    with pytest.raises(
        CorruptDatasetError, match=r"data_batch_4 is truncated or not a valid pickle \(LookupError"
    ):
        read_split(CIFAR10, folder, train=True)


@pytest.mark.parametrize(
    ("meta", "batch", "match"),
    [
        (
            {b"label_names": [b"\xff"] * 10},
            None,
            r"batches.meta: 'label_names' holds a name that is not UTF-8",
        ),
        (
            {b"label_names": [1] * 10},
            None,
            r"'label_names' should list class names \(bytes or str\), got a int",
        ),
        (
            None,
            {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0.5] * 4},
            "should be a list of ints, got float64",
        ),
        (
            None,
            {b"data": np.zeros((4, 3072), np.uint8), b"labels": [[0], [1, 2], 3, 4]},
            "should be a list of ints",
        ),
        (
            None,
            {b"data": np.zeros((4, 3072), np.uint8), b"labels": [2**63] * 4},
            r"values lie in \[9223372036854775808",
        ),
    ],
)
def test_malformed_values_are_corrupt_dataset_errors(tmp_path, meta, batch, match):
    files = cifar10_files(per_batch=4)
    if meta is not None:
        files["batches.meta"] = pickle.dumps({b"num_cases_per_batch": 4, **meta}, protocol=2)
    if batch is not None:
        files["data_batch_1"] = pickle.dumps(batch, protocol=2)
    with pytest.raises(CorruptDatasetError, match=match):
        read_split(CIFAR10, folder_with(tmp_path, files), train=True)


VALID = cifar10_files(per_batch=2)


def _mutated(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out if cut is None else out[: cut % len(out)])


# Positions: the pickle's opcodes and framing sit at both ends (the 6 KB of pixels in between
# parse whatever their bytes), so a third of the edits land near each end.
_POSITION = st.one_of(st.integers(0, 300), st.integers(-300, -1), st.integers(0, 1 << 20))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.sampled_from(["test_batch", "batches.meta"]),
    edits=st.lists(st.tuples(_POSITION, st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.none() | st.integers(0, 1 << 20),
)
def test_fuzzed_batch_files_give_valid_data_or_a_corrupt_dataset_error(target, edits, cut):
    """Hostile-tester item 5: random byte mutations of valid CIFAR files. Every outcome is a
    checked split or a CorruptDatasetError naming a file (or ForbiddenPickleError, when the mutation hits the
    name of a global: refused as a hostile file), never another exception."""
    contents = dict(VALID)
    contents[target] = _mutated(VALID[target], edits, cut)
    try:
        split = read_split(CIFAR10, Path("cifar-10-batches-py"), train=False, contents=contents)
    except (CorruptDatasetError, ForbiddenPickleError) as e:
        blamed = getattr(e, "path", None)
        if blamed is not None:  # a batch file, or the meta file
            assert blamed.name in contents
        return
    assert split.images.dtype == np.uint8
    assert split.images.shape[1:] == (3, 32, 32)
    labels = split.labels["labels"]
    assert labels.dtype == np.int64
    assert labels.shape == (len(split.images),)
    assert ((labels >= 0) & (labels < 10)).all()
    names = split.names["label_names"]
    assert len(names) == 10
    assert all(isinstance(n, str) for n in names)
