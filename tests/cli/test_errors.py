"""User mistakes on the command line: one or two lines in command-line terms, exit code 2, no traceback.

Each case is run as a user runs it (``main([...])``: arguments in, exit code and printed text
out); a traceback would be an exception escaping ``main``. One case per mistake the issue
lists, then a walk over every subcommand with bad values for each of its options.
"""

import hashlib
import re
import subprocess
import sys

import pytest

from support.cifar_files import cifar10_files, make_tar
from support.http_server import LocalServer, closed_port
from tinytorch.cli.args import ignored_options
from tinytorch.cli.errors import explain
from tinytorch.cli.main import build_parser, main

PYTHON_KEYWORDS = ("download=True", "overwrite=True", "url=", "md5=", "write_shards()")


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_usage_error(code, err, *flags):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2, err
    assert "Traceback" not in err
    for flag in flags:
        assert flag in err, (flag, err)
    for keyword in PYTHON_KEYWORDS:
        assert keyword not in err, (keyword, err)


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr("tinytorch.data.storage.download.BACKOFF_SECONDS", 0.001)


def test_demo_root_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = run(["demo", "--root", str(tmp_path / "f")], capsys)
    assert_usage_error(code, err, "--root", "is a file")


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--epochs", "0"), ("--batch-size", "0"), ("--workers", "-1"), ("--hidden", "0"), ("--lr", "0")],
)
def test_demo_numbers_out_of_range(flag, value, capsys):
    code, _, err = run(["demo", "--synthetic", flag, value], capsys)
    assert_usage_error(code, err, flag)


def test_convert_into_an_existing_shard_dataset_names_the_flag(tmp_path, capsys):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text("{}")
    # --root is empty: the check happens before any download is tried
    code, _, err = run(
        ["convert", "cifar10", str(tmp_path / "shards"), "--root", str(tmp_path / "none")], capsys
    )
    assert_usage_error(code, err, "--overwrite")


def test_convert_without_network_speaks_in_flags(tmp_path, capsys, no_backoff):
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-python.tar.gz"
    code, _, err = run(
        ["convert", "cifar10", str(tmp_path / "s"), "--root", str(tmp_path), "--url", url], capsys
    )
    assert_usage_error(code, err, "--url", "cifar-10-python.tar.gz", str(tmp_path))
    assert "DownloadError" not in err


def test_convert_mirror_with_the_wrong_md5_names_the_right_one(tmp_path, capsys):
    archive = make_tar(cifar10_files(per_batch=4), folder="cifar-10-batches-py")
    actual = hashlib.md5(archive).hexdigest()
    with LocalServer({"/c.tgz": archive}) as server:
        code, _, err = run(
            [
                "convert",
                "cifar10",
                str(tmp_path / "s"),
                "--root",
                str(tmp_path),
                "--url",
                server.url("/c.tgz"),
            ],
            capsys,
        )
    assert_usage_error(code, err, f"--md5 {actual}", "--url")


@pytest.mark.parametrize("command", ["bench", "profile"])
def test_bench_and_profile_without_cifar_say_what_to_do(command, tmp_path, capsys):
    code, _, err = run([command, "--root", str(tmp_path), "--no-plots"], capsys)
    assert_usage_error(code, err, "--synthetic", "tinytorch-data demo --root")


@pytest.mark.parametrize("command", ["bench", "profile"])
def test_a_wrong_archive_in_root_names_md5(command, tmp_path, capsys):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    actual = hashlib.md5(b"not the archive").hexdigest()
    code, _, err = run([command, "--root", str(tmp_path), "--no-plots"], capsys)
    assert_usage_error(code, err, f"--md5 {actual}")


def test_verify_a_directory_that_is_not_a_shard_dataset(tmp_path, capsys):
    code, _, err = run(["verify", str(tmp_path)], capsys)
    assert_usage_error(code, err, "tinytorch-data convert")


def test_convert_imagefolder_mistakes_name_src_and_dst(tmp_path, capsys):
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    (tmp_path / "photos" / "cat" / "1.jpg").write_bytes(b"not read")
    code, _, err = run(
        ["convert", "imagefolder", str(tmp_path / "photos"), str(tmp_path / "photos" / "s")], capsys
    )
    assert_usage_error(code, err, "DST", "inside SRC", "choose a DST outside SRC")
    code, _, err = run(["convert", "imagefolder", str(tmp_path / "nowhere"), str(tmp_path / "s")], capsys)
    assert_usage_error(code, err, "argument SRC", "does not exist")
    (tmp_path / "flat").mkdir()
    code, _, err = run(["convert", "imagefolder", str(tmp_path / "flat"), str(tmp_path / "s")], capsys)
    assert_usage_error(code, err, "Couldn't find any class folder", "SRC must be root/<class>/<image>")
    assert not (tmp_path / "s").exists()


