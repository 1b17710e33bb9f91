"""Where a batch's making time went, measured by whoever made it (worker or loader)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Made", "StageTimes"]


@dataclass(frozen=True)
class StageTimes:
    """Seconds spent on one batch in each stage (``read`` excludes per-sample transforms).

    ``private_bytes``: the memory private to the process worker that made the batch, as it last
    measured it (about once a second, after sending a batch), else 0. ``skipped``: the samples the
    dataset left out of the batch (``BatchContext.skipped``, e.g. ``on_error="skip"``).
    """

    read: float = 0.0
    sample_transform: float = 0.0
    collate: float = 0.0
    batch_transform: float = 0.0
    transport: float = 0.0
    private_bytes: int = 0
    skipped: int = 0

    def with_transport(self, seconds: float, private_bytes: int = 0) -> StageTimes:
        return StageTimes(
            self.read,
            self.sample_transform,
            self.collate,
            self.batch_transform,
            self.transport + seconds,
            private_bytes or self.private_bytes,
            self.skipped,
        )


@dataclass(frozen=True)
class Made:
    """A finished batch as handed to the loader: the batch, its stage times, who made it.

    ``worker`` is the worker id, or ``None`` for the loading process itself.
    """

    batch: Any
    times: StageTimes
    worker: int | None = None
