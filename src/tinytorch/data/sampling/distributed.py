"""Splitting an epoch across the processes of a distributed job (torchrun, DDP).

**Training:** ``DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
drop_last=False)`` has ``torch.utils.data.DistributedSampler``'s signature, attributes
(``dataset``, ``num_replicas``, ``rank``, ``epoch``, ``seed``, ``shuffle``, ``drop_last``,
``num_samples``, ``total_size``) and semantics. Each epoch's order of the ``n`` indices (the
identity, or a permutation when ``shuffle``) is made evenly divisible by the world size:

* ``drop_last=False``: padded to ``total_size = ceil(n / num_replicas) * num_replicas`` by
  repeating indices from the *start* of the order (cyclically when ``n`` is smaller than the
  padding), so at most ``num_replicas - 1`` samples are seen twice per epoch;
* ``drop_last=True``: cut to ``total_size = (n // num_replicas) * num_replicas``; the dropped
  tail is different each epoch when ``shuffle``.

Rank ``r`` takes ``order[r:total_size:num_replicas]``: ``num_samples = total_size /
num_replicas`` indices on every rank, so every rank has the same number of batches and no rank
waits forever in DDP's last gradient all-reduce. With ``shuffle=False`` the indices are exactly
torch's. With ``shuffle=True`` the permutation of epoch ``e`` is ``RandomSampler(dataset,
seed=seed).indices(e)`` (numpy's PCG64 from ``SeedSequence(seed, spawn_key=(SHUFFLE, e))``)
instead of torch's ``randperm`` with ``manual_seed(seed + e)``: a different permutation, so the
same seed gives a different order than torch, but the padding and the split of a given
permutation are torch's. Call ``set_epoch(e)`` as in torch (the loader's rule for a sampler's
epoch is in docs/architecture.md). Every rank must pass the same ``seed``; there is no
``seed=None``, since ranks that drew their own seeds would overlap.

**Evaluation:** ``DistributedEvalSampler(dataset, num_replicas=None, rank=None, shuffle=False,
seed=0)`` neither pads nor drops: rank ``r`` takes ``order[r::num_replicas]``, so each sample is
evaluated exactly once across the job and ranks get ``ceil(n / R)`` or ``floor(n / R)`` samples
(``num_samples`` differs by at most one; ``total_size == n``). It is a separate class, not a flag,
so that ``DistributedSampler`` keeps torch's exact signature and a padded training sampler can
never be mistaken for an exact one. Since ranks may then have one batch more or less, do not run
a collective per batch (and do not call a DDP-wrapped model's forward, which may broadcast
buffers, on a rank that has finished). Either:

1. accumulate per-rank sums and counts and reduce once after the loop::

       totals = torch.tensor([loss_sum, correct, count], dtype=torch.float64)
       torch.distributed.all_reduce(totals)          # every rank calls it exactly once

   (evaluate with ``model.module``, the unwrapped model, so the forward pass syncs nothing); or
2. wrap per-batch collectives in ``torch.distributed.algorithms.Join`` (``with
   model.join(): ...`` for a DDP model), which shadows the collectives of finished ranks; or
3. keep ``DistributedSampler(drop_last=False)`` and mask the padding: the padding is the last
   ``total_size - n`` positions of the padded order, so on rank ``r`` the first
   ``len(range(r, n, num_replicas))`` samples are real and the rest are repeats; weight those by 0.

**Sharded and streaming orders** split the same way, each a pure function of ``(seed, epoch,
num_replicas, rank)``: pass ``num_replicas=`` and ``rank=`` (both ints; e.g. from
:func:`resolve_replicas`) and ``drop_last=`` to :class:`WindowedShuffleSampler` or
:class:`IndexShuffleSampler` (``None``, the default, means one process reads the whole dataset,
as with ``RandomSampler``). Both give every rank ``num_samples`` indices with the padding or
dropping above, so the per-rank index sets are disjoint except the padding and together cover the
dataset once:

* ``IndexShuffleSampler``: rank ``r`` takes positions ``r, r + R, r + 2R, ...`` of the epoch's
  bijection (positions past ``n`` wrap to the start), exactly ``DistributedSampler``'s split.
* ``WindowedShuffleSampler``: the epoch's shard order (the same on every rank) is read as one
  stream of samples, and rank ``r`` takes the *contiguous* positions ``[r * num_samples, (r + 1) *
  num_samples)`` of it: whole shards, plus a record range of at most one shard at each end of its
  span, so each rank streams its own shards and every shard file is opened by at most two ranks.
  The rank's pieces are then grouped ``window`` at a time and shuffled within each window, so the
  memory bound (about two windows of shards open) holds per rank.

Splitting a rank's batches across its DataLoader *workers* is the loader's job (batches are
dealt to workers in order), not the sampler's.

**World size and rank** (:func:`resolve_replicas`): the arguments when given; else an initialized
``torch.distributed`` process group, if the program imported torch (this module never imports
it); else the ``WORLD_SIZE`` and ``RANK`` variables that ``torchrun`` sets, read when the sampler
is built; else a ``ValueError`` (torch's class) saying what to pass.

**State:** the samplers here have no state beyond their settings and the epoch: the indices of
epoch ``e`` are ``indices(e)``, and ``index_chunks(e, start=k)`` gives them from position ``k``
without computing the earlier ones' shuffles, so resuming needs only ``(seed, epoch, position)``.
"""

