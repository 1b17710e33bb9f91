import pickle
import time

import numpy as np
import pytest

from support.cifar_files import md5
from support.http_server import LocalServer, closed_port
from tinytorch.data.storage.download import (
    ChecksumError,
    DownloadError,
    SourceOptions,
    check_md5,
    download,
    file_md5,
)

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


def test_checksum_mismatch_removes_its_download_and_names_both_sums(server, tmp_path):
    options = SourceOptions(md5_env="X_MD5", url_env="X_URL")
    with pytest.raises(ChecksumError) as info:
        download(server.url("/f.bin"), tmp_path / "f.bin", md5="0" * 32, progress=False, options=options)
    message = str(info.value)
    assert md5(BODY) in message
    assert "0" * 32 in message
    assert server.url("/f.bin") in message
    assert f"pass md5='{md5(BODY)}' (or set X_MD5={md5(BODY)})" in message
    assert list(tmp_path.iterdir()) == []
    e = info.value
    assert (e.expected_md5, e.actual_md5, e.url, e.removed) == (
        "0" * 32,
        md5(BODY),
        server.url("/f.bin"),
        True,
    )
    assert e.path == tmp_path / "f.bin.part"
    assert e.options is options


def test_an_existing_destination_is_never_replaced(server, tmp_path):
    (tmp_path / "f.bin").write_bytes(b"the user's file")
    with pytest.raises(FileExistsError, match="never replaces"):
        download(server.url("/f.bin"), tmp_path / "f.bin", md5=md5(BODY), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == b"the user's file"
    assert server.behaviour.requests == []


def test_connection_refused_is_a_clear_error_that_says_where_to_put_the_file(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/f.bin"
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "f.bin", md5="a" * 32, retries=2, backoff=0.01)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "after 3 attempt(s)" in message
    assert f"put it at {tmp_path / 'f.bin'}" in message
    assert "md5 " + "a" * 32 in message
    assert "choose a mirror with url=/md5=" in message
    e = info.value
    assert (e.url, e.path, e.expected_md5, e.attempts) == (url, tmp_path / "f.bin", "a" * 32, 3)
    assert isinstance(e.__cause__, OSError)
    assert not (tmp_path / "f.bin").exists()


def test_errors_keep_their_attributes_through_pickle(tmp_path):
    options = SourceOptions(md5_env="X_MD5")
    errors = [
        ChecksumError(
            "m", path=tmp_path, expected_md5="a", actual_md5="b", url=None, removed=False, options=options
        ),
        DownloadError("m", url="u", path=tmp_path, expected_md5=None, attempts=2, options=options),
    ]
    for error in errors:
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error)
        assert str(again) == "m"
        assert again.__dict__ == error.__dict__


def test_numeric_arguments_accept_numpy_scalars(server, tmp_path):
    dest = download(
        server.url("/f.bin"),
        tmp_path / "f.bin",
        md5=md5(BODY),
        timeout=(np.float32(5), np.int64(10)),
        retries=np.int64(1),
        backoff=np.float64(0.01),
        progress=False,
    )
    assert dest.read_bytes() == BODY
    assert file_md5(dest, chunk=np.int32(4096)) == md5(BODY)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"retries": 1.5}, TypeError, "retries must be a non-negative int, got float 1.5"),
        ({"retries": -1}, ValueError, "retries must be a non-negative int"),
        ({"timeout": 0}, ValueError, "timeout must be a number > 0"),
        ({"timeout": (1, 2, 3)}, ValueError, r"\(connect, read\) pair"),
        ({"timeout": "10"}, TypeError, "timeout must be a number"),
        ({"backoff": float("nan")}, ValueError, "backoff must be a number >= 0"),
        ({"md5": "c58f30108f718f92721af3b95e7434"}, ValueError, "md5 must be 32 hex digits"),
    ],
)
def test_bad_arguments_name_the_keyword(tmp_path, kwargs, error, match):
    kwargs = {"md5": None, **kwargs}
    with pytest.raises(error, match=match):
        download("http://127.0.0.1:1/x", tmp_path / "x", **kwargs)


def test_check_md5_normalizes_case_and_names_the_variable():
    assert check_md5(" C58F30108F718F92721AF3B95E74349A ", "md5") == "c58f30108f718f92721af3b95e74349a"
    with pytest.raises(ValueError, match=r"\$X_MD5 must be 32 hex digits"):
        check_md5("xyz", "$X_MD5")


def test_a_local_write_error_names_the_part_file_and_is_not_retried(server, tmp_path):
    (tmp_path / "f.bin.part").mkdir()  # cannot be opened for writing
    with pytest.raises(IsADirectoryError) as info:
        download(server.url("/f.bin"), tmp_path / "f.bin", md5=None, retries=3, sleep=no_sleep)
    assert info.value.filename == str(tmp_path / "f.bin.part")
    assert not isinstance(info.value, DownloadError)
    assert len(server.behaviour.requests) == 1


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