def test_an_unreadable_image_names_the_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    (tmp_path / "photos" / "cat" / "1.jpg").write_bytes(b"x")

    def denied(path):
        from tinytorch.data.storage.decode import read_file

        return read_file(str(tmp_path / "photos" / "cat" / "gone.jpg"))  # as a file removed meanwhile

    monkeypatch.setattr("tinytorch.data.datasets.image_shards.read_file", denied)
    code, _, err = run(
        ["convert", "imagefolder", str(tmp_path / "photos"), str(tmp_path / "s"), "--quiet"], capsys
    )
    assert_usage_error(code, err, "gone.jpg could not be read", "check that it exists")
    assert not (tmp_path / "s").exists()  # nothing left behind


def test_bench_data_smaller_than_the_batches(capsys):
    code, _, err = run(["bench", "--synthetic", "--size", "100", "--no-plots", "--quiet"], capsys)
    assert_usage_error(code, err, "--size", "--batch-sizes")


def test_unknown_option_is_reported_by_its_subcommand(capsys):
    code, _, err = run(["demo", "--bogus"], capsys)
    assert_usage_error(code, err, "--bogus", "tinytorch-data demo --help")


BAD_ARGUMENTS = {
    "demo": [
        ["--epochs", "0"],
        ["--epochs", "two"],
        ["--batch-size", "-3"],
        ["--workers", "-1"],
        ["--blas-threads", "0"],
        ["--hidden", "0"],
        ["--lr", "-1"],
        ["--lr", "nan"],
        ["--seed", "-1"],
        ["--model", "resnet"],
        ["--synthetic-size", "0", "10"],
        ["--root", "FILE"],
        ["--bogus"],
    ],
    "check": [["--bogus"], ["extra"]],
    "bench": [
        ["--batch-sizes", "0"],
        ["--workers", "-1"],
        ["--rounds", "1"],
        ["--seconds", "0"],
        ["--size", "0"],
        ["--storage", "cloud"],
        ["--out", "FILE"],
        ["--json", "DIR"],
        ["--root", "FILE"],
    ],
    "profile": [
        ["--batch-sizes", "0"],
        ["--budget-mb", "0"],
        ["--budget-mb", "inf"],
        ["--size", "-5"],
        ["--out", "FILE"],
        ["--json", "DIR"],
    ],
    "convert": [
        ["imagenet", "DIR/x"],
        ["cifar10", "FILE"],
        ["cifar10", "DIR/x", "--samples-per-shard", "0"],
        ["cifar10", "DIR/x", "--split", "val"],
        ["cifar10", "DIR/x", "--root", "FILE"],
        ["cifar10"],
        [],
        ["imagefolder", "DIR/none", "DIR/x"],  # SRC missing
        ["imagefolder", "FILE", "DIR/x"],  # SRC a file
        ["imagefolder", "DIR", "FILE"],  # DST a file
        ["imagefolder", "DIR", "DIR/x"],  # DST inside SRC
        ["imagefolder", "DIR", "OTHER"],  # SRC without class folders
        ["imagefolder", "DIR"],
        ["imagefolder", "DIR", "OTHER", "--shard-size", "0"],
        ["imagefolder", "DIR", "OTHER", "--samples-per-shard", "0"],
        ["imagefolder", "DIR", "OTHER", "--root", "DIR"],  # a cifar option
        ["imagefolder", "DIR", "OTHER", "--shuffle", "-1"],
    ],
    "verify": [["FILE"], ["DIR"], [], ["DIR", "--bogus"]],
}


def test_every_subcommand_is_covered():
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(subparsers.choices) == set(BAD_ARGUMENTS)


@pytest.mark.parametrize(
    ("command", "arguments"),
    [(command, arguments) for command, cases in BAD_ARGUMENTS.items() for arguments in cases],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_bad_arguments_give_no_traceback(command, arguments, tmp_path, capsys):
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "DIR").mkdir()
    paths = ("FILE", "DIR", "OTHER")
    argv = [command, *(str(tmp_path / a) if a in paths or a.startswith("DIR/") else a for a in arguments)]
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert 1 <= len(err.strip().splitlines()) <= 2, err
    # the (sub)command that was given: `tinytorch-data convert imagefolder: error: ...`
    assert re.match(rf"tinytorch-data( {command}( [a-z0-9]+)?)?: error: ", err), err


def test_a_mistake_prints_no_traceback_in_a_real_process(tmp_path):
    (tmp_path / "f").write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "tinytorch.cli.main", "demo", "--root", str(tmp_path / "f")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--root" in result.stderr


