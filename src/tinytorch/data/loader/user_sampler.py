"""The user's own sampler across epochs and resumes: every decision about it, in one place.

When the user passes a sampler or batch sampler (or an ``IterableDataset`` with ``set_epoch``),
the loader keeps it in step and in the checkpoint. :class:`UserSampler` decides:

* **its epoch** (:meth:`UserSampler.start_epoch`): set to the loader's with ``set_epoch``, or
  followed when the user set it since (a torch script calling ``sampler.set_epoch(e)``);
* **its own state**: ``state_dict()`` taken when each epoch starts (what a mid-epoch
  checkpoint holds) or now (between epochs), and loaded when a resumed epoch starts;
* **its passes**: a sampler whose order may change with every pass over it and that has no
  ``state_dict()`` (torch's ``RandomSampler(generator=g)``) is counted, and a resumed loader
  replays the passes, indices only (:func:`order_follows_epoch` says which samplers need it);
* **what a checkpoint must match**: its seed, its world size and its settings
  (:func:`sampler_settings`), and whether a saved state can be resumed at all
  (:meth:`UserSampler.check_resume`).

When the loader built the sampler itself (``shuffle=``), the loader's seed and epoch say
everything and this object does nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinytorch.data.loader.config import Batching
from tinytorch.data.loader.resume import Resume

__all__ = ["UserSampler", "order_follows_epoch", "passed_sampler", "sampler_settings", "torch_global_sampler"]


class UserSampler:
    """The user's sampler (or batch sampler, or iterable dataset) of a loader's batching.

    Args:
        b: the loader's resolved batching. The sampler objects are fixed after the loader is
            built (torch refuses to reassign them), so what is read here stays true.
    """

    def __init__(self, b: Batching) -> None:
        mine = not b.library_sampler
        _, passed = passed_sampler(b)
        owner = (b.dataset if b.iterable else passed) if mine else None
        self.epoch_owner: Any = owner if hasattr(owner, "set_epoch") else None
        """What ``set_epoch`` is called on (``None``: nothing of the user's has it)."""
        self.sampler: Any = passed if mine and not b.iterable else None
        """The sampler or batch sampler the user passed (``sampler=`` first), for messages."""
        self.keeper: Any = self.epoch_owner if self.epoch_owner is not None else self.sampler
        """Whose ``state_dict()`` a checkpoint holds (torch's ``Sampler`` has no ``set_epoch``)."""
        self.source: Any = b.index_source if mine and not b.iterable else None
        self.counts_passes = (
            self.source is not None
            and not callable(getattr(self.keeper, "state_dict", None))
            and not order_follows_epoch(self.source)
        )
        """Whether its order may change with each pass and it cannot save its own state."""
        self.seed = _sampler_seed(b) if mine else None
        self.settings = sampler_settings(passed) if mine and not b.iterable else None
        """What decides its order besides the seed (see :func:`sampler_settings`)."""
        self.num_replicas = _num_replicas(b)
        # An epoch already set when the loader is built is the user's choice; 0 is every
        # sampler's default, and counts as not set.
        self._owner_epoch: int | None = 0 if _current_epoch(self.epoch_owner) == 0 else None
        self.state_at_start: Any = None
        """Its ``state_dict()`` when the running epoch started (what a mid-epoch checkpoint holds)."""
        self.passes = 0
        """Passes started over it (counted only where :attr:`counts_passes`)."""

    def start_epoch(self, epoch: int, *, given: bool, resume: Resume | None) -> int:
        """The epoch an ``iter()`` runs, with the user's object kept in step (one rule).

        ``epoch`` is the loader's; ``given``: the user called ``loader.set_epoch`` since the
        last ``iter()``. The user's object is set to it, unless the user set the object's epoch
        since the loader last did: then the loader runs the user's epoch. Both set to different
        values is an error. A ``resume`` for this epoch loads the object's saved state.

        Raises:
            ValueError: ``loader.set_epoch`` and the sampler's ``set_epoch`` disagree.
        """
        owner = self.epoch_owner
        if owner is not None:
            theirs = _current_epoch(owner)
            if theirs is not None and theirs != self._owner_epoch and theirs != epoch:
                if given:
                    raise ValueError(
                        f"loader.set_epoch({epoch}) and {type(owner).__name__}.set_epoch({theirs}) "
                        "disagree: say the epoch once. Call loader.set_epoch(e) alone (the loader sets "
                        "the sampler's epoch), or sampler.set_epoch(e) alone (the loader follows it)"
                    )
                epoch = theirs
            owner.set_epoch(epoch)
            self._owner_epoch = epoch
        if resume is not None and resume.epoch == epoch and resume.sampler_state is not None:
            load = getattr(self.keeper, "load_state_dict", None)
            if callable(load):
                load(resume.sampler_state)
        self.state_at_start = self.state_now()
        return epoch

    def state_now(self) -> Any:
        """Its ``state_dict()`` now, where it has one, else ``None``."""
        save = getattr(self.keeper, "state_dict", None)
        return save() if callable(save) else None

    def catch_up(self, passes: int | None) -> None:
        """A pass begins: first, for a resumed run, iterate it (indices only) through the passes
        the saved run had made (``passes``) and this loader has not."""
        if not self.counts_passes:
            return
        if passes is not None:
            for _ in range(passes - self.passes):
                for _ in self.source:
                    pass
            self.passes = passes
        self.passes += 1

    def check_resume(self, resume: Resume) -> None:
        """Refuse a saved state this sampler cannot resume exactly.

        Raises:
            ValueError: the loader already made more passes over the sampler than the state
                had (a pass cannot be undone), or the sampler draws each pass from torch's
                global generator (no state holds it); the message says what to do instead.
        """
        if not self.counts_passes or resume.sampler_passes is None:
            return
        if resume.sampler_passes < self.passes:
            raise ValueError(
                f"load_state_dict(): the state was saved after {resume.sampler_passes} passes over your "
                f"{type(self.sampler).__name__}, and this loader has already made "
                f"{self.passes}: its order may depend on how often it was iterated, and a pass cannot be "
                "undone. Load the state into a fresh loader with a fresh sampler (before any iter()), or "
                "give the sampler state_dict()/load_state_dict()"
            )
        drawn_from = torch_global_sampler(self.source)
        if drawn_from is not None:
            raise ValueError(
                f"load_state_dict(): state['sampler_passes'] cannot be replayed: your {drawn_from} has "
                "generator=None, so each pass's order comes from torch's global generator as it was "
                "when the pass began (after everything else that drew from it), which no state holds. "
                f"Build it with generator=torch.Generator().manual_seed(s), or pass shuffle=True, seed=s "
                "to the DataLoader instead of the sampler"
            )


def order_follows_epoch(source: object) -> bool:
    """Whether the order of the index source ``source`` is a function of its epoch alone.

    True for the samplers of this package and their ``BatchSampler`` (pure functions of
    ``(seed, epoch)``), torch's ``SequentialSampler``, ``DistributedSampler`` and ``BatchSampler``
    over such, and plain sequences (a list, a range, an array). Any other sampler may carry
    state that each pass advances (torch's ``RandomSampler`` with a ``generator=`` draws a new
    order from it on every ``iter()``): unless it has ``state_dict()``, a resumed loader
    iterates it, indices only, as often as the saved run had before the saved epoch, so its
    hidden state is where the saved run's was.
    """
    if isinstance(source, (Sequence, np.ndarray)):
        return True
    kind = type(source)
    if kind.__module__.startswith("tinytorch.data.sampling."):
        inner = getattr(source, "sampler", None)
        return inner is None or order_follows_epoch(inner)
    data = sys.modules.get("torch.utils.data")
    if data is None or kind.__module__.split(".")[0] != "torch":
        return False
    if kind is data.BatchSampler:
        return order_follows_epoch(source.sampler)  # type: ignore[attr-defined]
    return kind in (data.SequentialSampler, data.DistributedSampler)


_ORDER_SETTINGS = ("window", "chunk", "shuffle", "replacement", "num_samples", "batch_size", "drop_last")
"""Attributes of the known samplers that change which indices come in which order."""


def sampler_settings(source: object) -> dict[str, Any] | None:
    """The settings that decide the order of this package's samplers and torch's own (a window,
    ``drop_last``, ``replacement``, how many are drawn, a batch size; a wrapped sampler's under
    ``"sampler."``), as plain JSON values; ``None`` when there are none to record.

    Recorded in a loader's state and compared on resume: a sampler built with another
    ``window=`` gives another order from the same seed, and the saved position would mean
    other samples. Another class's attributes are not read (they may be counters that change).
    """
    settings: dict[str, Any] = {}
    prefix = ""
    for _ in range(4):  # a batch sampler, the sampler it wraps
        if source is None or not _known_sampler(type(source)):
            break
        for name in _ORDER_SETTINGS:
            value = getattr(source, name, None)
            if isinstance(value, (bool, int, float, str, np.integer, np.bool_)):
                settings[prefix + name] = value.item() if isinstance(value, np.generic) else value
        partition = getattr(source, "partition", None)
        if partition is not None and hasattr(partition, "drop_last"):
            settings[prefix + "drop_last"] = bool(partition.drop_last)
        source = getattr(source, "sampler", None)
        prefix += "sampler."
    return settings or None


def _known_sampler(kind: type) -> bool:
    """This package's samplers, and torch's built-in ones (not a subclass of either)."""
    if kind.__module__.startswith("tinytorch.data.sampling."):
        return True
    data = sys.modules.get("torch.utils.data")
    if data is None or not kind.__module__.startswith("torch.utils.data"):
        return False
    builtin = ("SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler")
    return kind in (data.BatchSampler, data.DistributedSampler, *(getattr(data, n) for n in builtin))


def torch_global_sampler(source: object) -> str | None:
    """The name of a torch sampler in ``source`` (itself, or the sampler a batch sampler wraps)
    that draws each pass's order from torch's global generator (``generator=None``), else ``None``.

    Such an order depends on everything else that drew from torch's generator before the pass (a
    model's dropout included), which no loader state can hold, so it cannot be resumed exactly.
    """
    while source is not None:
        kind = type(source)
        if kind.__module__.split(".")[0] == "torch" and hasattr(source, "generator"):
            return kind.__name__ if source.generator is None else None
        source = getattr(source, "sampler", None)
    return None


def _current_epoch(owner: Any) -> int | None:
    """``owner.epoch`` when it is an int (torch's samplers and ours keep it there)."""
    epoch = getattr(owner, "epoch", None)
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
        return None
    return int(epoch)


def passed_sampler(b: Batching) -> tuple[str, Any]:
    """The keyword and object of the index source the user passed (``sampler=`` first, else
    ``batch_sampler=``; the object is ``None`` when neither was)."""
    return ("sampler", b.sampler) if b.sampler is not None else ("batch_sampler", b.batch_sampler)


def _index_sampler(b: Batching) -> Any:
    """The sampler that orders the indices: ``sampler=``, or the one a batch sampler wraps."""
    return b.sampler if b.sampler is not None else getattr(b.batch_sampler, "sampler", None)


def _num_replicas(b: Batching) -> int | None:
    """The world size of a sampler that splits epochs between processes (its ``num_replicas``)."""
    world = getattr(_index_sampler(b), "num_replicas", None)
    if isinstance(world, bool) or not isinstance(world, (int, np.integer)):
        return None
    return int(world)


def _sampler_seed(b: Batching) -> int | None:
    """The seed of a sampler the user passed: its ``seed`` (this package's samplers, torch's
    ``DistributedSampler``) or its torch ``generator``'s ``initial_seed()``; ``None`` for one
    without a seed."""
    sampler = _index_sampler(b)
    seed = getattr(sampler, "seed", None)
    if seed is None:
        initial_seed = getattr(getattr(sampler, "generator", None), "initial_seed", None)
        seed = initial_seed() if callable(initial_seed) else None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        return None
    return int(seed)
