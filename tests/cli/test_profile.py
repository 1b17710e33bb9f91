"""``tinytorch-data profile``: the command end to end and what it says about extrapolation."""

import json

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
