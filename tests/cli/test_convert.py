"""``tinytorch-data convert`` and ``verify``: shards from a dataset, checked."""

from support.cifar_files import cifar10_files, make_tar, md5
from support.http_server import LocalServer
from tinytorch.cli.main import main


def cifar_root(tmp_path):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, data in cifar10_files(per_batch=10).items():
        (folder / name).write_bytes(data)
    return tmp_path / "data"


def test_convert_and_verify(tmp_path, capsys):
    root = cifar_root(tmp_path)
    shards = str(tmp_path / "shards")
    argv = [
        "convert",
        "cifar10",
        shards,
        "--root",
        str(root),
        "--samples-per-shard",
        "16",
        "--verify",
        "--quiet",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "wrote 50 samples in 4 shards" in out
    assert "OK: 50 samples" in out
    shard = tmp_path / "shards" / "shard-00000.tts"
    shard.write_bytes(b"x" + shard.read_bytes()[1:])
    assert main(["verify", shards]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_overwrite_replaces_an_earlier_conversion(tmp_path, capsys):
    root = cifar_root(tmp_path)
    shards = str(tmp_path / "shards")
    assert main(["convert", "cifar10", shards, "--root", str(root), "--quiet"]) == 0
    assert main(["convert", "cifar10", shards, "--root", str(root), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", "cifar10", shards, "--root", str(root), "--quiet", "--overwrite"]) == 0


def test_convert_downloads_from_a_mirror_with_url_and_md5(tmp_path, capsys):
    archive = make_tar(cifar10_files(per_batch=4), folder="cifar-10-batches-py")
    with LocalServer({"/c.tgz": archive}) as server:
        argv = ["convert", "cifar10", str(tmp_path / "s"), "--root", str(tmp_path / "data")]
        code = main([*argv, "--url", server.url("/c.tgz"), "--md5", md5(archive), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert "wrote 20 samples" in capsys.readouterr().out
