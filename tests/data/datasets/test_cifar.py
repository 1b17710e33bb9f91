import numpy as np
import pytest

from support.cifar_files import cifar10_files, cifar100_files, make_tar, md5
from support.http_server import LocalServer, closed_port
from tinytorch import DataLoader
from tinytorch.data.datasets.cifar import CIFAR10Dataset, CIFAR100Dataset
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.storage.download import ChecksumError, DownloadError
from tinytorch.data.storage.extract import UnsafeArchiveError
from tinytorch.data.storage.unpickle import ForbiddenPickleError

ARCHIVE = make_tar(cifar10_files(per_batch=8), folder="cifar-10-batches-py")
ARCHIVE_100 = make_tar(cifar100_files(train=30, test=6), folder="cifar-100-python")


@pytest.fixture
def server():
    with LocalServer({"/cifar-10-python.tar.gz": ARCHIVE, "/cifar-100-python.tar.gz": ARCHIVE_100}) as s:
        yield s


def cifar(server, root, **kwargs):
    kwargs.setdefault("url", server.url("/cifar-10-python.tar.gz"))
    kwargs.setdefault("md5", md5(ARCHIVE))
    return CIFAR10Dataset(root, progress=False, **kwargs)


def test_fresh_download_gives_the_documented_layout(server, tmp_path):
    train = cifar(server, tmp_path)
    assert len(train) == 40
    assert train.data.shape == (40, 3, 32, 32)
    assert train.data.dtype == np.uint8
    assert train.data.flags.c_contiguous
    assert train.targets.dtype == np.int64
    assert train.labels is train.targets
    assert train.classes[:2] == ["airplane", "automobile"]
    image, label = train[5]
    assert image.shape == (3, 32, 32)
    assert isinstance(label, int)
    assert image[1, 0, 1] == label * 20  # images stay aligned with labels
    test = cifar(server, tmp_path, train=False)
    assert len(test) == 8


def test_second_construction_uses_the_cache_and_no_network(server, tmp_path):
    cifar(server, tmp_path)
    requests = len(server.behaviour.requests)
    again = CIFAR10Dataset(tmp_path, download=False, md5=md5(ARCHIVE))
    assert len(server.behaviour.requests) == requests
    assert isinstance(again.data.base, np.memmap)
    np.testing.assert_array_equal(again.data, cifar(server, tmp_path).data)