from __future__ import annotations

import operator
import os
import sys
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.sampling.samplers import ArraySampler, IndexArray, index_dtype, permutation
from tinytorch.data.seeding import Stream, derive_rng, resolve_seed
from tinytorch.data.validate import check_bool, check_int

__all__ = ["DistributedEvalSampler", "DistributedSampler", "Partition", "resolve_replicas"]

_LAUNCH_HINT = (
    "pass num_replicas=<world size> and rank=<this process's rank>, call "
    "torch.distributed.init_process_group() before building the sampler, or launch with torchrun "
    "(which sets WORLD_SIZE and RANK)"
)


def resolve_replicas(
    num_replicas: object = None, rank: object = None, *, owner: str = "resolve_replicas"
) -> tuple[int, int]:
    """The world size and this process's rank, checked.

    Each of the two comes from its argument when not ``None``; else from the default process
    group of ``torch.distributed`` when torch is already imported and the group initialized;
    else from the environment variable ``torchrun`` sets (``WORLD_SIZE``, ``RANK``).

    Args:
        num_replicas: number of processes (a positive int, numpy ints accepted) or ``None``.
        rank: this process's rank in ``[0, num_replicas)`` or ``None``.
        owner: who asks, for messages (e.g. ``"DistributedSampler"``).

    Example (under torchrun)::

        num_replicas, rank = resolve_replicas()
        sampler = WindowedShuffleSampler(shards, window=4, seed=0, num_replicas=num_replicas, rank=rank)

    Returns:
        ``(num_replicas, rank)`` as Python ints.

    Raises:
        TypeError: an argument is not an int.
        ValueError: ``num_replicas < 1``; rank outside ``[0, num_replicas)`` (torch's message);
            a value cannot be found anywhere, or an environment variable is not an int.
    """
    world = _from_launcher("WORLD_SIZE", owner) if num_replicas is None else num_replicas
    world = check_int(world, "num_replicas", minimum=1, hint="the number of processes in the job")
    if rank is None:
        rank = _from_launcher("RANK", owner)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
        got = f"{type(rank).__name__} {rank!r}"
        raise TypeError(f"{owner} rank must be an int in [0, {world - 1}], got {got}")
    r = operator.index(rank)
    if not 0 <= r < world:
        raise ValueError(
            f"Invalid rank {r}, rank should be in the interval [0, {world - 1}] "
            f"(num_replicas={world}); pass the rank of this process, 0 to num_replicas - 1"
        )
    return world, r


def _from_launcher(variable: str, owner: str) -> int:
    """World size (``WORLD_SIZE``) or rank (``RANK``) from torch.distributed or the environment."""
    dist = sys.modules.get("torch.distributed")  # only if the program imported torch
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size() if variable == "WORLD_SIZE" else dist.get_rank())
    argument = "num_replicas" if variable == "WORLD_SIZE" else "rank"
    text = os.environ.get(variable)
    if text is None:
        raise ValueError(
            f"{owner} got {argument}=None, no initialized torch.distributed process group and no "
            f"{variable} environment variable: {_LAUNCH_HINT}"
        )
    try:
        return int(text.strip())
    except ValueError as e:
        raise ValueError(
            f"{owner} read {argument} from the environment, but {variable}={text!r} is not an int; "
            f"fix the variable or pass {argument}= explicitly"
        ) from e


