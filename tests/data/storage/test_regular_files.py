import errno
import os

import pytest

from support.fifo import without_hanging
from tinytorch.data.storage import regular_files
from tinytorch.data.storage.regular_files import (
    NotRegularFileError,
    check_regular,
    open_regular,
    read_regular,
)


def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    for call in (read_regular, open_regular, check_regular):
        with pytest.raises(
            NotRegularFileError, match=r"is a FIFO \(named pipe\), not a regular file"
        ) as info:
            without_hanging(lambda call=call: call(fifo), [fifo])
        assert info.value.filename == str(fifo)
        assert info.value.kind == "a FIFO (named pipe)"


def test_devices_and_directories_are_refused_through_symlinks(tmp_path):
    device = tmp_path / "null.png"
    os.symlink(os.devnull, device)  # /dev/zero would read forever; /dev/null shows the same rule
    with pytest.raises(NotRegularFileError, match="is a character device, not a regular file"):
        read_regular(device)
    with pytest.raises(NotRegularFileError, match="is a directory") as info:
        read_regular(tmp_path)
    assert info.value.errno == errno.EISDIR
    assert isinstance(info.value, OSError)
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing")


def test_regular_files_and_symlinks_to_them_are_read_whole(tmp_path):
    data = os.urandom(300_000)  # several reads
    (tmp_path / "f").write_bytes(data)
    os.symlink(tmp_path / "f", tmp_path / "link")
    assert read_regular(tmp_path / "link") == data
    assert read_regular(tmp_path / "f") == data
    (tmp_path / "empty").write_bytes(b"")
    assert read_regular(tmp_path / "empty") == b""


def test_a_fifo_put_in_place_after_the_stat_is_refused_on_the_open_file(tmp_path, monkeypatch):
    regular = tmp_path / "regular"
    regular.write_bytes(b"x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    real_stat = os.stat
    open_before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(regular_files.os, "stat", lambda p, *a, **k: real_stat(regular))  # the race
    with pytest.raises(NotRegularFileError, match="FIFO"):
        without_hanging(lambda: read_regular(fifo), [fifo])  # opened without blocking, then refused
    monkeypatch.undo()
    assert len(os.listdir("/proc/self/fd")) == open_before  # the descriptor was closed


def test_a_file_that_changed_size_after_the_stat_is_read_whole(tmp_path, monkeypatch):
    data = os.urandom(5000)
    (tmp_path / "f").write_bytes(data)
    (tmp_path / "small").write_bytes(b"x" * 10)
    real_stat = os.stat
    for stand_in in ("small", "f"):  # the stat saw a smaller, then the same, file
        monkeypatch.setattr(regular_files.os, "stat", lambda p, *a, s=stand_in, **k: real_stat(tmp_path / s))
        assert read_regular(tmp_path / "f") == data
    (tmp_path / "big").write_bytes(b"x" * 10_000)
    monkeypatch.setattr(regular_files.os, "stat", lambda p, *a, **k: real_stat(tmp_path / "big"))
    assert read_regular(tmp_path / "f") == data  # shorter than the stat said: what is there
