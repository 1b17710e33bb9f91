"""The loader under the real engine (issue 15, "Tests with the real engine").

Each test starts ``torchrun --standalone --nproc_per_node=2`` (gloo, loopback) running
tests/support/ddp_train.py: a ``torch.nn.Linear`` in ``DistributedDataParallel`` trained through
our ``DataLoader``. The ranks log the sample ids of every batch; the tests compare them with
the samplers' plans, across ranks, and between an uninterrupted run and a run killed with
SIGKILL mid-epoch then restarted from its checkpoint. Every job is killed, with its ranks and
their loader workers, when a test fails. A run takes ~3-5 s (torch's import in each process).
"""

from __future__ import annotations

import contextlib
import json
import pathlib

import numpy as np
import pytest

from support.torchrun import DDP_TRAIN, finish, kill_job, torchrun, wait_for
from tinytorch import DistributedSampler, ShardedDataset, WindowedShuffleSampler, write_shards

pytest.importorskip("torch.distributed")

N, EVAL_N, BATCH, EPOCHS, SEED = 37, 17, 4, 2, 7  # 19 samples a rank: 5 batches, the last of 3
SIZES = (
    "--samples",
    str(N),
    "--eval-samples",
    str(EVAL_N),
    "--batch-size",
    str(BATCH),
    "--epochs",
    str(EPOCHS),
)
TIMEOUT = 90  # seconds for one job; a job still running then is a hang


@contextlib.contextmanager
def job(directory: pathlib.Path, *args: str, script: pathlib.Path = DDP_TRAIN):
    """A torchrun job writing into ``directory``; killed with everything it started on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "torchrun.log"
    proc = torchrun(script, ["--out", str(directory), *args] if script == DDP_TRAIN else list(args), log)
    try:
        yield proc, log
    finally:
        kill_job(proc)


def run(directory: pathlib.Path, *args: str) -> dict[int, list[dict]]:
    with job(directory, *args) as (proc, log):
        finish(proc, log, TIMEOUT)
    return events(directory)


def events(directory: pathlib.Path) -> dict[int, list[dict]]:
    """Each rank's logged events, in order."""
    return {
        rank: [json.loads(line) for line in (directory / f"rank{rank}.jsonl").read_text().splitlines()]
        for rank in (0, 1)
    }


def of(kind: str, log: list[dict]) -> list[dict]:
    return [e for e in log if e["event"] == kind]


