import io
import tarfile

import pytest

from support.cifar_files import make_tar
from tinytorch.data.storage.extract import UnsafeArchiveError, extract_tar, restore_files
from tinytorch.data.storage.integrity import CorruptDatasetError, FileRecord, sha256_hex


def write(tmp_path, data, name="a.tar.gz"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def tar_with(tmp_path, build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        build(tar)
    return write(tmp_path, buf.getvalue())


def test_extracts_the_folder_atomically_and_records_each_file(tmp_path):
    archive = write(tmp_path, make_tar({"x.txt": b"hello", "sub/y.txt": b"!"}, folder="data"))
    records = extract_tar(archive, tmp_path, "data")
    target = tmp_path / "data"
    assert (target / "x.txt").read_bytes() == b"hello"
    assert (target / "sub" / "y.txt").read_bytes() == b"!"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "data"]
    assert records == {
        "x.txt": FileRecord(5, sha256_hex(b"hello")),
        "sub/y.txt": FileRecord(1, sha256_hex(b"!")),
    }
    assert (target / "x.txt").stat().st_mtime == 0  # the member's time, as tar sets it


def test_files_added_before_install_appear_with_the_folder(tmp_path):
    archive = write(tmp_path, make_tar({"x.txt": b"hello"}, folder="data"))

    def add(staged, records):
        assert not (tmp_path / "data").exists()
        (staged / "record").write_text(str(sorted(records)))

    extract_tar(archive, tmp_path, "data", before_install=add)
    assert (tmp_path / "data" / "record").read_text() == "['x.txt']"


def test_an_existing_folder_is_left_as_it_is(tmp_path):
    archive = write(tmp_path, make_tar({"x.txt": b"hello"}, folder="data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_bytes(b"mine")
    records = extract_tar(archive, tmp_path, "data")
    assert (tmp_path / "data" / "x.txt").read_bytes() == b"mine"
    assert records["x.txt"] == FileRecord(5, sha256_hex(b"hello"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "data"]


def test_restore_replaces_only_the_named_files(tmp_path):
    archive = write(tmp_path, make_tar({"x.txt": b"hello", "y.txt": b"world"}, folder="data"))
    extract_tar(archive, tmp_path, "data")
    (tmp_path / "data" / "x.txt").write_bytes(b"hellO")
    (tmp_path / "data" / "y.txt").write_bytes(b"edited on purpose")
    (tmp_path / "data" / "notes").write_bytes(b"the user's")
    records = restore_files(archive, tmp_path, "data", ["x.txt"])
    assert (tmp_path / "data" / "x.txt").read_bytes() == b"hello"
    assert (tmp_path / "data" / "y.txt").read_bytes() == b"edited on purpose"
    assert (tmp_path / "data" / "notes").read_bytes() == b"the user's"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["notes", "x.txt", "y.txt"]
    assert records["y.txt"] == FileRecord(5, sha256_hex(b"world"))


def test_restore_with_no_names_only_reads(tmp_path):
    archive = write(tmp_path, make_tar({"x.txt": b"hello"}, folder="data"))
    (tmp_path / "data").mkdir()
    assert restore_files(archive, tmp_path, "data", ()) == {"x.txt": FileRecord(5, sha256_hex(b"hello"))}
    assert list((tmp_path / "data").iterdir()) == []


def test_restore_of_a_file_the_archive_lacks_names_it(tmp_path):
    archive = write(tmp_path, make_tar({"x.txt": b"hello"}, folder="data"))
    (tmp_path / "data").mkdir()
    with pytest.raises(CorruptDatasetError, match="has no file data/z.txt"):
        restore_files(archive, tmp_path, "data", ["z.txt"])


def file_member(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../evil.txt", "points outside"),
        ("data/../../evil.txt", "points outside"),
        ("/etc/evil", "absolute path"),
    ],
)
def test_path_traversal_is_refused_and_nothing_is_written(tmp_path, name, match):
    archive = tar_with(tmp_path, lambda t: t.addfile(*file_member(name)))
    with pytest.raises(UnsafeArchiveError, match=match):
        extract_tar(archive, tmp_path, "data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_are_refused(tmp_path, kind):
    def build(tar):
        info = tarfile.TarInfo("data/link")
        info.type = kind
        info.linkname = "/etc/passwd"
        tar.addfile(info)

    with pytest.raises(UnsafeArchiveError, match="is a link to '/etc/passwd'"):
        extract_tar(tar_with(tmp_path, build), tmp_path, "data")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_devices_and_fifos_are_refused(tmp_path, kind):
    def build(tar):
        info = tarfile.TarInfo("data/dev")
        info.type = kind
        tar.addfile(info)

    with pytest.raises(UnsafeArchiveError, match="device, FIFO"):
        extract_tar(tar_with(tmp_path, build), tmp_path, "data")


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_truncated_archive_names_it_and_leaves_nothing(tmp_path, cut):
    data = make_tar({"x.bin": bytes(range(256)) * 2000, "y.bin": b"y" * 5000}, folder="data")
    archive = write(tmp_path, data[: int(len(data) * cut)])
    with pytest.raises(CorruptDatasetError, match="is damaged, truncated or not a tar archive") as info:
        extract_tar(archive, tmp_path, "data")
    assert info.value.path == archive
    assert info.value.__cause__ is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


def test_not_an_archive_names_it(tmp_path):
    archive = write(tmp_path, b"this is not a tar file at all" * 100)
    with pytest.raises(CorruptDatasetError, match="a.tar.gz is damaged"):
        extract_tar(archive, tmp_path, "data")


def test_a_full_disk_while_extracting_names_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    archive = write(tmp_path, make_tar({"x.bin": b"x" * 1000}, folder="data"))

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tinytorch.data.storage.extract.os.fsync", full)
    with pytest.raises(OSError, match="No space left on device") as info:
        extract_tar(archive, tmp_path, "data")
    assert info.value.filename.endswith("x.bin")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


def test_wrong_archive_names_the_missing_folder(tmp_path):
    archive = write(tmp_path, make_tar({"x.txt": b"1"}, folder="other"))
    with pytest.raises(FileNotFoundError, match="no top-level folder 'data'"):
        extract_tar(archive, tmp_path, "data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]
