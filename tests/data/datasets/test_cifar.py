import json
import os
import pickle
import warnings

import numpy as np
import pytest

from support.cifar_files import cifar10_files, cifar100_files, is_mapped, make_tar, md5
from support.fifo import without_hanging
from support.http_server import LocalServer, closed_port
from tinytorch import DataLoader
from tinytorch.data.datasets.cifar import CIFAR10Dataset, CIFAR100Dataset
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.storage.array_cache import load_arrays
from tinytorch.data.storage.download import ChecksumError, DownloadError
from tinytorch.data.storage.extract import UnsafeArchiveError
from tinytorch.data.storage.integrity import CorruptDatasetError, file_crc32
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
    assert is_mapped(again.data)
    assert is_mapped(again.targets)
    np.testing.assert_array_equal(again.data, cifar(server, tmp_path).data)


def test_existing_archive_is_used_without_network(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(ARCHIVE)
    url = f"http://127.0.0.1:{closed_port()}/never"
    assert len(CIFAR10Dataset(tmp_path, url=url, md5=md5(ARCHIVE), progress=False)) == 40


def test_extracted_files_are_used_and_cached(server, tmp_path):
    folder = extracted_by_hand(tmp_path)
    ds = CIFAR10Dataset(tmp_path, download=False)
    assert len(ds) == 40
    assert (folder / "tinytorch-cache" / "train" / "manifest.json").exists()
    assert server.behaviour.requests == []


def test_a_batch_file_replaced_by_hand_is_an_error_without_download(server, tmp_path):
    cifar(server, tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    files = cifar10_files(per_batch=8, seed=1)
    (folder / "data_batch_1").write_bytes(files["data_batch_1"])
    with pytest.raises(CorruptDatasetError) as info:
        CIFAR10Dataset(tmp_path, download=False)
    message = str(info.value)
    assert str(folder / "data_batch_1") in message
    assert "recorded from the verified archive" in message
    assert "download=True" in message
    assert str(folder / "tinytorch-cache" / "files.json") in message  # to keep it on purpose
    assert info.value.path == folder / "data_batch_1"
    assert (folder / "data_batch_1").read_bytes() == files["data_batch_1"]  # not touched


def test_a_change_kept_on_purpose_is_accepted_after_deleting_the_record(server, tmp_path):
    cifar(server, tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    files = cifar10_files(per_batch=8, seed=1)
    (folder / "data_batch_1").write_bytes(files["data_batch_1"])
    (folder / "tinytorch-cache" / "files.json").unlink()  # the fix the error names
    ds = CIFAR10Dataset(tmp_path, download=False, md5="0" * 32)  # no archive check needed
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


def test_checksum_mismatch_of_a_download_leaves_root_clean(server, tmp_path):
    with pytest.raises(ChecksumError, match="expected 0000") as info:
        cifar(server, tmp_path, md5="0" * 32)
    assert list(tmp_path.iterdir()) == []
    assert info.value.removed
    assert f"md5='{md5(ARCHIVE)}'" in str(info.value)


MIRROR = make_tar(cifar10_files(per_batch=8, seed=7), folder="cifar-10-batches-py")
"""An archive from a mirror: valid, but its md5 is not the one expected."""


def put_mirror_archive(root):
    path = root / "cifar-10-python.tar.gz"
    path.write_bytes(MIRROR)
    return path


def assert_kept_and_explained(error, archive, expected):
    message = str(error)
    assert md5(MIRROR) in message
    assert expected in message
    assert str(archive) in message
    assert "left as it is" in message
    assert f"md5='{md5(MIRROR)}'" in message
    assert f"TINYTORCH_CIFAR10_MD5={md5(MIRROR)}" in message
    assert (error.path, error.expected_md5, error.actual_md5) == (archive, expected, md5(MIRROR))
    assert (error.url, error.removed) == (None, False)
    assert (error.options.md5_keyword, error.options.md5_env) == ("md5", "TINYTORCH_CIFAR10_MD5")
    assert (error.options.url_keyword, error.options.url_env) == ("url", "TINYTORCH_CIFAR10_URL")
    assert archive.read_bytes() == MIRROR  # byte-identical: never deleted, never replaced


@pytest.mark.parametrize("md5_keyword", [None, "0123456789abcdef0123456789abcdef"])
def test_an_archive_the_user_put_in_root_is_never_deleted_offline(tmp_path, md5_keyword):
    archive = put_mirror_archive(tmp_path)
    url = f"http://127.0.0.1:{closed_port()}/never"
    for download in (False, True):
        with pytest.raises(ChecksumError) as info:
            CIFAR10Dataset(tmp_path, download=download, url=url, md5=md5_keyword, progress=False)
        expected = md5_keyword or "c58f30108f718f92721af3b95e74349a"
        assert_kept_and_explained(info.value, archive, expected)
        origin = "given by md5=" if md5_keyword else "the official CIFAR10 archive's"
        assert origin in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]


def test_download_true_refuses_to_replace_the_users_archive(server, tmp_path):
    archive = put_mirror_archive(tmp_path)
    with pytest.raises(ChecksumError) as info:
        cifar(server, tmp_path, download=True)
    assert_kept_and_explained(info.value, archive, md5(ARCHIVE))
    assert server.behaviour.requests == []  # decided before any download
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]


def test_the_advised_fix_works(tmp_path, monkeypatch):
    put_mirror_archive(tmp_path)
    with pytest.raises(ChecksumError) as info:
        CIFAR10Dataset(tmp_path, download=False)
    assert len(CIFAR10Dataset(tmp_path, download=False, md5=info.value.actual_md5)) == 40
    other = tmp_path / "other"
    other.mkdir()
    put_mirror_archive(other)
    monkeypatch.setenv("TINYTORCH_CIFAR10_MD5", info.value.actual_md5)
    assert len(CIFAR10Dataset(other, download=False)) == 40


def test_cifar100_names_its_own_variables(tmp_path):
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(MIRROR)
    with pytest.raises(ChecksumError, match=f"TINYTORCH_CIFAR100_MD5={md5(MIRROR)}") as info:
        CIFAR100Dataset(tmp_path, download=False)
    assert info.value.options.url_env == "TINYTORCH_CIFAR100_URL"
    assert (tmp_path / "cifar-100-python.tar.gz").read_bytes() == MIRROR


@pytest.mark.parametrize(
    ("kwargs", "env", "error", "match"),
    [
        ({"md5": "c58f30108f718f92721af3b95e7434"}, {}, ValueError, "md5 must be 32 hex digits"),
        ({}, {"TINYTORCH_CIFAR10_MD5": "nope"}, ValueError, r"\$TINYTORCH_CIFAR10_MD5 must be 32 hex"),
        ({"md5": 123}, {}, TypeError, "md5 must be a hex MD5 string"),
        ({"train": "no"}, {}, TypeError, "train must be True or False"),
        ({"download": 1}, {}, TypeError, "download must be True or False"),
    ],
)
def test_malformed_arguments_name_the_keyword_and_touch_nothing(
    tmp_path, monkeypatch, kwargs, env, error, match
):
    archive = put_mirror_archive(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(error, match=match):
        CIFAR10Dataset(tmp_path, progress=False, **kwargs)
    assert archive.read_bytes() == MIRROR


def test_root_that_is_a_file_names_it(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="root=.* is a file"):
        CIFAR10Dataset(tmp_path / "f", download=False)


def test_numpy_bools_are_accepted(server, tmp_path):
    assert len(cifar(server, tmp_path, train=np.bool_(False), download=np.bool_(True))) == 8


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


def extracted_by_hand(root, files=None):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    for name, data in (files or cifar10_files(per_batch=8)).items():
        (folder / name).write_bytes(data)
        os.utime(folder / name, ns=(0, 0))  # as `tar x` leaves them: the archive's times
    return folder


def with_archive_in_root(root):
    (root / "cifar-10-python.tar.gz").write_bytes(ARCHIVE)
    return CIFAR10Dataset(root, md5=md5(ARCHIVE), download=False)


def delete(path):
    path.unlink()


def truncate(path):
    os.truncate(path, path.stat().st_size // 2)


def change_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the pixel data: parses fine, one pixel differs
    path.write_bytes(bytes(data))


DAMAGE = [delete, truncate, change_one_byte]


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("cache", [True, False])
def test_download_true_repairs_an_extracted_file_from_the_verified_archive(tmp_path, damage, cache):
    good = with_archive_in_root(tmp_path)
    expected_images, expected_targets = np.array(good.data), np.array(good.targets)
    folder = tmp_path / "cifar-10-batches-py"
    original = (folder / "data_batch_2").read_bytes()
    if not cache:
        import shutil

        shutil.rmtree(folder / "tinytorch-cache" / "train")
    damage(folder / "data_batch_2")
    url = f"http://127.0.0.1:{closed_port()}/never"  # the archive in root suffices
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = CIFAR10Dataset(tmp_path, md5=md5(ARCHIVE), url=url, download=True)
    np.testing.assert_array_equal(ds.data, expected_images)
    np.testing.assert_array_equal(ds.targets, expected_targets)
    assert (folder / "data_batch_2").read_bytes() == original
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", DAMAGE)
def test_download_false_names_the_changed_file_and_the_fix(tmp_path, damage):
    with_archive_in_root(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    damage(path)
    before = path.read_bytes() if path.exists() else None
    error = FileNotFoundError if damage is delete else CorruptDatasetError
    with pytest.raises(error) as info:
        CIFAR10Dataset(tmp_path, md5=md5(ARCHIVE), download=False)
    assert str(path) in str(info.value)
    assert "download=True" in str(info.value)
    assert (path.read_bytes() if path.exists() else None) == before  # not repaired without leave


def test_repair_downloads_the_archive_when_it_is_not_in_root(server, tmp_path):
    good = cifar(server, tmp_path)
    expected = np.array(good.data)
    (tmp_path / "cifar-10-python.tar.gz").unlink()
    change_one_byte(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    ds = cifar(server, tmp_path)
    np.testing.assert_array_equal(ds.data, expected)
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == ARCHIVE


def test_a_folder_extracted_by_hand_is_checked_against_the_archive_in_root(tmp_path):
    files = cifar10_files(per_batch=8)
    changed = bytearray(files["data_batch_3"])
    changed[len(changed) // 2] ^= 0x01
    folder = extracted_by_hand(tmp_path, {**files, "data_batch_3": bytes(changed)})
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(ARCHIVE)
    with pytest.raises(CorruptDatasetError, match="data_batch_3 has sha256"):
        CIFAR10Dataset(tmp_path, md5=md5(ARCHIVE), download=False)
    ds = CIFAR10Dataset(tmp_path, md5=md5(ARCHIVE), download=True)
    assert (folder / "data_batch_3").read_bytes() == files["data_batch_3"]
    assert len(ds) == 40


def test_a_folder_extracted_by_hand_is_recorded_at_first_use(tmp_path):
    folder = extracted_by_hand(tmp_path)
    CIFAR10Dataset(tmp_path, download=False)
    record = json.loads((folder / "tinytorch-cache" / "files.json").read_text())
    assert record["info"] == {"origin": "first use"}
    change_one_byte(folder / "data_batch_4")
    with pytest.raises(CorruptDatasetError, match="recorded when the folder was first read"):
        CIFAR10Dataset(tmp_path, download=False)
    test = CIFAR10Dataset(tmp_path, train=False, download=False)  # the other split: also recorded
    assert len(test) == 8
    assert "test_batch" in json.loads((folder / "tinytorch-cache" / "files.json").read_text())["files"]


def cache_file(root, name, split="train"):
    return root / "cifar-10-batches-py" / "tinytorch-cache" / split / name


def test_a_flipped_byte_in_the_cache_is_rebuilt_from_the_verified_files(server, tmp_path):
    expected = np.array(cifar(server, tmp_path).data)
    path = cache_file(tmp_path, "images.npy")
    with open(path, "r+b") as f:
        f.seek(-5, os.SEEK_END)
        f.write(b"\xff")
    with pytest.warns(RuntimeWarning, match=r"images.npy has CRC-32 .* rebuilding the cache"):
        ds = CIFAR10Dataset(tmp_path, download=False)
    np.testing.assert_array_equal(ds.data, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(CIFAR10Dataset(tmp_path, download=False).data, expected)


def test_a_truncated_cache_is_rebuilt(server, tmp_path):
    expected = np.array(cifar(server, tmp_path).data)
    os.truncate(cache_file(tmp_path, "images.npy"), 1000)
    with pytest.warns(RuntimeWarning, match="images.npy has 1,000 bytes"):
        ds = CIFAR10Dataset(tmp_path, download=False)
    np.testing.assert_array_equal(ds.data, expected)


def test_a_label_out_of_range_in_the_cache_is_caught_even_with_a_matching_checksum(server, tmp_path):
    expected = np.array(cifar(server, tmp_path).targets)
    path = cache_file(tmp_path, "labels.npy")
    labels = np.load(path, mmap_mode="r+")
    labels[3] = 200
    labels.flush()
    del labels
    manifest_path = cache_file(tmp_path, "manifest.json")
    doc = json.loads(manifest_path.read_text())
    doc["arrays"]["labels"]["crc32"] = file_crc32(path)  # as if built that way: only the range check sees it
    manifest_path.write_text(json.dumps(doc))
    with pytest.warns(RuntimeWarning, match=r"labels.npy: values lie in \[0, 200\], expected \[0, 9\]"):
        ds = CIFAR10Dataset(tmp_path, download=False)
    np.testing.assert_array_equal(ds.targets, expected)


def test_a_corrupt_cache_without_its_sources_is_an_error_naming_the_file(server, tmp_path):
    cifar(server, tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").unlink()
    (tmp_path / "cifar-10-batches-py" / "data_batch_5").unlink()
    with open(cache_file(tmp_path, "images.npy"), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"\x00")
    with pytest.raises(FileNotFoundError, match="data_batch_5"):
        CIFAR10Dataset(tmp_path, download=False)


def test_check_mapped_files_names_a_cache_file_that_shrank(server, tmp_path):
    ds = cifar(server, tmp_path)
    ds.check_mapped_files()
    path = cache_file(tmp_path, "images.npy")
    size = path.stat().st_size
    os.truncate(path, 4096)
    with pytest.raises(CorruptDatasetError) as info:
        ds.check_mapped_files()
    assert info.value.path == path
    assert f"{size:,} bytes when mapped, 4,096 now" in str(info.value)


def test_check_mapped_files_passes_after_a_rebuild_by_rename(server, tmp_path):
    ds = cifar(server, tmp_path)
    expected = np.array(ds.data)
    (cache_file(tmp_path, "manifest.json")).unlink()
    CIFAR10Dataset(tmp_path, download=False)  # rebuilds: new files renamed over the mapped ones
    ds.check_mapped_files()
    np.testing.assert_array_equal(ds.data, expected)


def test_check_mapped_files_on_an_in_memory_dataset_does_nothing(server, tmp_path):
    ds = cifar(server, tmp_path)
    ds.data = np.array(ds.data[:10])
    clone = pickle.loads(pickle.dumps(ds))
    clone.check_mapped_files()
    assert clone.data.shape == (10, 3, 32, 32)


def test_pickled_dataset_maps_the_cache_again(server, tmp_path):
    ds = cifar(server, tmp_path)
    payload = pickle.dumps(ds)
    assert len(payload) < ds.data.nbytes // 4  # the path travels, not the images
    clone = pickle.loads(payload)
    assert is_mapped(clone.data)
    np.testing.assert_array_equal(clone.data, ds.data)
    np.testing.assert_array_equal(clone.targets, ds.targets)
    assert clone.classes == ds.classes


def test_pickled_dataset_refuses_a_cache_that_changed(server, tmp_path):
    ds = cifar(server, tmp_path)
    payload = pickle.dumps(ds)
    with open(cache_file(tmp_path, "images.npy"), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"\x00")
    with pytest.raises(CorruptDatasetError, match="images.npy has CRC-32"):
        pickle.loads(payload)


def test_nothing_is_left_behind_but_the_dataset(server, tmp_path):
    cifar(server, tmp_path)
    cifar(server, tmp_path, train=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    cache = tmp_path / "cifar-10-batches-py" / "tinytorch-cache"
    assert sorted(p.name for p in cache.iterdir()) == ["files.json", "test", "train"]
    assert sorted(p.name for p in (cache / "train").iterdir()) == [
        "images.npy",
        "labels.npy",
        "manifest.json",
    ]
    assert load_arrays(cache / "train", {"nonsense": 1}) is None


def test_spawned_workers_map_the_same_cache(server, tmp_path):
    ds = cifar(server, tmp_path)
    spawned = DataLoader(ds, batch_size=16, num_workers=1, multiprocessing_context="spawn")
    images = np.concatenate([b[0] for b in spawned])
    np.testing.assert_array_equal(images, ds.data)


def test_root_of_the_wrong_type_names_the_keyword():
    with pytest.raises(TypeError, match="root must be a directory path, got int 3"):
        CIFAR10Dataset(3, download=False)


@pytest.mark.parametrize("name", ["images.npy", "manifest.json"])
def test_a_fifo_in_place_of_a_cache_file_is_rebuilt_around_not_read(server, tmp_path, name):
    """Hostile-tester item 4: a FIFO in place of a cache file hung CIFAR10Dataset(...)."""
    expected = np.array(cifar(server, tmp_path).data)
    fifo = cache_file(tmp_path, name)
    fifo.unlink()
    os.mkfifo(fifo)
    with pytest.warns(RuntimeWarning, match=rf"{name} cannot be .*is a FIFO.* rebuilding the cache"):
        ds = without_hanging(lambda: CIFAR10Dataset(tmp_path, download=False), [fifo])
    np.testing.assert_array_equal(ds.data, expected)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_fifo_or_directory_in_place_of_an_extracted_file_names_it(server, tmp_path, kind):
    """Hostile-tester items 4 and 5: a FIFO in place of data_batch_1 hung, a directory raised
    a raw IsADirectoryError. Neither is ours to delete: the error names it and the fix."""
    cifar(server, tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    path.unlink()
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    for download in (False, True):
        with pytest.raises(
            CorruptDatasetError, match=r"data_batch_1 cannot be read \(is a .*move what is there"
        ) as e:
            without_hanging(lambda d=download: cifar(server, tmp_path, download=d), [path])
        assert e.value.path == path
        assert isinstance(e.value.__cause__, OSError)
    assert path.exists()
