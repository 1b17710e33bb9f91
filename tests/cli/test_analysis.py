import json

import pytest

from tinytorch.analysis.profile import MemoryPoint, largest_batch_within
from tinytorch.cli.main import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_bench_end_to_end_writes_png_and_json(tmp_path, capsys):
    code = main(
        [
            "bench",
            "--synthetic",
            "--size",
            "2000",
            "--batches",
            "3",
            "--batch-sizes",
            "64",
            "256",
            "--workers",
            "0",
            "1",
            "--out",
            str(tmp_path / "plots"),
            "--json",
            str(tmp_path / "b.json"),
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "images/s" in out
    rows = json.loads((tmp_path / "b.json").read_text())
    assert {r["sweep"] for r in rows} == {"baseline", "batch_size", "workers", "storage", "shuffle"}
    assert all(r["images_per_second"] > 0 for r in rows)
    for name in ("throughput_vs_batch_size", "throughput_vs_workers", "stage_breakdown"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == PNG


def test_profile_end_to_end(tmp_path, capsys):
    code = main(
        [
            "profile",
            "--synthetic",
            "--size",
            "2000",
            "--batch-sizes",
            "32",
            "128",
            "--budget-mb",
            "64",
            "--out",
            str(tmp_path),
            "--json",
            str(tmp_path / "p.json"),
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "NOT included" in out
    data = json.loads((tmp_path / "p.json").read_text())
    assert [p["batch_size"] for p in data["points"]] == [32, 128]
    assert data["points"][1]["bytes_per_batch"] == 128 * 3 * 32 * 32 * 4 + 128 * 8
    assert (tmp_path / "memory_vs_batch_size.png").read_bytes()[:8] == PNG


def test_largest_batch_from_a_linear_fit():
    points = [MemoryPoint(100, 0, 10_000 + 100 * 50), MemoryPoint(200, 0, 10_000 + 200 * 50)]
    assert largest_batch_within(points, 10_000 + 1000 * 50) == 1000
    assert largest_batch_within(points, 5_000) is None


def test_missing_cifar_says_what_to_do(tmp_path, capsys):
    assert main(["bench", "--root", str(tmp_path), "--quiet"]) == 2
    assert "--synthetic" in capsys.readouterr().out


def test_convert_and_verify(tmp_path, capsys, monkeypatch):
    from support.cifar_files import cifar10_files

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, data in cifar10_files(per_batch=10).items():
        (folder / name).write_bytes(data)
    assert (
        main(
            [
                "convert",
                "cifar10",
                str(tmp_path / "shards"),
                "--root",
                str(tmp_path / "data"),
                "--samples-per-shard",
                "16",
                "--verify",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "wrote 50 samples in 4 shards" in out
    assert "OK: 50 samples" in out
    shard = tmp_path / "shards" / "shard-00000.tts"
    shard.write_bytes(b"x" + shard.read_bytes()[1:])
    assert main(["verify", str(tmp_path / "shards")]) == 1
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["bench", "profile"])
def test_help(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--synthetic" in capsys.readouterr().out
