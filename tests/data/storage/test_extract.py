import io
import tarfile

import pytest

from support.cifar_files import make_tar
from tinytorch.data.storage.extract import UnsafeArchiveError, extract_tar


def write(tmp_path, data, name="a.tar.gz"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def tar_with(tmp_path, build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        build(tar)
    return write(tmp_path, buf.getvalue())


def test_extracts_the_folder_atomically(tmp_path):
    archive = write(tmp_path, make_tar({"x.txt": b"hello", "sub/y.txt": b"!"}, folder="data"))
    target = extract_tar(archive, tmp_path, "data")
    assert (target / "x.txt").read_bytes() == b"hello"
    assert (target / "sub" / "y.txt").read_bytes() == b"!"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "data"]


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


def test_truncated_archive_leaves_nothing(tmp_path):
    data = make_tar({"x.bin": bytes(range(256)) * 2000}, folder="data")
    archive = write(tmp_path, data[: len(data) // 2])
    with pytest.raises((tarfile.TarError, EOFError, OSError)):
        extract_tar(archive, tmp_path, "data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


def test_wrong_archive_names_the_missing_folder(tmp_path):
    archive = write(tmp_path, make_tar({"x.txt": b"1"}, folder="other"))
    with pytest.raises(FileNotFoundError, match="no top-level folder 'data'"):
        extract_tar(archive, tmp_path, "data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]
