import errno
import mmap
import os

import pytest

from tinytorch.data.storage import atomic
from tinytorch.data.storage.atomic import (
    atomic_write,
    install_directory,
    move_into_place,
    staging_directory,
)


def names(directory):
    return sorted(p.name for p in directory.iterdir())


def test_writes_the_file_and_leaves_no_temporary(tmp_path):
    with atomic_write(tmp_path / "a.bin") as f:
        f.write(b"hello")
    assert (tmp_path / "a.bin").read_bytes() == b"hello"
    assert names(tmp_path) == ["a.bin"]


def test_an_exception_in_the_block_keeps_the_old_file(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"old")

    def write_then_fail():
        with atomic_write(tmp_path / "a.bin") as f:
            f.write(b"new, half written")
            raise RuntimeError("dataset failed")

    with pytest.raises(RuntimeError, match="dataset failed"):
        write_then_fail()
    assert (tmp_path / "a.bin").read_bytes() == b"old"
    assert names(tmp_path) == ["a.bin"]


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    (tmp_path / "a.bin").write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as info, atomic_write(tmp_path / "a.bin") as f:
        f.write(b"new")
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(tmp_path / "a.bin")
    assert "No space left on device" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    monkeypatch.undo()
    assert (tmp_path / "a.bin").read_bytes() == b"old"
    assert names(tmp_path) == ["a.bin"]


def test_a_missing_directory_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info, atomic_write(tmp_path / "no" / "a.bin"):
        pass
    assert info.value.filename == str(tmp_path / "no" / "a.bin")


def test_a_mapping_of_the_old_file_keeps_its_bytes(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"A" * 4096)
    with open(path, "rb") as f:
        old = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    with atomic_write(path) as f:
        f.write(b"B" * 10)  # replacing a mapped file by rename never shrinks what is mapped
    assert old[:4] == b"AAAA"
    assert old.size() == 4096
    old.close()


def test_new_files_get_the_usual_mode(tmp_path):
    with atomic_write(tmp_path / "a.bin") as f:
        f.write(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def test_move_into_place_never_replaces(tmp_path):
    (tmp_path / "new").write_bytes(b"new")
    (tmp_path / "yours").write_bytes(b"yours")
    with pytest.raises(FileExistsError, match="yours"):
        move_into_place(tmp_path / "new", tmp_path / "yours")
    assert (tmp_path / "yours").read_bytes() == b"yours"
    assert (tmp_path / "new").read_bytes() == b"new"
    move_into_place(tmp_path / "new", tmp_path / "free")
    assert names(tmp_path) == ["free", "yours"]


def test_staged_directory_appears_complete_or_not_at_all(tmp_path):
    target = tmp_path / "data"
    with staging_directory(target) as staged:
        (staged / "x").write_bytes(b"1")
        assert not target.exists()
        assert install_directory(staged, target)
    assert names(tmp_path) == ["data"]
    assert (target / "x").read_bytes() == b"1"


def test_an_existing_directory_is_never_replaced(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "yours").write_bytes(b"keep")
    with staging_directory(target) as staged:
        (staged / "x").write_bytes(b"1")
        assert not install_directory(staged, target)
    assert names(target) == ["yours"]
    assert names(tmp_path) == ["data"]


def test_a_failure_while_staging_leaves_nothing(tmp_path):
    def stage_then_fail():
        with staging_directory(tmp_path / "data") as staged:
            (staged / "x").write_bytes(b"1")
            raise RuntimeError("dataset failed")

    with pytest.raises(RuntimeError, match="dataset failed"):
        stage_then_fail()
    assert names(tmp_path) == []
