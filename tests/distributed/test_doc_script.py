"""The training script in docs/distributed.md runs as written under torchrun, and resumes."""

from __future__ import annotations

import pathlib
import re

import pytest

from support.torchrun import finish, kill_job, tail, torchrun

pytest.importorskip("torch.distributed")

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "distributed.md"


def doc_script() -> str:
    """The ```python block of docs/distributed.md that starts with ``# train_ddp.py``."""
    blocks = re.findall(r"```python\n(# train_ddp\.py.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/distributed.md must hold exactly one block starting '# train_ddp.py'"
    return blocks[0]


def launch(directory: pathlib.Path, name: str) -> str:
    log = directory / f"{name}.log"
    proc = torchrun(directory / "train_ddp.py", [], log, cwd=directory)
    try:
        finish(proc, log, timeout=120)
    finally:
        kill_job(proc)
    return log.read_text()


def test_the_documented_script_trains_evaluates_and_resumes(tmp_path):
    (tmp_path / "train_ddp.py").write_text(doc_script())
    first = launch(tmp_path, "first")
    losses = dict(re.findall(r"epoch (\d): val loss (\S+) on 200 samples", first))
    assert sorted(losses) == ["0", "1", "2"], tail(tmp_path / "first.log")  # every sample once, each epoch
    assert "resumed" not in first
    assert (tmp_path / "checkpoint.pt").exists()
    assert not (tmp_path / "checkpoint.pt.tmp").exists()

    # 13 batches a rank and epoch (400 samples, batch 32): the last checkpoint was written after
    # step 30, the 4th batch of epoch 2. The second run continues from there, and ends with
    # exactly the model the first run ended with.
    second = launch(tmp_path, "second")
    assert "resumed at epoch 2, batch 4" in second, tail(tmp_path / "second.log")
    assert re.findall(r"epoch (\d): val loss (\S+) on 200 samples", second) == [("2", losses["2"])]
