"""``tinytorch-data bench``: the command end to end, the table, the comparisons, matplotlib missing."""

import json
import os
import sys
from pathlib import Path

import pytest

from tinytorch.analysis.bench import (
    BenchResult,
    Round,
    Setting,
    compare,
    confidence,
    run_sweep,
    sweep_settings,
)
from tinytorch.cli.bench import stage_table, throughput_table
from tinytorch.cli.main import main
from tinytorch.cli.measure import format_table
from tinytorch.data.loader.stats import STAGES

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["--synthetic", "--size", "1200", "--seconds", "0.01", "--rounds", "2", "--quiet"]


def test_bench_end_to_end_writes_png_and_json(tmp_path, capsys):
    argv = ["bench", *SMALL, "--batch-sizes", "64", "256", "--workers", "0", "1"]
    code = main([*argv, "--out", str(tmp_path / "plots"), "--json", str(tmp_path / "out" / "b.json")])
    assert code == 0
    out = capsys.readouterr().out
    assert "images/s" in out
    rows = json.loads((tmp_path / "out" / "b.json").read_text())
    assert {r["sweep"] for r in rows} == {"baseline", "batch_size", "workers", "storage", "shuffle"}
    assert all(len(r["rounds"]) == 2 for r in rows)
    assert all(
        r["images_per_second_low"] <= r["images_per_second"] <= r["images_per_second_high"] for r in rows
    )
    for name in ("throughput_vs_batch_size", "throughput_vs_workers", "stage_breakdown"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == PNG


def test_without_matplotlib_bench_says_so_first_prints_the_table_and_succeeds(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    argv = ["bench", *SMALL, "--batch-sizes", "64", "--workers", "0", "--storage", "memory"]
    code = main([*argv, "--out", str(tmp_path / "plots")])
    captured = capsys.readouterr()
    assert code == 0
    assert 'pip install "tinytorch-data[analysis]"' in captured.err
    assert "--no-plots" in captured.err
    assert "shuffle off" in captured.out  # the whole table
    assert "plots: none" in captured.out
    assert not (tmp_path / "plots").exists()


def test_without_matplotlib_profile_succeeds_too(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = main(
        ["profile", "--synthetic", "--size", "256", "--batch-sizes", "32", "64", "--out", str(tmp_path)]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "tinytorch-data[analysis]" in captured.err
    assert "largest batch" in captured.out


def result(sweep, rates, **change):
    stages = dict.fromkeys(STAGES, 1.0)
    return BenchResult(Setting(sweep, **change), [Round(r, 10, 0.1, stages) for r in rates])


def test_confidence_of_the_lowest_to_highest_interval():
    assert confidence(5) == pytest.approx(0.9375)
    assert confidence(7) == pytest.approx(0.984375)


def test_noise_is_reported_as_no_difference():
    baseline = result("baseline", [100, 120, 90, 110, 105])
    shuffle_off = result("shuffle", [98, 121, 92, 108, 103], shuffle=False)  # a little lower: noise
    assert compare(shuffle_off, baseline).within_noise
    table = throughput_table([baseline, shuffle_off], rounds=5)
    assert "same within noise" in table.splitlines()[-1]
    assert "slower" not in table


def test_a_real_difference_is_reported():
    baseline = result("baseline", [100, 120, 90, 110, 105])
    faster = result("batch_size", [150, 170, 140, 160, 150], batch_size=512)
    c = compare(faster, baseline)
    assert not c.within_noise
    assert c.low > 1
    assert throughput_table([baseline, faster], rounds=5).splitlines()[-1].endswith("faster")


def test_tables_never_cut_column_headers():
    baseline = result("baseline", [100, 100])
    table = stage_table([baseline])
    header = table.splitlines()[0]
    for stage in STAGES:
        assert f" {stage} " in f" {header} "
    assert format_table(["a very long header", "x"], [["1", "2"]]).splitlines()[1].startswith("1 " + " " * 17)


def test_rounds_are_interleaved_forward_then_backward(monkeypatch):
    order = []

    def fake_measure(dataset, setting, seconds):
        order.append(setting.sweep)
        return Round(1.0, 1, seconds, dict.fromkeys(STAGES, 0.0))

    monkeypatch.setattr("tinytorch.analysis.bench._measure", fake_measure)
    settings = [Setting("baseline"), Setting("shuffle", shuffle=False)]
    results = run_sweep(None, settings, seconds=0.1, rounds=3)
    assert order == ["baseline", "shuffle", "shuffle", "baseline", "baseline", "shuffle"]
    assert [len(r.rounds) for r in results] == [3, 3]


def test_sweep_varies_one_factor_at_a_time():
    settings = sweep_settings([64, 256, 64], [0, 2], ["memory", "sharded"])
    assert settings[0] == Setting("baseline")
    assert [s.batch_size for s in settings if s.sweep == "batch_size"] == [64]  # 256 is the baseline
    workers = [(s.num_workers, s.worker_type) for s in settings if s.sweep == "workers"]
    assert workers == [(0, "thread"), (2, "process")]
    assert [s.shuffle for s in settings if s.sweep == "shuffle"] == [False]


def test_too_little_data_for_the_baseline_is_an_error_naming_it(tmp_path, capsys):
    """The baseline (batch 256) runs whatever --batch-sizes says: with --size 300 it was measured
    on batches of 256 and 44 and every ratio to it was off, silently."""
    argv = ["bench", *SMALL[3:], "--synthetic", "--size", "300", "--batch-sizes", "64", "--workers", "0"]
    code = main([*argv, "--storage", "memory", "--no-plots", "--json", str(tmp_path / "b.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert "the baseline's batch of 256" in err
    assert "768 images" in err
    assert "--size" in err
    assert "Traceback" not in err
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("command", ["bench", "profile"])
def test_a_size_too_large_to_generate_is_an_error_naming_size_before_any_work(command, capsys):
    """--size 10**11 raised numpy's MemoryError from the generator: a traceback, exit code 1."""
    code = main([command, "--synthetic", "--size", str(10**11), "--batch-sizes", "2", "4", "--no-plots"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--size 100,000,000,000" in err
    assert "pass a smaller --size" in err
    assert "Traceback" not in err


def test_memory_refused_while_generating_is_an_error_naming_size(capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise MemoryError("Unable to allocate 745. GiB")

    monkeypatch.setattr("tinytorch.analysis.sources.synthetic_cifar", refuse)
    code = main(["profile", "--synthetic", "--size", "1000", "--batch-sizes", "2", "4", "--no-plots"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--size 1,000" in err
    assert "more memory than this process could get" in err


def refuse_writes_under(monkeypatch, folder):
    """What os.access says for a read-only folder (tests run as root, whom permissions never stop)."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and (Path(path) == folder or folder in Path(path).parents):
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("command", ["bench", "profile"])
def test_an_unwritable_json_or_out_is_a_usage_error_before_any_work(command, tmp_path, capsys, monkeypatch):
    """--json in a folder that refuses writes failed only after the whole measurement."""
    locked = tmp_path / "locked"
    locked.mkdir()
    refuse_writes_under(monkeypatch, locked)

    def no_work(*args, **kwargs):
        pytest.fail("the measurement started before the outputs were checked")

    monkeypatch.setattr("tinytorch.cli.measure.load_source", no_work)
    small = ["--synthetic", "--size", "1000", "--batch-sizes", "2", "4"]
    code = main([command, *small, "--no-plots", "--json", str(locked / "new" / "r.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert "argument --json" in err
    assert f"{locked} is not writable" in err
    code = main([command, *small, "--out", str(locked)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--out {locked} is not writable" in err
    assert "--no-plots" in err


def test_json_is_written_in_one_step_and_a_full_disk_is_reported(tmp_path, capsys, monkeypatch):
    """The results were written with write_text: a full disk left a truncated file and exit code 0."""
    target = tmp_path / "p.json"
    target.write_text('{"old": true}')

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    small = ["--synthetic", "--size", "64", "--batch-sizes", "2", "4", "--no-plots"]
    code = main(["profile", *small, "--json", str(target)])
    err = capsys.readouterr().err
    assert code == 2
    assert "No space left on device" in err
    assert "--json" in err
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]
