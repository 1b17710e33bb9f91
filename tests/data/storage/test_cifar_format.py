import numpy as np
import pytest

from support.cifar_files import cifar10_files, cifar100_files, py2_pickle
from tinytorch.data.storage.cifar_format import CIFAR10, CIFAR100, CorruptDatasetError, read_split
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
