"""``tinytorch-data convert`` and ``verify``: shards from a dataset, checked."""

from pathlib import Path

from PIL import Image

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


def test_one_shard_and_one_class_are_counted_in_the_singular(tmp_path, capsys):
    # Regression: verify printed "OK: 50 samples in 1 shards match ..." (and "1 classes").
    shards = str(tmp_path / "shards")
    argv = ["convert", "cifar10", shards, "--root", str(cifar_root(tmp_path)), "--verify", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "wrote 50 samples in 1 shard (" in out
    assert "OK: 50 samples in 1 shard match the manifest's checksums" in out
    photos = tmp_path / "photos" / "cat"
    photos.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(photos / "a.png")
    assert (
        main(["convert", "imagefolder", str(photos.parent), str(tmp_path / "p"), "--verify", "--quiet"]) == 0
    )
    out = capsys.readouterr().out
    assert "wrote 1 image of 1 class in 1 shard (" in out
    assert "OK: 1 image of 1 class in 1 shard match" in out


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


# -- convert imagefolder ---------------------------------------------------------------------------


def image_folder(tmp_path):
    from support.images import jpeg, variants, write_folder

    kinds = variants()
    files = {
        "cat": {f"{k}.jpg": jpeg(32, 32, seed=k) for k in range(5)},
        "dog": {"a.png": kinds["alpha.png"], "b.jpg": kinds["progressive.jpg"], "c.jpg": kinds["cmyk.jpg"]},
    }
    return write_folder(tmp_path / "photos", files)


def test_convert_an_image_folder_then_read_and_verify_it(tmp_path, capsys):
    import numpy as np

    from tinytorch.data import ImageFolder, ImageShards

    src, dst = image_folder(tmp_path), tmp_path / "shards"
    argv = ["convert", "imagefolder", str(src), str(dst), "--samples-per-shard", "3", "--verify", "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"wrote 8 images of 2 classes in 3 shards (0.0 MB) to {dst}" in captured.out
    assert f"read them with: ImageShards({str(dst)!r})" in captured.out
    assert "OK: 8 images of 2 classes in 3 shards" in captured.out
    assert captured.err == ""  # --quiet: no bar
    folder, shards = ImageFolder(src), ImageShards(dst)
    assert shards.classes == ["cat", "dog"]
    for i in range(len(folder)):
        (a, ya), (b, yb) = folder[i], shards[i]
        np.testing.assert_array_equal(a, b)
        assert ya == yb
    shards.close()
    assert main(["verify", str(dst), "--quiet"]) == 0
    assert "OK: 8 images of 2 classes" in capsys.readouterr().out
    shard = dst / "shard-00001.tts"
    shard.write_bytes(shard.read_bytes()[:-1] + b"!")  # the last byte of the last image
    assert main(["verify", str(dst), "--quiet"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_shard_size_and_count_targets(tmp_path, capsys):
    src = image_folder(tmp_path)
    assert main(["convert", "imagefolder", str(src), str(tmp_path / "one"), "--quiet"]) == 0
    assert "in 1 shard (" in capsys.readouterr().out  # 64 MiB by default
    argv = ["convert", "imagefolder", str(src), str(tmp_path / "small"), "--shard-size", "0.001", "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    from tinytorch.data import ImageFolder, ShardedDataset

    sizes = [Path(p).stat().st_size for p, _ in ImageFolder(src).samples]
    counts = [s.samples for s in ShardedDataset(tmp_path / "small").manifest.shards]
    assert len(counts) > 1
    target, first = int(0.001 * (1 << 20)), 0
    for count in counts[:-1]:  # each shard is full once its images reach the target, not before
        assert sum(sizes[first : first + count]) >= target - 64 * count  # labels and paths count too
        assert sum(sizes[first : first + count - 1]) < target
        first += count
    both = ["--shard-size", "1", "--samples-per-shard", "4", "--quiet"]
    assert main(["convert", "imagefolder", str(src), str(tmp_path / "both"), *both]) == 0
    assert "in 2 shards" in capsys.readouterr().out


def test_overwrite_and_foreign_files_in_the_destination(tmp_path, capsys):
    src, dst = image_folder(tmp_path), tmp_path / "shards"
    assert main(["convert", "imagefolder", str(src), str(dst), "--quiet"]) == 0
    assert main(["convert", "imagefolder", str(src), str(dst), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", "imagefolder", str(src), str(dst), "--quiet", "--overwrite"]) == 0
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    assert main(["convert", "imagefolder", str(src), str(other), "--quiet", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "holds files `tinytorch-data convert` did not write (todo.txt)" in err
    assert (other / "todo.txt").read_text() == "mine"


def test_empty_class_folders_name_the_flag_that_keeps_them(tmp_path, capsys):
    src = image_folder(tmp_path)
    (src / "emu").mkdir()
    assert main(["convert", "imagefolder", str(src), str(tmp_path / "s"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Found no valid file for the classes emu" in err
    assert "--allow-empty" in err
    assert "allow_empty=True" not in err
    assert main(["convert", "imagefolder", str(src), str(tmp_path / "s"), "--quiet", "--allow-empty"]) == 0
    assert "of 3 classes" in capsys.readouterr().out


def test_shuffle_writes_a_seeded_order(tmp_path):
    import numpy as np

    from tinytorch.data import ImageFolder, ImageShards

    src = image_folder(tmp_path)
    argv = ["convert", "imagefolder", str(src), str(tmp_path / "s"), "--shuffle", "3", "--quiet"]
    assert main(argv) == 0
    order = np.random.default_rng(3).permutation(8)
    np.testing.assert_array_equal(ImageShards(tmp_path / "s").targets, ImageFolder(src).targets[order])
