"""Worker processes: start them, send jobs, collect results, notice deaths, stop them.

The concerns live apart: how a worker process starts and what it sets up
(:mod:`~tinytorch.data.workers.startup`), how jobs and batches cross the pipe
(:mod:`~tinytorch.data.workers.channel`, :mod:`~tinytorch.data.workers.transport`), and what a
worker's death means (:mod:`~tinytorch.data.workers.diagnosis`). :class:`ProcessPool` only
orchestrates them.

The loader waits on every pipe *and* every process sentinel at once, so a worker killed by a
signal is noticed immediately, never waited for. Workers ignore SIGINT (Ctrl-C stops the loader,
which stops them), exit when the loader's end of the pipe closes, and exit by themselves when
the loading process is gone (see ``startup.prepare_worker_process``): they never outlive it.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import multiprocessing as mp
import os
import pickle
import selectors
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.workers.channel import WorkerChannel, encode_job, receive
from tinytorch.data.workers.diagnosis import death_error, mapped_file_problem
from tinytorch.data.workers.errors import WorkerStartError
from tinytorch.data.workers.loop import PoolSpec, worker_loop
from tinytorch.data.workers.messages import Done, Job, Reply, Started
from tinytorch.data.workers.startup import (
    announce_start,
    c_library,
    current_cpu,
    limit_thread_pools,
    openmp_runtimes,
    pin_to_cpu,
    prepare_worker_process,
    unpin,
)
from tinytorch.data.workers.transport import BlockReader, Packed

__all__ = ["ProcessPool", "check_picklable"]

GRACE_SECONDS = 0.5
"""How long a stop waits for workers to finish their current batch before terminating them."""


def check_picklable(objects: dict[str, Any], method: str) -> None:
    """Raise ``TypeError`` naming the first object a ``method`` start cannot send to workers."""
    for name, obj in objects.items():
        if obj is None:
            continue
        try:
            pickle.dumps(obj)
        except Exception as e:
            raise TypeError(
                f"the {name} ({type(obj).__name__}) cannot be sent to '{method}' worker processes: "
                f"pickling it failed with {type(e).__name__}: {e}. Make it picklable (define it at "
                "module level; open files or connections lazily inside __getitem__), use "
                "multiprocessing_context='fork', or worker_type='thread'"
            ) from e


def _process_main(
    conn: Connection,
    worker_id: int,
    spec: PoolSpec | None,
    announce: bool = False,
    loader_ends: tuple[Connection, ...] = (),
    openmp: Any = None,
    import_torch: bool = False,
) -> None:
    """A worker process's whole life. ``spec`` is ``None`` when it arrives through ``conn``.

    ``import_torch``: the loading process uses torch, so this (spawned) worker imports it before
    its first batch: its global generator is then seeded for every batch, the first included
    (a dataset importing torch inside ``__getitem__`` would otherwise draw its first numbers
    from torch's default seed).
    """
    prepare_worker_process(loader_ends, openmp)
    try:
        if spec is None:  # spawn / forkserver: see ProcessPool.start
            if import_torch:
                import torch  # noqa: F401
            spec = pickle.loads(conn.recv_bytes())
            limit_thread_pools()  # torch may have come with the spec
    except (EOFError, OSError):
        return  # the loader stopped before this worker was up
    if not announce_start(conn, announce):
        return
    channel = WorkerChannel(conn, worker_id)
    try:
        worker_loop(channel, lambda: spec, worker_id, "process", seed_globals=True)
    finally:
        channel.close()


@dataclass
class _Handles:
    """What must be stopped: processes and pipes, without the spec (see ``Pool.stopper``)."""

    selector: selectors.BaseSelector
    reader: BlockReader = field(default_factory=BlockReader)
    conns: list[Connection] = field(default_factory=list)
    procs: list[Any] = field(default_factory=list)
    stopping: bool = False
    stopped_at: float = 0.0

    def shutdown(self, wait: bool = True) -> None:
        """Ask every worker to stop, close the loader's side; with ``wait``, collect the workers."""
        if not self.stopping:
            self.stopping = True
            stop = encode_job(None)
            for conn in self.conns:
                with contextlib.suppress(OSError, ValueError):
                    conn.send_bytes(stop)
            self.selector.close()
            for conn in self.conns:
                conn.close()  # a worker still busy gets EOF (or a broken pipe) and exits
            self.reader.close()  # batches still viewed by the consumer stay valid
            self.stopped_at = time.monotonic()
        if wait:
            self.reap(block=True)

    def reap(self, *, block: bool) -> bool:
        if block:
            deadline = self.stopped_at + GRACE_SECONDS
            for proc in self.procs:
                proc.join(timeout=max(0.0, deadline - time.monotonic()))
            for proc in self.procs:
                if proc.is_alive():
                    proc.terminate()  # a worker still busy with a batch nobody will read
            for proc in self.procs:
                proc.join(timeout=1.0)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
        else:
            overdue = time.monotonic() - self.stopped_at > GRACE_SECONDS
            for proc in self.procs:
                if overdue and proc.is_alive():
                    proc.kill()
                proc.join(timeout=0)
        self.procs = [proc for proc in self.procs if proc.exitcode is None]
        return not self.procs


class ProcessPool:
    """``spec.num_workers`` processes making the batches they are sent (implements ``Pool``)."""

    kind = "process"

    def __init__(self, spec: PoolSpec, *, context: Any = None) -> None:
        self.spec = spec
        self.num_workers = spec.num_workers
        self._context: Any = mp.get_context(context) if isinstance(context, (str, type(None))) else context
        # Every pipe and every process sentinel, registered once: building a selector per wait
        # cost ~50 us of the loading process's time per batch.
        self._handles = _Handles(selectors.DefaultSelector())
        self._unstarted: list[int] = []  # workers start() left to the first wait()
        self._held: dict[int, list[bytes]] = {}  # their jobs, sent once each has started
        self._pinned: dict[int, set[int] | None] = {}  # their affinities while pinned
        self._making: list[collections.deque[tuple[int, int]]] = [
            collections.deque() for _ in range(self.num_workers)
        ]  # (epoch, batch) sent to each worker and not answered: what a dead worker was making
        self._spec_bytes: bytes | None = None

    @property
    def method(self) -> str:
        """The start method: ``"fork"``, ``"spawn"`` or ``"forkserver"``."""
        return str(self._context.get_start_method())

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._handles.procs]

    def stopper(self) -> Callable[[], None]:
        return self._handles.shutdown

    def start(self) -> None:
        """Check that the workers can be started and start them (staggered under ``fork``).

        Under ``fork`` only worker 0 is forked here, so the loader's first jobs reach it at once;
        the others are forked at the first :meth:`wait`, while worker 0 works (see
        :mod:`~tinytorch.data.workers.startup`; time to first batch in docs/benchmarks.md).
        Under ``spawn`` and ``forkserver`` every worker starts here (theirs is a slow start that
        runs in parallel) and gets the pickled spec through its own pipe, never through
        ``Process`` arguments: a child that dies while those are written (the usual case: a
        script without an ``if __name__ == '__main__':`` guard) would leave the parent blocked
        forever in CPython's write of a pickle over 64 KiB.

        Raises:
            WorkerStartError: called inside a worker process (they cannot have children).
            TypeError: under spawn/forkserver, something the workers need cannot be pickled.
        """
        if mp.current_process().daemon:
            raise WorkerStartError(
                f"process workers cannot be started inside a DataLoader process worker (pid {os.getpid()}): "
                "worker processes cannot have children. A loader used inside a dataset or a worker "
                "must use num_workers=0 or worker_type='thread'"
            )
        if self.method != "fork":
            self._spec_bytes = self._pickled_spec()
            self._held = {worker_id: [] for worker_id in range(self.num_workers)}
            self._fork(range(self.num_workers), staggered=False)
            return
        self._unstarted = list(range(1, self.num_workers))
        self._held = {worker_id: [] for worker_id in self._unstarted}
        self._fork([0], staggered=False)

    def _pickled_spec(self) -> bytes:
        try:
            return pickle.dumps(self.spec, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            check_picklable(
                {
                    "dataset": self.spec.dataset,
                    "fetcher (collate_fn, batch_transform)": self.spec.make_batch,
                    "worker_init_fn": self.spec.worker_init_fn,
                },
                self.method,
            )
            raise

    def _fork(self, worker_ids: Iterable[int], *, staggered: bool) -> None:
        forked = self.method == "fork"
        handles = self._handles
        openmp = openmp_runtimes() if forked else None
        if forked:
            c_library()  # resolved here once, inherited by every forked worker
        if forked:
            gc.freeze()  # keep the children's garbage collector off the parent's objects' pages
        try:
            for worker_id in worker_ids:
                parent, child = self._context.Pipe(duplex=True)
                inherited = (*handles.conns, parent) if forked else ()  # closed in the worker
                # Spawned workers announce themselves once they have their spec: their jobs wait
                # until then, so they never mix with the spec on the pipe.
                announce = staggered or not forked
                spec = self.spec if forked else None
                proc = self._context.Process(
                    target=_process_main,
                    args=(child, worker_id, spec, announce, inherited, openmp, "torch" in sys.modules),
                    name=f"tinytorch-worker-{worker_id}",
                    daemon=True,
                )
                proc.start()
                if staggered:  # see start(): off worker 0's CPU until it has announced itself
                    self._pinned[worker_id] = pin_to_cpu(proc.pid, current_cpu())
                child.close()
                handles.conns.append(parent)
                handles.procs.append(proc)
                handles.selector.register(parent, selectors.EVENT_READ, worker_id)
                handles.selector.register(proc.sentinel, selectors.EVENT_READ, worker_id)
                if self._spec_bytes is not None:
                    _send_in_background(parent, self._spec_bytes, worker_id)
        except BaseException:
            self.shutdown()
            raise
        finally:
            if forked:
                gc.unfreeze()

    def send(self, worker_id: int, generation: int, task: BatchTask) -> None:
        released = tuple(self._handles.reader.take_released(worker_id))
        job = encode_job(Job(generation, task, released))
        self._making[worker_id].append((task.epoch, task.index))
        held = self._held.get(worker_id)
        if held is not None:
            held.append(job)  # a worker not started yet (see start)
        else:
            self._send_bytes(worker_id, job)

    def _send_bytes(self, worker_id: int, data: bytes) -> None:
        # A worker that is gone: the next wait() reports its last message or its death.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._handles.conns[worker_id].send_bytes(data)

    def wait(self, timeout: float | None) -> list[tuple[int, Reply]]:
        """Messages that arrived within ``timeout`` seconds (possibly none).

        Raises:
            WorkerDiedError: a worker process exited without being asked to.
        """
        if self._unstarted:
            unstarted, self._unstarted = self._unstarted, []
            self._fork(unstarted, staggered=True)
        handles = self._handles
        ready = {key.fileobj for key, _ in handles.selector.select(timeout)}
        messages: list[tuple[int, Reply]] = []
        # One message per ready worker: more waiting ones make the next select() return at
        # once (it is level-triggered), which costs less than asking after every message.
        for worker_id, conn in enumerate(handles.conns):
            if conn not in ready:
                continue
            try:
                message = receive(conn, handles.reader, worker_id)
            except (EOFError, OSError):
                continue  # gone: its sentinel and _check_alive tell how
            if isinstance(message, Started):
                unpin(message.pid, self._pinned.pop(worker_id, None))
                for job in self._held.pop(worker_id, []):
                    self._send_bytes(worker_id, job)
                continue
            making = self._making[worker_id]
            if making and message.index >= 0:
                making.popleft()
            messages.append((worker_id, message))
        if not messages:  # a worker's last words (e.g. a failed worker_init_fn) come first
            messages = self._last_words()
        if not messages:
            self._check_alive()
        return messages

    def _last_words(self) -> list[tuple[int, Reply]]:
        """What exited workers sent before they went (read before their death is reported)."""
        words: list[tuple[int, Reply]] = []
        handles = self._handles
        for worker_id, proc in enumerate(handles.procs):
            if proc.exitcode is None or worker_id >= len(handles.conns):
                continue
            conn = handles.conns[worker_id]
            try:
                while conn.poll(0):
                    message = receive(conn, handles.reader, worker_id)
                    if not isinstance(message, Started):
                        words.append((worker_id, message))
            except (EOFError, OSError):
                pass
        return words

    def _check_alive(self) -> None:
        if self._handles.stopping:
            return
        for worker_id, proc in enumerate(self._handles.procs):
            code = proc.exitcode
            if code is None:
                continue
            making = self._making[worker_id]
            raise death_error(
                worker_id,
                proc.pid,
                code,
                start_method=self.method,
                batch=making[0] if making else None,
                file_problem=mapped_file_problem(self.spec.dataset) if code == -signal.SIGBUS else None,
            )

    def decode(self, worker_id: int, message: Done) -> Any:
        payload = message.payload
        return self._handles.reader.read(worker_id, payload) if isinstance(payload, Packed) else payload

    def discard(self, worker_id: int, message: Done) -> None:
        if isinstance(message.payload, Packed):
            self._handles.reader.discard(worker_id, message.payload)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop every worker (asking first, then terminating, then killing) and close pipes.

        With ``wait=False`` the workers are asked to stop and the loader's side is closed at
        once, but their exit is not awaited: :meth:`reap` collects them later. A per-epoch
        pool whose epoch ran to its end (its workers idle) is stopped so, and the next epoch
        does not wait on the workers' teardown (milliseconds with torch imported); unmapping the
        blocks before they exit also leaves freeing the memory to them.
        """
        self._unstarted, self._held, self._pinned = [], {}, {}
        self._handles.shutdown(wait)

    def reap(self, *, block: bool) -> bool:
        """Collect the workers that have exited since :meth:`shutdown`; ``True`` once none is left.

        ``block``: wait for each (a grace period, then terminate, then kill). Otherwise only those
        already gone are collected, and one still running after the grace period is killed (a
        worker of a finished epoch has nothing left to do).
        """
        return self._handles.reap(block=block)


def _send_in_background(conn: Connection, data: bytes, worker_id: int) -> None:
    """Send a spawned worker its spec from a short-lived thread: the loader keeps watching the
    worker's sentinel meanwhile, so a worker that dies before reading is reported, not waited for."""

    def send() -> None:
        with contextlib.suppress(OSError, ValueError):  # the worker died, or the pool stopped
            conn.send_bytes(data)

    threading.Thread(target=send, name=f"tinytorch-spec-{worker_id}", daemon=True).start()
