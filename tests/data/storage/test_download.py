import time

import pytest

from support.cifar_files import md5
from support.http_server import LocalServer, closed_port
from tinytorch.data.storage.download import ChecksumError, DownloadError, download, file_md5

BODY = bytes(range(256)) * 4096  # 1 MiB


def no_sleep(_):
    pass


@pytest.fixture
def server():
    with LocalServer({"/f.bin": BODY}) as s:
        yield s


def test_fresh_download_verifies_and_renames(server, tmp_path):
    dest = download(server.url("/f.bin"), tmp_path / "f.bin", md5=md5(BODY), progress=False)
    assert dest.read_bytes() == BODY
    assert not (tmp_path / "f.bin.part").exists()
    assert file_md5(dest) == md5(BODY)


def test_progress_bar_reports_bytes(server, tmp_path, capsys):
    download(server.url("/f.bin"), tmp_path / "f.bin", md5=md5(BODY), progress=True)
    err = capsys.readouterr().err
    assert "f.bin" in err
    assert "1.00M" in err


def test_quiet_when_not_a_terminal(server, tmp_path, capsys):
    download(server.url("/f.bin"), tmp_path / "f.bin", md5=md5(BODY))
    assert capsys.readouterr().err == ""


def test_resumes_with_range_after_a_dropped_connection(server, tmp_path):
    server.behaviour.drop_after = 300_000
    server.behaviour.drops = 1
    download(server.url("/f.bin"), tmp_path / "f.bin", md5=md5(BODY), progress=False, sleep=no_sleep)
    assert (tmp_path / "f.bin").read_bytes() == BODY
    ranges = [r for _, r in server.behaviour.requests]
    assert ranges == [None, "bytes=300000-"]


def test_resumes_a_part_file_left_by_an_earlier_run(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(BODY[:1000])
    download(server.url("/f.bin"), tmp_path / "f.bin", md5=md5(BODY), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert server.behaviour.requests == [("/f.bin", "bytes=1000-")]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.behaviour.ignore_range = True
    server.behaviour.drop_after = 300_000
    server.behaviour.drops = 1
    download(server.url("/f.bin"), tmp_path / "f.bin", md5=md5(BODY), progress=False, sleep=no_sleep)
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert len(server.behaviour.requests) == 2


def test_stale_part_longer_than_the_file_restarts(server, tmp_path):
    (tmp_path / "f.bin.part").write_bytes(b"x" * (len(BODY) + 10))
    download(server.url("/f.bin"), tmp_path / "f.bin", md5=md5(BODY), progress=False, sleep=no_sleep)
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_checksum_mismatch_removes_the_file_and_names_both_sums(server, tmp_path):
    with pytest.raises(ChecksumError) as info:
        download(server.url("/f.bin"), tmp_path / "f.bin", md5="0" * 32, progress=False)
    message = str(info.value)
    assert md5(BODY) in message
    assert "0" * 32 in message
    assert server.url("/f.bin") in message
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_is_a_clear_error_with_the_manual_hint(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/f.bin"
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"after 3 attempt\(s\).*put it at /somewhere"):
        download(
            url,
            tmp_path / "f.bin",
            md5=None,
            retries=2,
            backoff=0.01,
            manual_hint="put it at /somewhere",
        )
    assert time.monotonic() - start < 5
    assert not (tmp_path / "f.bin").exists()


def test_timeout_is_reported_within_the_limit(server, tmp_path):
    server.behaviour.delay = 3
    start = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        download(server.url("/f.bin"), tmp_path / "f.bin", md5=None, timeout=0.3, retries=0)
    assert time.monotonic() - start < 2.5


def test_retries_back_off_exponentially(tmp_path):
    waits = []
    with pytest.raises(DownloadError):
        download(
            f"http://127.0.0.1:{closed_port()}/x",
            tmp_path / "x",
            md5=None,
            retries=3,
            backoff=0.5,
            sleep=waits.append,
        )
    assert waits == [0.5, 1.0, 2.0]


def test_missing_file_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download(server.url("/missing"), tmp_path / "m", md5=None, retries=5, sleep=no_sleep)
    assert len(server.behaviour.requests) == 1


def test_unsupported_scheme(tmp_path):
    with pytest.raises(ValueError, match="http, https or file URL"):
        download("ftp://example.invalid/x", tmp_path / "x", md5=None)