def test_bugs_keep_their_traceback():
    args = build_parser().parse_args(["check"])
    assert explain(KeyError("a bug"), args) is None
    assert explain(ValueError("a bug"), args) is None


@pytest.mark.parametrize("command", [["demo"], ["convert", "cifar10", "SHARDS"]])
def test_a_mirror_archive_without_md5_is_kept_and_the_flag_named(command, tmp_path, capsys):
    archive = make_tar(cifar10_files(per_batch=4), folder="cifar-10-batches-py")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(archive)
    argv = [str(tmp_path / "s") if a == "SHARDS" else a for a in command]
    code, _, err = run([*argv, "--root", str(tmp_path), "--quiet"], capsys)
    assert_usage_error(code, err, f"--md5 {hashlib.md5(archive).hexdigest()}")
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == archive  # not deleted


def test_machine_errors_name_the_option_holding_the_path(tmp_path):
    args = build_parser().parse_args(["demo", "--root", str(tmp_path / "data")])
    denied = PermissionError(13, "Permission denied", str(tmp_path / "data" / "cifar-10-python.tar.gz"))
    assert explain(denied, args) == (
        f"Permission denied: {tmp_path / 'data' / 'cifar-10-python.tar.gz'}\nChoose another place with --root."
    )
    full = OSError(28, "No space left on device", str(tmp_path / "elsewhere"))
    assert explain(full, args) == f"No space left on device: {tmp_path / 'elsewhere'}"


def test_ctrl_c_ends_with_130_and_one_line(monkeypatch, capsys):
    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr("tinytorch.cli.demo.run_demo", interrupted)
    code, _, err = run(["demo", "--synthetic"], capsys)
    assert code == 130
    assert err.strip() == "tinytorch-data demo: interrupted"


def test_output_cut_short_by_the_reader_ends_quietly(monkeypatch, capsys):
    def reader_left(args):  # e.g. `tinytorch-data bench | head -3`
        raise BrokenPipeError

    monkeypatch.setattr("tinytorch.cli.check.run_checks", lambda: reader_left(None))
    code, _, err = run(["check"], capsys)
    assert code == 1
    assert err == ""


def test_damaged_extracted_files_name_the_folder_to_delete(tmp_path, capsys):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in cifar10_files(per_batch=2):
        (folder / name).write_bytes(b"garbage")
    code, _, err = run(["bench", "--root", str(tmp_path), "--no-plots"], capsys)
    assert_usage_error(code, err, f"delete {folder} and run again")


