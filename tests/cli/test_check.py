import subprocess
import sys

import numpy as np

from tinytorch.cli import check
from tinytorch.cli.main import main


def test_check_passes_on_a_healthy_install(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "✅ __getitem__ protocol works correctly" in out
    assert "Progress: DataLoader ✓" in out
    assert "❌" not in out


def test_check_fails_loudly_when_a_component_is_broken(monkeypatch, capsys):
    def broken_collate(samples):
        return {"x": np.zeros(1), "y": np.zeros(1)}

    monkeypatch.setattr(check, "default_collate", broken_collate)
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "❌ Nested samples collate into numpy batches" in out
    assert "Progress: DataLoader ✗" in out
    assert "1 check(s) failed" in out


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "tinytorch.cli.main", "check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "All checks passed." in out.stdout


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: tinytorch-data" in capsys.readouterr().out


def test_check_covers_cifar_and_preprocessing(capsys):
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "Progress: CIFAR-10 Dataset ✓" in out
    assert "Progress: Preprocessing ✓" in out


def test_broken_cifar_loading_is_reported(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise FileNotFoundError("no batches here")

    monkeypatch.setattr(check, "CIFAR10Dataset", broken)
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "❌ Verified, extracted, parsed and cached" in out
    assert "Progress: CIFAR-10 Dataset ✗" in out
