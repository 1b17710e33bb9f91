"""Splitting a stream between the processes of a job and the workers of each loader.

An ``IterableDataset`` decides its own order, so with ``num_workers=n`` every worker iterates
its own copy and must take its own share, as in torch (``get_worker_info()``). Under
``torchrun`` each rank must also take its own share. :func:`split_stream` does both: item ``i``
of the underlying stream goes to the reader ``i mod (world_size * num_workers)``, readers
numbered ``rank * num_workers + worker id``. Every item is read by exactly one reader of the job.

Use it on the cheapest sequence that determines the rest: the list of shard files rather than
the samples inside them when you can (each reader then opens only its own files)::

    class Lines(IterableDataset):
        def __init__(self, files):
            self.files = files

        def __iter__(self):
            for path in split_stream(self.files):  # this reader's files
                with open(path) as f:
                    yield from f

Readers get equal shares only to within one item; ranks of a DDP job must see the same number
of batches (else one waits forever in its last all-reduce), so give each rank the same number of
files, or stop every rank after ``min`` batches (``DataLoader(..., drop_last=True)`` and a
known length), or use a map-style dataset with :class:`~tinytorch.data.DistributedSampler`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from tinytorch.data.sampling.distributed import resolve_replicas
from tinytorch.data.worker_info import get_worker_info

__all__ = ["split_stream"]

T = TypeVar("T")


def split_stream(
    items: Iterable[T], *, num_replicas: int | None = None, rank: int | None = None
) -> Iterator[T]:
    """The items of ``items`` this process and this loader worker should read.

    Args:
        items: the whole stream (or the list of files that make it), the same on every reader.
        num_replicas, rank: the job's processes and this one's rank. ``None`` (both): from an
            initialized ``torch.distributed`` or the ``WORLD_SIZE``/``RANK`` variables torchrun
            sets, and a single process when neither is there.

    Returns:
        An iterator over items ``offset, offset + readers, offset + 2 * readers, ...`` with
        ``readers = num_replicas * num_workers`` and ``offset = rank * num_workers + worker id``.

    Raises:
        TypeError, ValueError: ``num_replicas``/``rank`` invalid, or only one of them given.
    """
    if num_replicas is None and rank is None and not _launched():
        world, me = 1, 0
    else:
        world, me = resolve_replicas(num_replicas, rank, owner="split_stream")
    info = get_worker_info()
    workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
    return islice(items, me * workers + worker, None, world * workers)


def _launched() -> bool:
    """Whether this process is part of a job (torchrun's variables, or torch.distributed)."""
    if "WORLD_SIZE" in os.environ or "RANK" in os.environ:
        return True
    dist = sys.modules.get("torch.distributed")
    return bool(dist is not None and dist.is_available() and dist.is_initialized())