def test_structured_attributes_are_used_when_the_errors_carry_them(tmp_path):
    from tinytorch.data import ChecksumError, DownloadError
    from tinytorch.data.storage.download import SourceOptions

    args = build_parser().parse_args(["demo", "--root", str(tmp_path)])
    options = SourceOptions(url_env="TINYTORCH_CIFAR10_URL", md5_env="TINYTORCH_CIFAR10_MD5")
    downloaded = ChecksumError(
        "message in other words",
        path=tmp_path / "c.tgz.part",
        expected_md5="b" * 32,
        actual_md5="a" * 32,
        url="http://m/c.tgz",
        removed=True,
        options=options,
    )
    text = explain(downloaded, args)
    assert "http://m/c.tgz" in text
    assert f"--md5 {'a' * 32}" in text
    local = ChecksumError(
        "message in other words",
        path=tmp_path / "x.tgz",
        expected_md5="d" * 32,
        actual_md5="c" * 32,
        url=None,
        removed=False,
        options=options,
    )
    assert explain(local, args).startswith(f"{tmp_path / 'x.tgz'} has md5 {'c' * 32}")
    failed = DownloadError(
        "message in other words",
        url="http://m/c.tgz",
        path=tmp_path / "c.tgz",
        expected_md5=None,
        attempts=3,
        options=options,
    )
    assert explain(failed, args).startswith("could not download CIFAR-10 from http://m/c.tgz (3 attempts)")


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--md5", "xyz"], {}, "--md5 must be 32 hex digits"),
        (["--url", "/work/data/archive.tar.gz"], {}, "file:///work/data/archive.tar.gz"),
        (["--url", "ftp://mirror/c.tgz"], {}, "--url must be an http, https or file URL"),
        ([], {"TINYTORCH_CIFAR10_MD5": "abc"}, "$TINYTORCH_CIFAR10_MD5 must be 32 hex digits"),
        ([], {"TINYTORCH_CIFAR10_URL": "/some/path"}, "$TINYTORCH_CIFAR10_URL must be an http"),
    ],
)
def test_a_malformed_mirror_option_or_variable_is_a_usage_error(
    tmp_path, capsys, monkeypatch, argv, env, named
):
    """New-user trial: these were tracebacks (ValueError) with exit code 1."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run(["demo", "--root", str(tmp_path / "data"), *argv], capsys)
    assert_usage_error(code, err, named)


def test_convert_into_a_folder_with_someone_elses_files_names_them(tmp_path, capsys):
    """New-user trial: the error said 'already holds a shard dataset: pass --overwrite', which
    was false and did not help (--overwrite gave the same error)."""
    target = tmp_path / "nonempty"
    target.mkdir()
    (target / "notes.txt").write_text("hi")
    images = make_images(tmp_path)
    for extra in ([], ["--overwrite"]):
        code, _, err = run(["convert", "imagefolder", str(images), str(target), *extra], capsys)
        assert code == 2, err
        assert "notes.txt" in err
        assert "already holds a shard dataset" not in err
    assert (target / "notes.txt").read_text() == "hi"


def test_profile_needs_two_batch_sizes(capsys):
    code, _, err = run(["profile", "--synthetic", "--size", "300", "--batch-sizes", "64"], capsys)
    assert_usage_error(code, err, "--batch-sizes 64", "two different batch sizes")


def make_images(tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(root / label / "x.png")
    return root


@pytest.mark.parametrize("command", ["bench", "profile", "demo"])
@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--root", "elsewhere"], "--root"),
        (["--md5", "0" * 32], "--md5"),
        (["--root", "x", "--md5", "0" * 32], "them"),
    ],
)
def test_options_that_synthetic_would_ignore_are_refused(
    command, extra, named, capsys, tmp_path, monkeypatch
):
    """`bench --synthetic --root DIR` measured generated data and said nothing about DIR."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(
        [command, "--synthetic", *extra, "--no-plots" if command != "demo" else "--quiet"], capsys
    )
    assert_usage_error(code, err, "--synthetic", named, "drop --synthetic")
    assert not (tmp_path / "data").exists()  # no work done
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("command", ["bench", "profile"])
def test_size_without_synthetic_is_refused(command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run([command, "--size", "1000", "--no-plots"], capsys)
    assert_usage_error(code, err, "--size", "add --synthetic")


def test_the_default_root_with_synthetic_is_not_an_error(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["profile", "--synthetic", "--root", "./data", "--size", "256", "--batch-sizes", "32", "64"]
    code, _, err = run([*argv, "--no-plots", "--quiet"], capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--size", "50000", "--no-plots"],  # the default value, given
        ["profile", "--size=50000", "--no-plots"],
        ["bench", "--si", "50000", "--no-plots"],  # argparse's abbreviation
        ["demo", "--synthetic-size", "50000", "10000", "--quiet"],
    ],
)
def test_synthetic_sizes_without_synthetic_are_refused_even_at_their_default(
    argv, capsys, tmp_path, monkeypatch
):
    """Attack: `bench --size 50000` (no --synthetic) went on to read CIFAR-10 from ./data while
    `--size 1000` was refused; demo's --synthetic-size was ignored without --synthetic."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    flag = "--synthetic-size" if argv[0] == "demo" else "--size"
    assert_usage_error(code, err, f"{flag} sets how many images --synthetic generates", "add --synthetic")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", ["bench", "profile", "demo"])
def test_other_spellings_of_the_default_root_with_synthetic_are_not_an_error(command, tmp_path, monkeypatch):
    """Attack: `--synthetic --root ../cwd/data` (or data/../data, or $PWD/data where the working
    folder is reached through a symlink, as /tmp is on macOS) named ./data itself, and was refused
    as 'another folder'."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path / "link")
    parser = build_parser()
    for root in ["../real/data", "data/../data", str(tmp_path / "link" / "data"), "./data/", "data"]:
        args = parser.parse_args([command, "--synthetic", "--root", root])
        assert ignored_options(args) is None, root
    args = parser.parse_args([command, "--synthetic", "--root", "../real/other"])
    assert "--root" in ignored_options(args)
    (real / "loop").symlink_to("loop")  # a symlink loop is another folder, not a traceback
    assert "--root" in ignored_options(parser.parse_args([command, "--synthetic", "--root", "loop"]))


@pytest.mark.parametrize("command", ["bench", "demo"])
def test_synthetic_with_the_mirror_environment_variables_is_not_an_error(command, monkeypatch):
    monkeypatch.setenv("TINYTORCH_CIFAR10_URL", "http://127.0.0.1:9/cifar.tar.gz")
    monkeypatch.setenv("TINYTORCH_CIFAR10_MD5", "0" * 32)
    assert ignored_options(build_parser().parse_args([command, "--synthetic"])) is None
    assert (
        ignored_options(
            build_parser().parse_args(
                [
                    command,
                    "--synthetic",
                    "--size" if command == "bench" else "--synthetic-size",
                    *(["7"] if command == "bench" else ["7", "7"]),
                ]
            )
        )
        is None
    )
