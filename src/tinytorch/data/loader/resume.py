"""Mid-epoch resume: what a loader's state is, and the checks before a saved one is used.

A batch is a pure function of ``(seed, epoch, batch index)``, so the position in a run is all a
loader has to save: no buffered batch, no worker's state. :func:`loader_state` builds the
dictionary ``DataLoader.state_dict()`` returns (small, JSON-serializable: ints, strings,
lists, ``None``, and a user sampler's own ``state_dict()`` where it has one); :func:`check_state`
refuses a state that cannot describe this loader's run, naming the field.

The state names no rank: the ranks of a distributed job deliver batches in lockstep, so one
rank's state resumes every rank. It does record the world size of a sampler that splits the
epoch between processes (``num_replicas``): a position in a rank's share means other samples
under another world size, so such a state is refused rather than resumed silently wrong.

Resuming does not make the batches before the resume point again. A map-style epoch is planned
from the saved batch on (this package's samplers compute nothing before it beyond finding the
position; another sampler is iterated, indices only); no sample before it is read. A stream
(``IterableDataset``) can only be read from its start, so each stream is restarted and read past
the batches it had delivered, without collating or transforming them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinytorch.data.validate import check_int

__all__ = ["FORMAT", "VERSION", "Resume", "check_state", "loader_state"]

FORMAT = "tinytorch.DataLoader"
VERSION = 1


@dataclass(frozen=True)
class Resume:
    """Where the next ``iter(loader)`` starts: a checked saved state.

    Attributes:
        epoch: the epoch to run.
        start: batches of it already delivered.
        streams: per-worker stream positions (an iterable dataset read by workers), else ``None``.
        sampler_state: the user's sampler's ``state_dict()`` at the start of the epoch, or ``None``.
        sampler_passes: how many times the saved run had started iterating the user's sampler
            before this epoch, for a sampler whose order may depend on it (see
            :func:`~tinytorch.data.loader.user_sampler.order_follows_epoch`), else ``None``.
    """

    epoch: int
    start: int
    streams: dict[str, Any] | None = None
    sampler_state: Any = None
    sampler_passes: int | None = None


def loader_state(
    *,
    seed: int,
    epoch: int,
    delivered: int,
    iterable: bool,
    dataset_length: int | None,
    batch_size: int | None,
    drop_last: bool,
    num_workers: int,
    streams: dict[str, Any] | None,
    sampler_state: Any,
    num_replicas: int | None = None,
    sampler_seed: int | None = None,
    sampler_passes: int | None = None,
    sampler_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The state ``DataLoader.state_dict()`` returns (see the module docstring)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "seed": seed,
        "epoch": epoch,
        "batches_delivered": delivered,
        "dataset": "iterable" if iterable else "map-style",
        "dataset_length": dataset_length,
        "batch_size": batch_size,
        "drop_last": drop_last,
        "num_workers": num_workers,
        "num_replicas": num_replicas,
        "sampler_seed": sampler_seed,
        "sampler_passes": sampler_passes,
        "sampler_settings": sampler_settings,
        "streams": streams,
        "sampler": sampler_state,
    }


def check_state(state: object, expected: dict[str, Any]) -> Resume:
    """The resume point of ``state``, after checking it describes a run of this loader.

    Args:
        state: what ``DataLoader.state_dict()`` returned (possibly through JSON).
        expected: :func:`loader_state` of this loader (the fields that must agree).

    Raises:
        TypeError: ``state`` is not a dict.
        ValueError: another format or version, or a field that differs from this loader's
            (seed, dataset length, batch size, drop_last, kind of dataset, the sampler's world
            size, the seed of a sampler you passed; for a stream read by workers, the number of
            workers), naming the field, both values and the fix.
    """
    if not isinstance(state, dict):
        raise TypeError(f"load_state_dict() takes the dict state_dict() returned, got {type(state).__name__}")
    if state.get("format") != FORMAT:
        raise ValueError(
            f"load_state_dict(): this is not a DataLoader state (format {state.get('format')!r}, "
            f"expected {FORMAT!r}); pass what DataLoader.state_dict() returned"
        )
    if state.get("version") != VERSION:
        raise ValueError(
            f"load_state_dict(): state version {state.get('version')!r}, this tinytorch reads version "
            f"{VERSION}; resume with the tinytorch version that saved it"
        )
    fields = ["seed", "dataset", "dataset_length", "batch_size", "drop_last", "num_replicas"]
    # Absent from states saved before they were recorded: not checked.
    fields += [field for field in ("sampler_seed", "sampler_settings") if field in state]
    if expected["dataset"] == "iterable" and (state.get("streams") or expected["num_workers"]):
        fields.append("num_workers")  # a stream is split by worker: the split must be the same
    for field in fields:
        if state.get(field) != expected[field]:
            why = {
                "seed": "every order and augmentation derives from it; build the loader with seed="
                f"{state.get('seed')!r}",
                "sampler_settings": "your sampler's settings decide which samples come in which order; "
                "build it with the saved ones",
                "sampler_seed": "your sampler's order derives from its own seed, not the loader's; "
                f"build the sampler with seed={state.get(field)!r} (torch's: a generator seeded with it)",
                "num_workers": "an IterableDataset's stream is split between workers, so another "
                f"number of workers reads other samples; resume with num_workers={state.get(field)!r}",
                "num_replicas": "the sampler splits each epoch between the processes of the job, so the "
                "saved position means other samples under another world size; restart with "
                f"{state.get(field)!r} processes, or start the saved epoch over "
                "(loader.set_epoch(state['epoch']) instead of load_state_dict)",
            }.get(
                field, "the saved position means other batches in this loader; resume with the same settings"
            )
            raise ValueError(
                f"load_state_dict(): the state was saved by a loader with {field}={state.get(field)!r}, "
                f"this loader has {field}={expected[field]!r}: {why}"
            )
    epoch = check_int(state.get("epoch"), "state['epoch']")
    start = check_int(state.get("batches_delivered"), "state['batches_delivered']")
    streams = state.get("streams")
    if streams is not None:
        _check_streams(streams, expected["num_workers"])
    passes = state.get("sampler_passes")
    passes = None if passes is None else check_int(passes, "state['sampler_passes']")
    return Resume(epoch, start, streams, state.get("sampler"), passes)


def _check_streams(streams: Any, num_workers: int) -> None:
    try:
        positions = [check_int(p, "position") for p in streams["positions"]]
        ended = [check_int(w, "worker") for w in streams["ended"]]
        turn = check_int(streams["turn"], "turn")
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"load_state_dict(): state['streams'] is damaged ({e}); pass what state_dict() returned"
        ) from e
    if len(positions) != num_workers or any(w >= num_workers for w in [*ended, turn]):
        raise ValueError(
            f"load_state_dict(): state['streams'] describes {len(positions)} workers, this loader has "
            f"{num_workers}; resume with num_workers={len(positions)}"
        )