def test_existing_archive_is_used_without_network(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(ARCHIVE)
    url = f"http://127.0.0.1:{closed_port()}/never"
    assert len(CIFAR10Dataset(tmp_path, url=url, md5=md5(ARCHIVE), progress=False)) == 40


def test_extracted_files_are_used_and_cached(server, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, data in cifar10_files(per_batch=8).items():
        (folder / name).write_bytes(data)
    ds = CIFAR10Dataset(tmp_path, download=False)
    assert len(ds) == 40
    assert (folder / "tinytorch-cache" / "train" / "manifest.json").exists()
    assert server.behaviour.requests == []


def test_replaced_batch_file_invalidates_the_cache(server, tmp_path):
    cifar(server, tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    files = cifar10_files(per_batch=8, seed=1)
    (folder / "data_batch_1").write_bytes(files["data_batch_1"])
    ds = CIFAR10Dataset(tmp_path, download=False)
    np.testing.assert_array_equal(ds.targets[:8], np.asarray(_labels_of(files["data_batch_1"])))


def _labels_of(batch_bytes):
    from tinytorch.data.storage.unpickle import safe_load

    return safe_load(batch_bytes, "x")[b"labels"]


def test_environment_variables_choose_the_mirror(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYTORCH_CIFAR10_URL", server.url("/cifar-10-python.tar.gz"))
    monkeypatch.setenv("TINYTORCH_CIFAR10_MD5", md5(ARCHIVE))
    assert len(CIFAR10Dataset(tmp_path, progress=False)) == 40
    assert server.behaviour.requests


def test_download_false_with_nothing_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        CIFAR10Dataset(tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert str(tmp_path / "cifar-10-python.tar.gz") in message
    assert "download=True" in message
    assert "c58f30108f718f92721af3b95e74349a" in message


def test_checksum_mismatch_leaves_root_clean(server, tmp_path):
    with pytest.raises(ChecksumError, match="expected 0000"):
        cifar(server, tmp_path, md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_bad_archive_in_root_without_download(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(ARCHIVE[:100])
    with pytest.raises(ChecksumError, match="Delete it and run again with download=True"):
        CIFAR10Dataset(tmp_path, download=False, md5=md5(ARCHIVE))


def test_bad_archive_in_root_is_replaced_when_downloading(server, tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"garbage")
    assert len(cifar(server, tmp_path)) == 40


def test_resume_after_drop_through_the_dataset(server, tmp_path):
    server.behaviour.drop_after = len(ARCHIVE) // 2
    server.behaviour.drops = 1
    assert len(cifar(server, tmp_path)) == 40
    assert server.behaviour.requests[1][1] == f"bytes={len(ARCHIVE) // 2}-"


def test_no_network_says_how_to_supply_the_archive(tmp_path, monkeypatch):
    monkeypatch.setattr("tinytorch.data.storage.download.BACKOFF_SECONDS", 0.01)
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-python.tar.gz"
    with pytest.raises(DownloadError) as info:
        CIFAR10Dataset(tmp_path, url=url, progress=False)
    message = str(info.value)
    assert "put it at" in message
    assert str(tmp_path / "cifar-10-python.tar.gz") in message
    assert not (tmp_path / "cifar-10-batches-py").exists()


def serve_archive(server, data):
    server.behaviour.files["/evil.tar.gz"] = data
    return {"url": server.url("/evil.tar.gz"), "md5": md5(data)}


def test_traversal_member_in_archive(server, tmp_path):
    evil = make_tar({"../escape.txt": b"x"})
    with pytest.raises(UnsafeArchiveError):
        cifar(server, tmp_path / "root", **serve_archive(server, evil))
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "root" / "cifar-10-batches-py").exists()


def test_malicious_pickle_in_archive_leaves_no_dataset(server, tmp_path):
    files = cifar10_files(per_batch=8)
    files["data_batch_1"] = b"\x80\x02cos\nsystem\nU\x04trueq\x85R."
    evil = make_tar(files, folder="cifar-10-batches-py")
    with pytest.raises(ForbiddenPickleError):
        cifar(server, tmp_path, **serve_archive(server, evil))
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_getitems_is_one_take_and_matches_getitem(server, tmp_path):
    ds = cifar(server, tmp_path)
    batch = ds.__getitems__([3, 0, 39])
    assert isinstance(batch, StackedSamples)
    images, labels = batch.collated()
    for k, i in enumerate([3, 0, 39]):
        np.testing.assert_array_equal(images[k], ds[i][0])
        assert labels[k] == ds[i][1]
    with pytest.raises(IndexError):
        ds[40]


def test_per_sample_transforms(server, tmp_path):
    ds = cifar(server, tmp_path, transform=lambda x: x[:, :2, :2], target_transform=lambda y: y + 100)
    image, label = ds[0]
    assert image.shape == (3, 2, 2)
    assert label >= 100
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 3, 2, 2)
    assert (y >= 100).all()


def test_cifar100_fine_and_coarse(server, tmp_path):
    ds = CIFAR100Dataset(
        tmp_path, url=server.url("/cifar-100-python.tar.gz"), md5=md5(ARCHIVE_100), progress=False
    )
    assert len(ds) == 30
    assert len(ds.classes) == 100
    assert len(ds.coarse_classes) == 20
    np.testing.assert_array_equal(ds.coarse_targets, ds.targets // 5)
    assert ds.coarse_targets.dtype == np.int64


def test_loader_over_cifar(server, tmp_path):
    loader = DataLoader(cifar(server, tmp_path), batch_size=16, shuffle=True, seed=0)
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [16, 16, 8]
    assert batches[0][0].dtype == np.uint8
