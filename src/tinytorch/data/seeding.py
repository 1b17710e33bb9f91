"""Where every random number in the pipeline comes from.

The determinism contract (docs/architecture.md): a batch is a pure function of
``(seed, epoch, batch index)``. Every stage that needs randomness derives a
``numpy.random.Generator`` from those keys with :func:`derive_rng`, never from
numpy's or Python's global state, and never from which worker or thread runs
the work.

Keys are fed to ``numpy.random.SeedSequence`` as its ``spawn_key``, so streams
for different purposes (shuffling, a batch's augmentation, a sample's
augmentation) are statistically independent even when their numeric keys match.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from tinytorch.data.validate import check_int

__all__ = [
    "BatchContext",
    "Stream",
    "batch_context",
    "borrow_global_rngs",
    "check_seed",
    "default_seed",
    "derive_rng",
    "draws_from_global_rngs",
    "fresh_seed",
    "get_batch_context",
    "global_seed",
    "resolve_seed",
    "return_global_rngs",
    "seed_global_rngs",
    "users_global_rngs",
]


class Stream(IntEnum):
    """The purposes a random stream is derived for; the first element of a spawn key."""

    SHUFFLE = 1
    """Sampler order for an epoch: keys ``(epoch,)``."""
    BATCH = 2
    """Randomness of one batch (batch transforms): keys ``(epoch, batch_index)``."""
    SAMPLE = 3
    """Randomness of one sample of a batch: keys ``(epoch, batch_index, position)``."""
    SPLIT = 4
    """``random_split``: no further keys."""
    STREAM_ORDER = 5
    """Streaming order: keys ``(epoch,)`` for the shard order, ``(epoch, position)`` for the
    shuffle within the window that starts at ``position`` of the stream (``sampling/windowed.py``)."""
    WORKER_GLOBALS = 6
    """Seeds of a process worker's global RNGs for one batch: keys ``(epoch, batch_index)``."""
    INDEX_SHUFFLE = 7
    """Round keys of :class:`IndexShuffleSampler`'s bijection for an epoch: keys ``(epoch,)``."""


def check_seed(seed: object, *, name: str = "seed") -> int:
    """Validate a user-given seed (a non-negative int) and return it as a Python int."""
    return check_int(seed, name, hint=f"pass e.g. {name}=0, or {name}=None to draw one from OS entropy")


def resolve_seed(seed: object, generator: object = None, *, owner: str) -> int:
    """The seed of a loader, sampler or split from its ``seed=`` or torch-style ``generator=``.

    ``generator`` may be a ``torch.Generator``: it stands for ``seed=generator.initial_seed()``,
    so ``generator=torch.Generator().manual_seed(s)`` means ``seed=s`` and a torch script keeps
    working when it switches its import. Only the generator's seed is used, never its current
    state: an epoch's order stays a pure function of ``(seed, epoch)`` instead of depending on
    how many numbers the generator gave before (docs/architecture.md).

    Args:
        seed: a non-negative int, or ``None``.
        generator: ``None`` or a ``torch.Generator``.
        owner: who asks (for messages), e.g. ``"DataLoader"``.

    Returns:
        ``seed`` checked; the generator's initial seed; or, when both are ``None``,
        :func:`default_seed`, which the caller records.

    Raises:
        TypeError: ``generator`` is not a ``torch.Generator`` (e.g. a numpy Generator, whose
            seed cannot be read back), or ``seed`` is not an int.
        ValueError: both ``seed`` and ``generator`` given, or a negative seed.
    """
    if generator is None:
        return default_seed() if seed is None else check_seed(seed)
    if seed is not None:
        raise ValueError(
            f"{owner} got both seed={seed!r} and generator=; they say the same thing. Pass only "
            "seed=<int> (or only generator=torch.Generator().manual_seed(<int>))"
        )
    initial_seed = getattr(generator, "initial_seed", None)
    if type(generator).__module__.split(".")[0] != "torch" or not callable(initial_seed):
        raise TypeError(
            f"{owner} generator= takes a torch.Generator (its initial_seed() becomes the seed), got "
            f"{type(generator).__name__}. Pass seed=<int> instead: randomness here is a pure "
            "function of (seed, epoch, batch index), so a stateful generator is not needed"
        )
    return check_seed(int(initial_seed()), name="generator.initial_seed()")


_UNSEEDED = itertools.count()
"""How many loaders and samplers this process built with ``seed=None`` (see :func:`default_seed`)."""


