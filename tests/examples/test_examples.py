"""The README's examples run as written (on generated data, so no download)."""

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize(("script", "needs"), [("train_torch_cnn.py", "torch"), ("train_jax.py", "jax")])
def test_example_runs(script, needs):
    pytest.importorskip(needs)
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--synthetic", "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "[synthetic] epoch 1: test accuracy" in out.stdout