@dataclass(frozen=True)
class Partition:
    """Which positions of an epoch's order of ``n`` indices one rank takes (pad or drop).

    The one place the split rule lives (``DistributedSampler`` semantics): the order is padded
    cyclically from its start to ``total_size`` (``drop_last=False``) or cut to it
    (``drop_last=True``), and every rank gets ``num_samples`` positions of it. The default,
    ``Partition()``, is one process taking the whole order.

    Attributes:
        num_replicas: world size, positive.
        rank: in ``[0, num_replicas)``.
        drop_last: drop the tail instead of padding.
    """

    num_replicas: int = 1
    rank: int = 0
    drop_last: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(
                f"Partition needs 0 <= rank < num_replicas, got rank={self.rank}, "
                f"num_replicas={self.num_replicas}; build it with Partition.of(...) to check arguments"
            )

    @classmethod
    def of(cls, num_replicas: object, rank: object, drop_last: object, *, owner: str) -> Partition:
        """Checked arguments of a sampler's ``num_replicas=``, ``rank=``, ``drop_last=``.

        Both ``None``: the whole order (one process). Otherwise both must be given; they are
        not looked up from the environment (use :func:`resolve_replicas` for that).
        """
        drop = check_bool(drop_last, "drop_last")
        if num_replicas is None and rank is None:
            return cls(1, 0, drop)
        if num_replicas is None or rank is None:
            given, missing = ("rank", "num_replicas") if num_replicas is None else ("num_replicas", "rank")
            raise ValueError(
                f"{owner} got {given}= without {missing}=: pass both to split the dataset across "
                "processes (under torchrun: num_replicas, rank = resolve_replicas()), or neither to "
                "read all of it"
            )
        world, r = resolve_replicas(num_replicas, rank, owner=owner)
        return cls(world, r, drop)

    def num_samples(self, n: int) -> int:
        """Positions per rank: ``n // R`` (``drop_last``) or ``ceil(n / R)``, in exact integers."""
        return n // self.num_replicas if self.drop_last else -(-n // self.num_replicas)

    def total_size(self, n: int) -> int:
        """Length of the padded or cut order: ``num_samples(n) * num_replicas``."""
        return self.num_samples(n) * self.num_replicas

    def strided(self, n: int, start: int = 0, stop: int | None = None) -> IndexArray:
        """This rank's positions ``start..stop`` of the order, strided as torch splits it.

        Returns:
            ``(stop - start,)`` int64 in ``[0, n)``: position ``j`` of the rank is
            ``(rank + j * num_replicas) % n`` (the modulo is the padding, which wraps to the start).
        """
        stop = self.num_samples(n) if stop is None else stop
        positions = np.arange(start, stop, dtype=np.int64) * self.num_replicas + self.rank
        if self.total_size(n) > n:
            positions %= n
        return positions

    def span(self, n: int) -> Iterator[tuple[int, int, int]]:
        """This rank's *contiguous* block of the padded order, as ranges of the real order.

        Rank ``r`` takes padded positions ``[r * num_samples, (r + 1) * num_samples)``.

        Yields:
            ``(first, stop, padded)``: positions ``first..stop`` of the order, which sit at
            position ``padded`` onwards in the padded order (unique across ranks). More than one
            range only where the padding wraps around to the start.
        """
        count = self.num_samples(n)
        position, end = self.rank * count, (self.rank + 1) * count
        while position < end:
            first = position % n
            take = min(end - position, n - first)
            yield first, first + take, position
            position += take


class PartitionedSampler(ArraySampler):
    """A sampler that reads one rank's share of its order, as ``self.partition`` says."""

    partition: Partition

    def _split(
        self, num_replicas: object, rank: object, drop_last: object, seed: object, generator: object
    ) -> tuple[Partition, int]:
        """The checked partition and seed; a split across processes needs a seed every rank shares.

        Raises:
            ValueError: ``num_replicas > 1`` with neither ``seed`` nor ``generator``: each rank
                would draw its own seed, and the ranks' shares would overlap.
        """
        owner = type(self).__name__
        partition = Partition.of(num_replicas, rank, drop_last, owner=owner)
        if partition.num_replicas > 1 and seed is None and generator is None:
            raise ValueError(
                f"{owner} got num_replicas={partition.num_replicas} and seed=None: each rank would "
                "draw its own seed and order, and the ranks' samples would overlap; pass seed=<int>, "
                "the same on every rank"
            )
        return partition, resolve_seed(seed, generator, owner=owner)

    @property
    def num_replicas(self) -> int:
        """World size of the split (1: the whole dataset)."""
        return self.partition.num_replicas

    @property
    def rank(self) -> int:
        """This process's rank in the split."""
        return self.partition.rank

    @property
    def drop_last(self) -> bool:
        """Whether the order is cut (``True``) or padded to a multiple of ``num_replicas``."""
        return self.partition.drop_last