def default_seed() -> int:
    """The seed of a loader or sampler built with ``seed=None``.

    When torch is imported (a torch script), it follows torch's global seed as torch's own
    shuffling does: derived from ``torch.initial_seed()`` — what ``torch.manual_seed(s)`` set,
    or the seed torch drew at start-up — and from how many ``seed=None`` objects this process
    built before,
    so ``torch.manual_seed(0)`` at the top of a script makes every run repeat, and a train and a
    validation loader still get different orders. torch's generator is read, never advanced.
    Otherwise a fresh seed from OS entropy (:func:`fresh_seed`): every run differs unless you
    pass ``seed=`` (or reuse ``loader.seed``).
    """
    index = next(_UNSEEDED)
    torch = sys.modules.get("torch")
    if torch is None:
        return fresh_seed()
    return int(np.random.SeedSequence([int(torch.initial_seed()), index]).generate_state(1, np.uint64)[0])


def fresh_seed() -> int:
    """Draw a new 64-bit seed from OS entropy (used when the user gives ``seed=None``).

    The caller records the value (``loader.seed``) so the run can be repeated.
    """
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])


def derive_rng(seed: int, stream: Stream, *keys: int) -> np.random.Generator:
    """A generator that depends only on ``(seed, stream, *keys)``.

    Args:
        seed: the run's seed (non-negative int).
        stream: what the numbers are for; see :class:`Stream`.
        keys: non-negative ints, e.g. ``(epoch, batch_index)``.

    Returns:
        A fresh PCG64 ``numpy.random.Generator``; calling twice with the same
        arguments gives two generators producing identical streams.
    """
    spawn_key = (int(stream), *(int(k) for k in keys))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=spawn_key))


@dataclass
class BatchContext:
    """What is being fetched right now: set by the loader around each batch and sample.

    Dataset code (``__getitem__``, per-sample transforms) reads it through
    :func:`get_batch_context` to get randomness that is deterministic for any
    number or kind of workers.

    Attributes:
        seed: the loader's seed.
        epoch: the epoch being loaded.
        batch_index: position of the batch in the epoch (0-based).
        position: position of the sample within the batch while one sample is
            being read (``dataset[i]``), ``None`` while the batch as a whole is
            being read, collated or transformed. The loader updates it in place as it
            reads sample after sample (a context belongs to one thread and one batch).
    """

    seed: int
    epoch: int
    batch_index: int
    position: int | None = None
    sample_transform_seconds: float = 0.0
    """Time spent in per-sample transforms of this batch (statistics; see fetch/timing.py)."""
    batched: bool = True
    """Whether the loader makes batches (``False`` with ``batch_size=None``: the batch stage
    then sees one sample). Transforms read it to know whether their input is one sample or a
    batch without guessing from its rank (transforms/base.py)."""
    skipped: int = 0
    """Samples the dataset left out of this batch (``ImageFolder(on_error="skip")``; statistics)."""

    @property
    def rng(self) -> np.random.Generator:
        """A fresh generator for what is being fetched.

        From ``(seed, epoch, batch_index)`` for the batch, or from
        ``(seed, epoch, batch_index, position)`` inside a per-sample read. Each
        access returns a new generator at the start of the same stream.
        """
        if self.position is None:
            return derive_rng(self.seed, Stream.BATCH, self.epoch, self.batch_index)
        return derive_rng(self.seed, Stream.SAMPLE, self.epoch, self.batch_index, self.position)

    def for_sample(self, position: int) -> BatchContext:
        """The context of the sample at ``position`` within this batch."""
        return BatchContext(self.seed, self.epoch, self.batch_index, position, batched=self.batched)


_CURRENT: contextvars.ContextVar[BatchContext | None] = contextvars.ContextVar(
    "tinytorch_batch_context", default=None
)


def get_batch_context() -> BatchContext | None:
    """The batch being fetched in this thread, or ``None`` outside a loader.

    Context variables are per thread (and per worker process), so this is
    correct under thread workers too.
    """
    return _CURRENT.get()


@contextlib.contextmanager
def batch_context(context: BatchContext) -> Iterator[BatchContext]:
    """Make ``context`` current for the duration of the ``with`` block."""
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def draws_from_global_rngs(obj: object) -> bool:
    """Whether code that makes a batch with ``obj`` may draw from a global random generator.

    ``False`` only for ``None`` and for this library's own objects that declare
    ``uses_global_rngs = False`` (a property on objects that wrap others, such as ``Subset`` or
    ``Compose``: ``False`` when everything they wrap says so). Anything else (a dataset, collate
    function or transform of yours, or a subclass of ours) may: then the loader seeds the global
    generators for every batch (:func:`seed_global_rngs`) and, in the loading process, restores
    them afterwards. A pipeline made only of this library's objects skips that work.
    """
    if obj is None:
        return False
    if not type(obj).__module__.startswith("tinytorch."):
        return True
    return bool(getattr(obj, "uses_global_rngs", True))


