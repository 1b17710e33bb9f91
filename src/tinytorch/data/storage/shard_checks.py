"""Per-process bookkeeping shared by both shard readers: which shards are in use, which
passed their checksum, and the verification modes.
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.storage.shard_files import Identity, check_checksum
from tinytorch.data.storage.shards import Manifest

__all__ = ["VERIFY_MODES", "ChecksumRecord", "InUse", "Verifier", "resolve_verify"]

VERIFY_MODES = ("crc32", "sha256", "size")


def resolve_verify(value: object) -> str:
    """The verification mode named by ``ShardedDataset(verify=value)``.

    ``"crc32"``, ``"sha256"`` or ``"size"``; ``True`` means ``"sha256"`` and ``False`` means
    ``"size"`` (the meanings of the earlier boolean argument).

    Raises:
        TypeError, ValueError: anything else, naming the modes.
    """
    if isinstance(value, (bool, np.bool_)):
        return "sha256" if value else "size"
    if not isinstance(value, str):
        raise TypeError(f"verify must be one of {VERIFY_MODES}, got {type(value).__name__} {value!r}")
    if value not in VERIFY_MODES:
        raise ValueError(
            f"verify must be one of {VERIFY_MODES}, got {value!r}: 'crc32' (the default) checks "
            "each shard's CRC-32 before its first read, 'sha256' its SHA-256, 'size' only sizes "
            "and layout"
        )
    return value


class InUse:
    """The shards a reader has in use, at most ``limit`` (``None``: no limit).

    A shard enters when a read first needs it; beyond ``limit`` the one that entered earliest
    leaves (streaming windows move forward, so that is also the least recently needed). Pure
    bookkeeping: the reader maps, reads ahead and releases.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.entries = 0  # how many times a shard entered
        self._order: OrderedDict[int, None] = OrderedDict()

    def enter(self, shards: Iterable[int]) -> tuple[list[int], list[int]]:
        """Note that ``shards`` are needed now; returns ``(entered, left)``. A shard of
        ``shards`` may be in both when more than ``limit`` are needed at once."""
        entered, left = [], []
        for k in shards:
            if k in self._order:
                continue
            self._order[k] = None
            self.entries += 1
            entered.append(k)
            while self.limit is not None and len(self._order) > self.limit:
                left.append(self._order.popitem(last=False)[0])
        return entered, left

    def __contains__(self, k: object) -> bool:
        return k in self._order

    def shards(self) -> list[int]:
        """In use now, earliest entered first."""
        return list(self._order)


class ChecksumRecord:
    """Which shards' files passed their checksum, shared with every process forked afterwards.

    One row per shard in anonymous shared memory: (passed, device, inode, mtime). A row counts
    only for the same file (identity without size; sizes are checked at open), so a shard file
    replaced later is checked again. A pickled copy (spawned workers) starts from a snapshot and
    is no longer shared.
    """

    _MASK = (1 << 64) - 1

    def __init__(self, num_shards: int, rows: NDArray[np.uint64] | None = None) -> None:
        self._memory = mmap.mmap(-1, max(1, num_shards) * 32)  # MAP_SHARED: seen across fork
        self._rows: NDArray[np.uint64] = np.frombuffer(self._memory, dtype=np.uint64).reshape(-1, 4)
        if rows is not None:
            self._rows[:] = rows

    def _key(self, identity: Identity) -> tuple[int, int, int]:
        return (identity.device & self._MASK, identity.inode & self._MASK, identity.mtime_ns & self._MASK)

    def passed(self, k: int, identity: Identity) -> bool:
        row = self._rows[k].tolist()
        return row[0] == 1 and tuple(row[1:]) == self._key(identity)

    def record(self, k: int, identity: Identity) -> None:
        self._rows[k, 0] = 0
        self._rows[k, 1:] = self._key(identity)
        self._rows[k, 0] = 1  # written last: a reader never sees a flag with another file's key

    def __getstate__(self) -> dict[str, Any]:
        return {"rows": self._rows.copy()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(len(state["rows"]), state["rows"])  # type: ignore[misc]


# Locks that a thread of the parent may hold while it forks would stay locked in the child
# forever; every object here re-creates its locks in a forked child.
_FORK_SAFE: weakref.WeakSet[Any] = weakref.WeakSet()
_registered = False


def fork_safe(obj: Any) -> None:
    """Have ``obj.reset_locks()`` called in every child forked from now on."""
    global _registered
    if not _registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: [o.reset_locks() for o in list(_FORK_SAFE)])
        _registered = True
    _FORK_SAFE.add(obj)


class Verifier:
    """Checks each shard's checksum (mode ``"crc32"`` or ``"sha256"``) once before it is read.

    Threads needing unchecked shards split them (each checks those no other thread has taken,
    then waits for the rest); results are shared with forked processes (:class:`ChecksumRecord`),
    and processes start at different shards, so two process workers split the work too. Mode
    ``"size"`` checks nothing here.
    """

    def __init__(self, directory: Path, manifest: Manifest, mode: str) -> None:
        self.directory = directory
        self.manifest = manifest
        self.mode = mode
        self.record = ChecksumRecord(len(manifest.shards))
        self.reset_locks()
        fork_safe(self)

    def reset_locks(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._claimed: set[int] = set()

    def ensure(
        self,
        shards: list[int],
        descriptor: Callable[[int], AbstractContextManager[int]],
        identity_of: Callable[[int], Identity],
    ) -> None:
        """Return once every shard of ``shards`` passed its checksum.

        ``descriptor(k)`` gives an open descriptor of shard ``k``'s file (the file mapped), and
        ``identity_of(k)`` its identity when opened.

        Raises:
            CorruptShardError: a shard's checksum differs (raised in every thread that needs it).
        """
        if self.mode == "size":
            return
        while True:
            with self._lock:
                pending = [k for k in shards if not self.record.passed(k, identity_of(k))]
                if not pending:
                    return
                mine = [k for k in pending if k not in self._claimed]
                self._claimed.update(mine)
            if not mine:
                with self._done:
                    self._done.wait_for(lambda: not self._claimed.intersection(pending))  # noqa: B023
                continue
            turn = os.getpid() % len(mine)  # forked workers start at different shards
            try:
                for k in mine[turn:] + mine[:turn]:
                    identity = identity_of(k)
                    if not self.record.passed(k, identity):
                        info = self.manifest.shards[k]
                        with descriptor(k) as fd:
                            check_checksum(fd, self.directory / info.file, info, self.mode)
                        self.record.record(k, identity)
            finally:
                with self._done:
                    self._claimed.difference_update(mine)
                    self._done.notify_all()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_done", "_claimed"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.reset_locks()
        fork_safe(self)
