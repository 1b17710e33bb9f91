"""A tiny DDP training job that torchrun starts in tests/distributed/test_torchrun.py.

Run as ``torchrun --standalone --nproc_per_node=2 ddp_train.py --out DIR ...`` (gloo, CPU). Each
rank trains a ``torch.nn.Linear`` wrapped in ``DistributedDataParallel`` through a tinytorch
``DataLoader`` and writes what it did, one JSON line per event, to ``DIR/rank<r>.jsonl``:

* ``{"event": "batch", "epoch", "batch", "step", "ids"}`` for every training batch, before its
  gradient all-reduce (so a batch a killed run logged may not have been trained on);
* ``{"event": "eval", "epoch", "ids", "batches"}`` after each epoch's evaluation, and on rank 0
  ``{"event": "eval-total", "epoch", "count"}`` (the all-reduced number of samples evaluated);
* ``{"event": "checkpoint", "step", "states_equal"}`` when a checkpoint was written (rank 0) or
  taken part in (all ranks): whether every rank's ``loader.state_dict()`` was the same;
* ``{"event": "resumed", "step", "loader"}`` when the run started from a checkpoint;
* ``{"event": "done", "steps", "weights"}`` at the end (the model's parameters, flattened).

``--hang-after S`` makes every rank stop after its step ``S`` (and that step's checkpoint, if
any), write ``DIR/hanging.<rank>`` and sleep, so that the test can kill the whole job with
SIGKILL at a known point. ``--checkpoint PATH`` is read at the start when it exists and written
(by rank 0, atomically) every ``--checkpoint-every`` steps.

The training data: ``--data map`` a ``TensorDataset`` of ``--samples`` samples (features, target, id)
split by ``DistributedSampler``; ``--data shards`` the same samples from ``--shards DIR``
(written by the test with ``write_shards``) split by ``WindowedShuffleSampler(num_replicas,
rank)``. Evaluation: ``--eval-samples`` samples split by ``DistributedEvalSampler``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tinytorch import (
    DataLoader,
    DistributedEvalSampler,
    DistributedSampler,
    ShardedDataset,
    TensorDataset,
    WindowedShuffleSampler,
)

SEED = 7


def samples(n: int, offset: int = 0) -> TensorDataset:
    """``n`` samples ``(features (4,) float32, target (1,) float32, id int64)``, ids from ``offset``."""
    rng = np.random.default_rng(offset)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype=np.float32) + 0.1).astype(np.float32)
    return TensorDataset(x, y, np.arange(offset, offset + n, dtype=np.int64))


def save_atomically(obj: object, path: pathlib.Path) -> None:
    """``torch.save`` to a temporary sibling, fsync, rename, fsync the directory."""
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--data", choices=["map", "shards"], default="map")
    parser.add_argument("--shards", type=pathlib.Path)
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--samples", type=int, default=37)
    parser.add_argument("--eval-samples", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--worker-type", default="process")
    parser.add_argument("--checkpoint", type=pathlib.Path)
    parser.add_argument("--checkpoint-every", type=int, default=3)
    parser.add_argument("--hang-after", type=int, default=-1)
    args = parser.parse_args()

    rank, world = dist.get_rank(), dist.get_world_size()
    log_file = open(args.out / f"rank{rank}.jsonl", "a")  # noqa: SIM115 (open for the whole run)

    def log(**event: object) -> None:
        log_file.write(json.dumps(event) + "\n")
        log_file.flush()  # a SIGKILL loses nothing already written

    workers = {"num_workers": args.workers, "worker_type": args.worker_type}
    if args.data == "map":
        train: TensorDataset | ShardedDataset = samples(args.samples)
        sampler: DistributedSampler | WindowedShuffleSampler = DistributedSampler(train, seed=SEED)
    else:
        train = ShardedDataset(args.shards)
        sampler = WindowedShuffleSampler(train, args.window, seed=SEED, num_replicas=world, rank=rank)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, seed=SEED, **workers)

    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    start_epoch, step = 0, 0
    if args.checkpoint is not None and args.checkpoint.exists():
        saved = torch.load(args.checkpoint)  # weights_only: tensors, dicts, lists, ints, strings
        model.module.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        loader.load_state_dict(saved["loader"])
        start_epoch, step = saved["epoch"], saved["step"]
        log(event="resumed", step=step, loader=saved["loader"])

    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)
        model.train()
        for x, y, ids in loader:
            batch = loader.state_dict()["batches_delivered"] - 1  # this batch's index in the epoch
            step += 1
            log(event="batch", epoch=epoch, batch=batch, step=step, ids=ids.tolist())
            loss = torch.nn.functional.mse_loss(model(torch.from_numpy(x)), torch.from_numpy(y))
            optimizer.zero_grad()
            loss.backward()  # DDP's gradient all-reduce: every rank must get here each step
            optimizer.step()
            if args.checkpoint is not None and step % args.checkpoint_every == 0:
                state = loader.state_dict()
                states: list[object] = [None] * world
                dist.all_gather_object(states, state)
                if rank == 0:
                    checkpoint = {
                        "model": model.module.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "loader": state,
                        "epoch": epoch,
                        "step": step,
                    }
                    save_atomically(checkpoint, args.checkpoint)
                log(event="checkpoint", step=step, states_equal=all(s == state for s in states))
            if step == args.hang_after:
                (args.out / f"hanging.{rank}").write_text(str(os.getpid()))
                time.sleep(3600)  # until the test kills the job
        if args.eval_samples:
            evaluate(model.module, args, epoch, rank, log)
    log(event="done", steps=step, weights=[float(v) for p in model.parameters() for v in p.flatten()])
    log_file.close()
    loader.close()


def evaluate(
    model: torch.nn.Module, args: argparse.Namespace, epoch: int, rank: int, log: Callable[..., None]
) -> None:
    """Each evaluation sample exactly once across the ranks; ranks may differ by one batch.

    The unwrapped model runs no collective, so the rank with fewer batches does not wait; the
    totals are all-reduced once, after the loop, on every rank.
    """
    data = samples(args.eval_samples, offset=10_000)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=DistributedEvalSampler(data))
    model.eval()
    ids: list[int] = []
    batches = 0
    totals = torch.zeros(2, dtype=torch.float64)  # squared error, samples
    with torch.no_grad():
        for x, y, i in loader:
            error = (model(torch.from_numpy(x)) - torch.from_numpy(y)).square().sum()
            totals += torch.tensor([float(error), len(i)], dtype=torch.float64)
            ids += i.tolist()
            batches += 1
    dist.all_reduce(totals)
    log(event="eval", epoch=epoch, ids=ids, batches=batches)
    if rank == 0:
        log(event="eval-total", epoch=epoch, count=int(totals[1]))


if __name__ == "__main__":
    dist.init_process_group("gloo")
    main()
    # The DDP model must be gone before its process group: freed later, at interpreter exit, it
    # aborted about one run in four (torch 2.13, gloo: "terminate called without an active
    # exception"). It sits in reference cycles, so returning from main() is not enough.
    gc.collect()
    dist.destroy_process_group()