_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def global_seed(seed: int, epoch: int, batch_index: int) -> int:
    """The 32-bit value the global generators are seeded with for one batch.

    A SplitMix64 chain (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
    OOPSLA 2014) over ``(seed, WORKER_GLOBALS, epoch, batch_index)``: well mixed, ~1 µs (a
    ``SeedSequence`` takes ~6 µs, and this runs once per batch).
    """
    h = _splitmix64(int(Stream.WORKER_GLOBALS))
    seed = int(seed)
    while True:  # a seed wider than 64 bits, 64 bits at a time
        h = _splitmix64(h ^ (seed & _M64))
        seed >>= 64
        if not seed:
            break
    for key in (epoch, batch_index):
        h = _splitmix64(h ^ (int(key) & _M64))
    return h >> 32


def seed_global_rngs(seed: int, epoch: int, batch_index: int) -> None:
    """Seed the global generators user code may draw from, for batch ``batch_index`` of ``epoch``.

    numpy's legacy global generator (``np.random.*``), Python's ``random`` and, when torch is
    already imported, torch's default CPU generator (``torch.rand`` and torchvision's v1
    transforms) all restart from :func:`global_seed`, so code that calls them inside
    ``__getitem__`` makes the same batch whichever process makes it. torch is never imported
    here. ``torch.manual_seed`` would also seed every CUDA device, which a data worker does not
    use and which costs more than seeding everything else together, so only torch's CPU
    generator is seeded (costs: docs/benchmarks.md, "Global generators").
    """
    value = global_seed(seed, epoch, batch_index)
    np.random.seed(value)
    random.seed(value)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.default_generator.manual_seed(value)


def _global_states() -> tuple[Any, Any, Any]:
    torch = sys.modules.get("torch")
    return (
        np.random.get_state(),
        random.getstate(),
        torch.default_generator.get_state() if torch is not None else None,
    )


def _set_global_states(states: tuple[Any, Any, Any]) -> None:
    numpy_state, random_state, torch_state = states
    np.random.set_state(numpy_state)
    random.setstate(random_state)
    torch = sys.modules.get("torch")
    if torch is not None and torch_state is not None:
        torch.default_generator.set_state(torch_state)


_BORROWERS: list[list[Any]] = []
"""The in-process epochs that hold the global generators (process-wide, as the generators are),
oldest first: ``[token, the state to give back when it ends]``."""


def borrow_global_rngs() -> object:
    """An epoch made in the loading process starts seeding the global generators: their state now
    is saved. Returns the token to pass to :func:`return_global_rngs` when the epoch ends."""
    token = object()
    _BORROWERS.append([token, _global_states()])
    return token


def return_global_rngs(token: object) -> None:
    """The epoch of ``token`` ended (ran out, raised, was closed or dropped).

    The latest epoch to start gives back the state saved when it started (for epochs nested in
    a loop, the outer epoch's state where its batch left it). An epoch that ends while one that
    started after it still runs (``zip(loader_a, loader_b)``) hands its older saved state to that
    one, which gives it back when it ends. So an epoch left running (an iterator kept in a
    variable or a traceback) does not keep later epochs from giving the user's state back, as a
    count of running epochs did.

    Known limit (a decision, for cost): an epoch left running, then dropped *during* a later
    loop after the user reseeded between the two (``stale = iter(a); next(stale);
    np.random.seed(9); for x in b: ...``, ``stale`` collected inside the loop), hands its older
    state over as ``zip`` needs, so the later loop ends with the state from before ``stale``
    instead of seed 9's. Telling the two apart would take a copy of the states after every
    batch (~33 us); close or exhaust an epoch you stop early (``with iter(loader) as epoch:``).
    """
    i = next((i for i, (held, _) in enumerate(_BORROWERS) if held is token), None)
    if i is None:
        return
    _, states = _BORROWERS.pop(i)
    if i == len(_BORROWERS):
        _set_global_states(states)
    else:
        _BORROWERS[i][1] = states


@contextlib.contextmanager
def users_global_rngs(token: object) -> Iterator[None]:
    """Run the block with the global generators in the state the epoch of ``token`` gives back.

    For code of the user's that runs between batches of an in-process epoch on the user's
    behalf, such as a sampler drawing ``np.random.randint`` for each index it yields: it draws
    from (and advances) the user's state, as it does with workers and with torch, instead of
    from the state the last batch left. The state it leaves is what the epoch gives back. What
    the generators held before the block is not put back: the caller seeds them for its batch.
    """
    slot = next((held for held in _BORROWERS if held[0] is token), None)
    if slot is None:
        yield
        return
    _set_global_states(slot[1])
    try:
        yield
    finally:
        slot[1] = _global_states()