def trained(log: list[dict]) -> list[tuple[int, int, list[int]]]:
    return [(e["epoch"], e["batch"], e["ids"]) for e in of("batch", log)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: 2 epochs, in-process loading, evaluation after each epoch."""
    directory = tmp_path_factory.mktemp("reference")
    return run(
        directory,
        *SIZES,
        *("--checkpoint", str(directory / "checkpoint.pt"), "--checkpoint-every", "4", "--workers", "0"),
    )


def ids_per_epoch(log: list[dict], epoch: int) -> list[int]:
    return [i for e, _, ids in trained(log) if e == epoch for i in ids]


def test_each_rank_loads_its_planned_part_and_together_they_cover_the_epoch_once(reference):
    for epoch in range(EPOCHS):
        parts = [ids_per_epoch(reference[rank], epoch) for rank in (0, 1)]
        for rank, part in enumerate(parts):
            planned = DistributedSampler(range(N), num_replicas=2, rank=rank, seed=SEED).indices(epoch)
            assert part == planned.tolist()
        counts = np.bincount(parts[0] + parts[1], minlength=N)
        assert counts.min() == 1  # every sample of the epoch was trained on
        # padding: ceil(37 / 2) * 2 - 37 = 1 sample twice, the first of the epoch's permutation,
        # once on each rank; otherwise the ranks' samples are disjoint
        first = DistributedSampler(range(N), num_replicas=1, rank=0, seed=SEED).indices(epoch)[0]
        assert np.flatnonzero(counts == 2).tolist() == [first]
        assert counts.sum() == N + 1
        assert first in parts[0]
        assert first in parts[1]
    assert ids_per_epoch(reference[0], 0) != ids_per_epoch(reference[0], 1)  # set_epoch reshuffles


def test_every_rank_runs_the_same_number_of_batches_and_the_job_ends(reference):
    per_rank = [trained(reference[rank]) for rank in (0, 1)]
    batches = [[(e, b, len(ids)) for e, b, ids in log] for log in per_rank]
    assert batches[0] == batches[1]  # same epochs, batch indices and sizes on both ranks
    assert [(e, b) for e, b, _ in batches[0]] == [(e, b) for e in range(EPOCHS) for b in range(5)]
    assert [size for _, _, size in batches[0][:5]] == [4, 4, 4, 4, 3]
    done = [of("done", reference[rank])[0] for rank in (0, 1)]
    assert done[0]["steps"] == done[1]["steps"] == 10
    assert done[0]["weights"] == done[1]["weights"]  # DDP kept the replicas equal


def test_evaluation_reads_each_sample_once_although_ranks_differ_by_a_batch(reference):
    for epoch in range(EPOCHS):
        evals = [next(e for e in of("eval", reference[rank]) if e["epoch"] == epoch) for rank in (0, 1)]
        ids = evals[0]["ids"] + evals[1]["ids"]
        assert sorted(ids) == list(range(10_000, 10_000 + EVAL_N))  # no duplicate, none missing
        assert [e["batches"] for e in evals] == [3, 2]  # 9 and 8 samples, batches of 4
        assert [len(e["ids"]) for e in evals] == [9, 8]
        total = next(e for e in of("eval-total", reference[0]) if e["epoch"] == epoch)
        assert total["count"] == EVAL_N  # the one all-reduce after the loop saw every sample


def test_every_rank_has_the_same_loader_state_at_a_checkpoint(reference):
    for rank in (0, 1):
        checkpoints = of("checkpoint", reference[rank])
        assert [c["step"] for c in checkpoints] == [4, 8]
        assert all(c["states_equal"] for c in checkpoints)  # rank 0's state serves every rank


def test_a_job_killed_mid_epoch_resumes_with_exactly_the_remaining_samples(reference, tmp_path):
    """SIGKILL the whole job (ranks, torchrun, loader workers) in epoch 1, restart from the checkpoint.

    The checkpoint is written after step 8 (epoch 1, 3 of its 5 batches delivered); the job is
    killed after step 9, so step 9 was trained on and then lost, as in a real preemption. The
    killed run loads with 2 process workers, the resumed one in-process, the reference in-process.
    """
    checkpoint = tmp_path / "checkpoint.pt"
    common = (*SIZES, "--checkpoint", str(checkpoint), "--checkpoint-every", "4")
    killed = tmp_path / "killed"
    with job(killed, *common, "--workers", "2", "--hang-after", "9") as (proc, log):
        wait_for(proc, [killed / "hanging.0", killed / "hanging.1"], log, TIMEOUT)
        pids = kill_job(proc)
    assert proc.returncode == -9
    assert len(pids) >= 1 + 2 + 2 * 2  # torchrun, two ranks, two loader workers each: all killed
    assert not list(tmp_path.glob(".checkpoint.pt.*"))  # no half-written checkpoint
    before = events(killed)
    resumed = run(tmp_path / "resumed", *common, "--workers", "0")

    for rank in (0, 1):
        saved = [b for b in trained(before[rank]) if b[:2] <= (1, 2)]  # steps 1-8: in the checkpoint
        assert len(saved) == 8
        assert trained(before[rank])[8] == trained(reference[rank])[8]  # step 9 ran, then was lost
        start = of("resumed", resumed[rank])[0]
        assert (start["step"], start["loader"]["epoch"], start["loader"]["batches_delivered"]) == (8, 1, 3)
        assert trained(resumed[rank]) == trained(reference[rank])[8:]  # exactly the remaining samples
        assert saved + trained(resumed[rank]) == trained(reference[rank])
        assert of("eval", resumed[rank]) == [e for e in of("eval", reference[rank]) if e["epoch"] == 1]
    np.testing.assert_allclose(  # model and optimizer (momentum) state came back with the loader's
        of("done", resumed[0])[0]["weights"], of("done", reference[0])[0]["weights"], rtol=1e-6, atol=1e-7
    )


def test_windowed_shards_split_across_ranks_under_torchrun(tmp_path):
    """ShardedDataset + WindowedShuffleSampler(num_replicas, rank), two thread workers per rank."""
    from support.ddp_train import samples

    n = 45  # 8 shards of 6 (the last of 3); 23 samples a rank, one of them padding
    shards = tmp_path / "shards"
    write_shards(samples(n), shards, samples_per_shard=6)
    logs = run(
        tmp_path / "run",
        *("--data", "shards", "--shards", str(shards), "--window", "2", "--batch-size", "5"),
        *("--epochs", "2", "--workers", "2", "--worker-type", "thread"),
    )
    dataset = ShardedDataset(shards)
    for epoch in range(2):
        parts = [ids_per_epoch(logs[rank], epoch) for rank in (0, 1)]
        for rank, part in enumerate(parts):
            sampler = WindowedShuffleSampler(dataset, 2, seed=SEED, num_replicas=2, rank=rank)
            assert part == sampler.indices(epoch).tolist()
        counts = np.bincount(parts[0] + parts[1], minlength=n)
        assert counts.min() == 1
        assert counts.sum() == n + 1
        # each rank streams its own contiguous part of the epoch's shard order: the ranks share
        # at most the one shard at the boundary (and the padding's)
        shards_of = [{i // 6 for i in part} for part in parts]
        assert len(shards_of[0] & shards_of[1]) <= 2
    assert [len(trained(logs[r])) for r in (0, 1)] == [10, 10]  # ceil(23 / 5) = 5 batches an epoch