class DistributedSampler(ArraySampler):
    """The part of ``dataset``'s indices that this process loads (torch's ``DistributedSampler``).

    Semantics, padding, the eval alternative and differences from torch: see the module docs.
    Use it as in torch::

        sampler = DistributedSampler(dataset, seed=0)        # rank and world size from torchrun
        loader = DataLoader(dataset, batch_size=64, sampler=sampler)
        for epoch in range(start_epoch, epochs):
            sampler.set_epoch(epoch)
            for batch in loader: ...

    Args:
        dataset: anything with ``len()`` (read each epoch; it must be the same on every rank).
        num_replicas: world size; ``None``: from torch.distributed or ``WORLD_SIZE``.
        rank: this process's rank; ``None``: from torch.distributed or ``RANK``.
        shuffle: a new permutation each epoch (else the identity order).
        seed: the permutation of epoch ``e`` is a pure function of ``(seed, e)``; the same on
            every rank.
        drop_last: cut the order to a multiple of ``num_replicas`` instead of padding it.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: a bad rank or world size, or neither given nor found.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        owner = type(self).__name__
        world, r = resolve_replicas(num_replicas, rank, owner=owner)
        self.dataset = dataset
        self.num_replicas = world
        self.rank = r
        self.epoch = 0
        self.drop_last = check_bool(drop_last, "drop_last")
        self.shuffle = check_bool(shuffle, "shuffle")
        self.seed = _same_seed_on_every_rank(seed, owner)
        self._partition = Partition(world, r, self.drop_last)

    @property
    def num_samples(self) -> int:
        """Indices per rank and epoch (the same on every rank)."""
        return self._partition.num_samples(len(self.dataset))

    @property
    def total_size(self) -> int:
        """Indices per epoch over all ranks, padding included: ``num_samples * num_replicas``."""
        return self._partition.total_size(len(self.dataset))

    def __len__(self) -> int:
        return self.num_samples

    def indices(self, epoch: int) -> IndexArray:
        n = len(self.dataset)
        order = _order(n, self.shuffle, self.seed, epoch)
        return order[self._partition.strided(n)]


class DistributedEvalSampler(ArraySampler):
    """Each index exactly once across the ranks: no padding, no dropping (for evaluation).

    Rank ``r`` takes ``order[r::num_replicas]``; ranks differ by at most one sample, so their
    loaders may differ by one batch: see the module docs for keeping ranks in step.

    Args:
        dataset: anything with ``len()``.
        num_replicas, rank: as for :class:`DistributedSampler`.
        shuffle: a permutation per epoch (default ``False``, the usual for evaluation).
        seed: the permutation of epoch ``e`` is a pure function of ``(seed, e)``: the
            same as :class:`DistributedSampler`'s with the same seed.

    Attributes:
        num_samples: this rank's indices per epoch (``ceil`` or ``floor`` of ``n / num_replicas``).
        total_size: ``len(dataset)``.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        owner = type(self).__name__
        self.num_replicas, self.rank = resolve_replicas(num_replicas, rank, owner=owner)
        self.dataset = dataset
        self.epoch = 0
        self.shuffle = check_bool(shuffle, "shuffle")
        self.seed = _same_seed_on_every_rank(seed, owner)

    @property
    def num_samples(self) -> int:
        """This rank's indices per epoch: ``len(range(rank, n, num_replicas))``."""
        return len(range(self.rank, len(self.dataset), self.num_replicas))

    @property
    def total_size(self) -> int:
        """Indices per epoch over all ranks: ``len(dataset)``, each once."""
        return len(self.dataset)

    def __len__(self) -> int:
        return self.num_samples

    def indices(self, epoch: int) -> IndexArray:
        order = _order(len(self.dataset), self.shuffle, self.seed, epoch)
        part: IndexArray = order[self.rank :: self.num_replicas].copy()
        return part


def _order(n: int, shuffle: bool, seed: int, epoch: int) -> NDArray[Any]:
    """The epoch's order before splitting: :class:`RandomSampler`'s permutation, or the identity."""
    if shuffle:
        return permutation(derive_rng(seed, Stream.SHUFFLE, epoch), n)
    return np.arange(n, dtype=index_dtype(n))


def _same_seed_on_every_rank(seed: object, owner: str) -> int:
    return check_int(
        seed,
        "seed",
        hint=f"{owner} needs the same seed on every rank (the default is 0); None would give each "
        "rank its own order, and the ranks' samples would overlap",
    )
