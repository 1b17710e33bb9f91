"""``tinytorch-data profile``: the command end to end and what it says about extrapolation."""

import builtins
import json
import mmap

import pytest

from tinytorch.analysis.profile import MemoryFit, MemoryPoint, fit_memory
from tinytorch.cli.main import main
from tinytorch.cli.profile import verdict

PNG = b"\x89PNG\r\n\x1a\n"


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
    assert isinstance(data["extrapolated"], bool)
    assert (tmp_path / "memory_vs_batch_size.png").read_bytes()[:8] == PNG


def test_largest_batch_from_a_linear_fit():
    points = [MemoryPoint(100, 0, 10_000 + 100 * 50), MemoryPoint(200, 0, 10_000 + 200 * 50)]
    assert fit_memory(points).largest_within(10_000 + 1000 * 50) == 1000
    assert fit_memory(points).largest_within(5_000) is None


def test_an_answer_beyond_the_measured_batches_says_it_is_extrapolated():
    fit = fit_memory([MemoryPoint(100, 0, 10_000 + 100 * 50), MemoryPoint(200, 0, 10_000 + 200 * 50)])
    assert fit.measured == (100, 200)
    best = fit.largest_within(10_000 + 1000 * 50)
    text = verdict(fit, best, 1.0, available=50_000)
    assert "1,000, EXTRAPOLATED" in text
    assert "largest batch measured (200)" in text
    assert "--batch-sizes 200 1000" in text
    assert "cannot be measured" in verdict(fit, best, 1.0, available=500)


def test_an_answer_inside_the_measured_batches_is_not_flagged():
    fit = MemoryFit(0.0, 1000.0, (100, 2000))
    text = verdict(fit, fit.largest_within(1_500_000), 1.0, available=50_000)
    assert "1,500 (within the measured batch sizes)" in text
    assert "EXTRAPOLATED" not in text


def test_memory_that_does_not_grow_gives_no_made_up_answer():
    fit = fit_memory([MemoryPoint(32, 0, 5_000_000), MemoryPoint(64, 0, 4_000_000)])
    assert fit.largest_within(1 << 30) is None
    assert "unknown" in verdict(fit, None, 1024, available=50_000)


def test_pipeline_memory_leaves_out_file_backed_pages():
    from tinytorch.analysis.profile import PIPELINE_FIELDS, pss_bytes

    pipeline = pss_bytes(fields=PIPELINE_FIELDS)
    assert 0 < pipeline <= pss_bytes()  # the interpreter's own code is file-backed


def test_a_fit_never_has_a_negative_fixed_part():
    # the profile of the fast kernels measured 1.1 MB at batch 32 and 38.4 MB at 2,048, rising
    # faster than linearly at the end: the free line crossed at -0.6 MB
    sizes = [32, 64, 128, 256, 512, 1024, 2048]
    peaks = [1.1, 1.5, 2.4, 4.1, 7.4, 14.2, 38.4]
    fit = fit_memory([MemoryPoint(s, 0, int(p * 2**20)) for s, p in zip(sizes, peaks, strict=True)])
    assert fit.fixed_bytes == 0.0
    expected = sum(s * p * 2**20 for s, p in zip(sizes, peaks, strict=True)) / sum(s * s for s in sizes)
    assert fit.bytes_per_sample == pytest.approx(expected, rel=1e-6)
    assert fit.largest_within(int(fit.bytes_per_sample * 100) + 1) == 100


def test_compiled_kernels_are_loaded_before_measuring_and_reported_apart(monkeypatch):
    from tinytorch.analysis import profile
    from tinytorch.data.transforms import kernels

    monkeypatch.setattr(kernels, "crop_flip_normalize_kernel", lambda: None)
    assert profile.load_compiled_kernels() == 0  # without numba nothing is loaded
    grown = []

    def load():  # a new anonymous mapping, written: what loading numba and LLVM does
        block = mmap.mmap(-1, 8 << 20)
        block.write(b"\x01" * len(block))
        grown.append(block)
        return len

    monkeypatch.setattr(kernels, "crop_flip_normalize_kernel", load)
    assert profile.load_compiled_kernels() >= 7 << 20


def without_smaps_rollup(monkeypatch):
    """A system without /proc/self/smaps_rollup (macOS, Linux before 4.14, some sandboxes)."""
    real = builtins.open

    def open_(path, *args, **kwargs):
        if str(path).endswith("smaps_rollup"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)


def test_without_smaps_rollup_profile_says_it_cannot_measure(tmp_path, capsys, monkeypatch):
    """Every point read 0 MB and the answer blamed noise ("measure larger batches"), exit code 0."""
    without_smaps_rollup(monkeypatch)
    argv = ["profile", "--synthetic", "--size", "256", "--batch-sizes", "32", "64", "--no-plots"]
    code = main([*argv, "--json", str(tmp_path / "p.json")])
    captured = capsys.readouterr()
    assert code == 2
    assert "/proc/self/smaps_rollup" in captured.err
    assert "cannot measure here" in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "p.json").exists()
