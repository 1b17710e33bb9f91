"""Worker processes: one duplex pipe each, batches through shared memory, supervision.

Each worker has its own socket pair: jobs go down, results (small messages; the arrays stay in
shared memory) come up. The loader waits on every pipe *and* every process sentinel at once,
so a worker killed by a signal is noticed immediately, never waited for. Workers ignore SIGINT
(Ctrl-C stops the loader, which stops them) and exit on their own when the loader's end of
the pipe closes, so they cannot outlive it: a forked worker first closes the loader's pipe ends
it inherited, so this holds even when the loading process is killed outright. Under ``fork``,
worker 0 starts first and the others while it works (see :meth:`ProcessPool.start`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import multiprocessing as mp
import os
import pickle
import selectors
import signal
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle, send_handle
from typing import Any

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import StageTimes
from tinytorch.data.memory import allocating_in
from tinytorch.data.workers.errors import WorkerDiedError
from tinytorch.data.workers.info import WorkerInfo
from tinytorch.data.workers.loop import PoolSpec, worker_loop
from tinytorch.data.workers.messages import Done, Failed, Job, Started
from tinytorch.data.workers.transport import BlockReader, BlockWriter, Packed

__all__ = ["ProcessPool", "check_picklable"]


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


class _ProcessChannel:
    """The worker's end: jobs in, results out, shared-memory blocks' descriptors passed once."""

    def __init__(self, conn: Connection, worker_id: int) -> None:
        self.conn = conn
        self.writer = BlockWriter(worker_id)
        self._pending_fd: int | None = None

    def receive(self) -> Job | None:
        job: Job | None = pickle.loads(self.conn.recv_bytes())  # see ProcessPool.send
        if job is not None:
            self.writer.release(list(job.released))
        return job

    def package(self, job: Job, batch: Any, times: StageTimes) -> Done:
        start = time.perf_counter()
        packed, fd = self.writer.write(batch)
        self._pending_fd = fd
        times = times.with_transport(time.perf_counter() - start)
        return Done(job.generation, job.task.index, packed, times)

    def send(self, message: Done | Failed) -> None:
        fd, self._pending_fd = self._pending_fd, None
        try:
            self.conn.send(message)
        except Exception:
            if isinstance(message, Done) and isinstance(message.payload, Packed):
                block = message.payload.block
                if block is not None:
                    self.writer.release([block])
            if fd is not None:
                os.close(fd)
            raise
        if fd is not None:
            send_handle(self.conn, fd, os.getppid())
            os.close(fd)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_memory() -> None:
    """Ask the C allocator (glibc) of this worker process to keep freed memory for reuse.

    By default glibc returns memory to the system when more than about twice the largest
    recently freed block sits unused at the top of the heap; a worker freeing a batch's
    temporaries every batch then faults the same pages in again for the next (measured: ~180
    page faults per CIFAR batch, 310k instead of 400k images/s with two workers). Keeping up
    to 128 MB is the worker's steady state, not growth. A worker process's global state belongs
    to the loader, as its global RNGs do; elsewhere (musl, macOS) this does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library is loaded already; no search
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 128 << 20)


def current_cpu() -> int | None:
    """The CPU this thread runs on (glibc's ``sched_getcpu``), ``None`` where unknown."""
    try:
        cpu = int(ctypes.CDLL(None).sched_getcpu())
    except (OSError, AttributeError):
        return None
    return cpu if cpu >= 0 else None


def pin_to_cpu(pid: int, cpu: int | None) -> set[int] | None:
    """Restrict process ``pid`` to ``cpu``, moving it there now; return its previous affinity.

    Returns ``None`` (and does nothing) where affinities are not supported, ``cpu`` is unknown
    or not allowed to the process, or the process is gone.
    """
    if cpu is None:
        return None
    try:
        allowed = os.sched_getaffinity(pid)
        if cpu not in allowed:
            return None
        os.sched_setaffinity(pid, {cpu})
    except (OSError, AttributeError):
        return None
    return allowed


def unpin(pid: int, allowed: set[int] | None) -> None:
    """Give process ``pid`` back the affinity :func:`pin_to_cpu` returned (``None``: nothing)."""
    if allowed is not None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(pid, allowed)


def announce_start(conn: Connection, announce: bool) -> None:
    """A worker started after worker 0 tells the loader it is running (see ProcessPool.start)."""
    if announce:
        conn.send(Started(os.getpid()))


def _process_main(
    conn: Connection,
    make_batch: Callable[[BatchTask], tuple[Any, StageTimes]],
    info: WorkerInfo,
    worker_init_fn: Callable[[int], None] | None,
    announce: bool = False,
    loader_ends: tuple[Connection, ...] = (),
) -> None:
    # A forked worker inherits the loader's ends of its own pipe and of earlier workers'. Held
    # here, they would keep this worker's pipe open if the loading process died without
    # closing it (SIGKILL, the OOM killer), and the worker would wait for jobs forever.
    for end in loader_ends:
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    announce_start(conn, announce)
    keep_freed_memory()
    channel = _ProcessChannel(conn, info.id)
    info = dataclasses.replace(info, pid=os.getpid())

    def make_in_shared_memory(task: BatchTask) -> tuple[Any, StageTimes]:
        channel.writer.begin()
        with allocating_in(channel.writer):  # large arrays are made where they will travel
            return make_batch(task)

    try:
        worker_loop(channel, make_in_shared_memory, channel.package, info, worker_init_fn, seed_globals=True)
    finally:
        channel.writer.close()
        conn.close()


class ProcessPool:
    """``num_workers`` processes running ``make_batch`` on the jobs they are sent."""

    kind = "process"
    grace_seconds = 0.5
    """How long shutdown waits for workers to finish their current batch before terminating."""

    def __init__(self, spec: PoolSpec, *, context: Any) -> None:
        self.spec = spec
        self.num_workers = spec.num_workers
        self._context: Any = mp.get_context(context) if isinstance(context, (str, type(None))) else context
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._reader = BlockReader()
        self._stopping = False
        self._stopped_at = 0.0
        # Every pipe and every process sentinel, registered once: building a selector per wait
        # cost ~50 us of the loading process's time per batch.
        self._selector = selectors.DefaultSelector()
        self._unstarted: list[int] = []  # workers start() left to the first wait()
        self._held: dict[int, list[bytes]] = {}  # their jobs, sent once each has started
        self._pinned: dict[int, set[int] | None] = {}  # their affinities while pinned

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def start(self) -> None:
        """Check that the workers can be started and start them; see below for ``fork``.

        With the ``fork`` start method, starting is staggered: forking a large process takes
        milliseconds (~4 ms with torch imported), and the second fork used to delay worker
        0's first batch. Now only worker 0 is forked here, so the loader's first jobs reach
        it at once; the others are forked at the first :meth:`wait`, while worker 0 works.
        Each of them is pinned, right after its fork, to the CPU of the loading process (which
        is about to wait), because the kernel, seeing every CPU busy at the fork, often puts it
        on worker 0's and halves both. Once running it announces itself (:class:`Started`);
        then it is unpinned and gets its jobs, whose arrival wakes it onto an idle CPU. A
        worker that dies or hangs before announcing is reported as any other (death, or
        ``timeout``). Time to first batch with two workers, 80 interleaved starts: 28.1 ->
        22.0 ms (torch: 40.6 ms; docs/benchmarks.md). Other start methods start every worker
        here: their workers take long to start (importing, unpickling the dataset) and do so
        in parallel.
        """
        method = self._context.get_start_method()
        if method != "fork":
            check_picklable(
                {
                    "dataset": self.spec.dataset,
                    "fetcher (collate_fn, batch_transform)": self.spec.make_batch,
                    "worker_init_fn": self.spec.worker_init_fn,
                },
                method,
            )
            self._fork(range(self.num_workers), staggered=False)
            return
        self._unstarted = list(range(1, self.num_workers))
        self._held = {worker_id: [] for worker_id in self._unstarted}
        self._fork([0], staggered=False)

    def _fork(self, worker_ids: Iterable[int], *, staggered: bool) -> None:
        forked = self._context.get_start_method() == "fork"
        if forked:
            gc.freeze()  # keep the children's garbage collector off the parent's objects' pages
        try:
            for worker_id in worker_ids:
                parent, child = self._context.Pipe(duplex=True)
                info = self.spec.info(worker_id, "process", 0)
                inherited = (*self._conns, parent) if forked else ()  # closed in the worker
                proc = self._context.Process(
                    target=_process_main,
                    args=(child, self.spec.make_batch, info, self.spec.worker_init_fn, staggered, inherited),
                    name=f"tinytorch-worker-{worker_id}",
                    daemon=True,
                )
                proc.start()
                if staggered:  # see start(): off worker 0's CPU until it has announced itself
                    self._pinned[worker_id] = pin_to_cpu(proc.pid, current_cpu())
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
                self._selector.register(parent, selectors.EVENT_READ, worker_id)
                self._selector.register(proc.sentinel, selectors.EVENT_READ, worker_id)
        except BaseException:
            self.shutdown()
            raise
        finally:
            if forked:
                gc.unfreeze()

    def send(self, worker_id: int, generation: int, task: BatchTask) -> None:
        released = tuple(self._reader.take_released(worker_id))
        # Jobs hold only ints and index arrays: plain pickle, without the reducer machinery of
        # Connection.send (which workers still use for batches).
        job = pickle.dumps(Job(generation, task, released), protocol=5)
        held = self._held.get(worker_id)
        if held is not None:
            held.append(job)  # a worker not started yet (see start)
        else:
            self._send_bytes(worker_id, job)

    def _send_bytes(self, worker_id: int, data: bytes) -> None:
        # A worker that is gone: the next wait() reports its last message or its death.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._conns[worker_id].send_bytes(data)

    def wait(self, timeout: float | None) -> list[tuple[int, Done | Failed]]:
        """Messages that arrived within ``timeout`` seconds (possibly none).

        Raises:
            WorkerDiedError: a worker process exited without being asked to.
        """
        if self._unstarted:
            unstarted, self._unstarted = self._unstarted, []
            self._fork(unstarted, staggered=True)
        ready = {key.fileobj for key, _ in self._selector.select(timeout)}
        messages: list[tuple[int, Done | Failed]] = []
        # One message per ready worker: more waiting ones make the next select() return at
        # once (it is level-triggered), which costs less than asking after every message.
        for worker_id, conn in enumerate(self._conns):
            if conn not in ready:
                continue
            try:
                message = conn.recv()
            except (EOFError, OSError):
                continue  # gone: its sentinel and _check_alive tell how
            if isinstance(message, Started):
                unpin(message.pid, self._pinned.pop(worker_id, None))
                for job in self._held.pop(worker_id, []):
                    self._send_bytes(worker_id, job)
                continue
            if isinstance(message, Done) and isinstance(message.payload, Packed):
                packed = message.payload
                if packed.new_block_size is not None and packed.block is not None:
                    fd = recv_handle(conn)
                    self._reader.attach(worker_id, packed.block, fd, packed.new_block_size)
            messages.append((worker_id, message))
        if not messages:  # a worker's last words (e.g. a failed worker_init_fn) come first
            self._check_alive()
        return messages

    def _check_alive(self) -> None:
        for worker_id, proc in enumerate(self._procs):
            code = proc.exitcode
            if code is None or self._stopping:
                continue
            if code < 0:
                name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
                cause = f"was killed by signal {name} ({-code})"
                hint = (
                    " SIGKILL usually comes from the out-of-memory killer: lower batch_size, "
                    "prefetch_factor or num_workers, or use worker_type='thread'"
                    if -code == signal.SIGKILL
                    else ""
                )
            else:
                cause, hint = f"exited with code {code}", " Its traceback, if it printed one, is above."
                method = self._context.get_start_method()
                if method != "fork":
                    hint += (
                        f" With the '{method}' start method a worker imports the main module again: "
                        "a script that builds or iterates the loader at import time must do so under "
                        "`if __name__ == '__main__':`"
                    )
            raise WorkerDiedError(
                f"DataLoader process worker {worker_id} (pid {proc.pid}) {cause} unexpectedly.{hint}"
            )

    def decode(self, worker_id: int, message: Done) -> Any:
        payload = message.payload
        return self._reader.read(worker_id, payload) if isinstance(payload, Packed) else payload

    def discard(self, worker_id: int, message: Done) -> None:
        if isinstance(message.payload, Packed):
            self._reader.discard(worker_id, message.payload)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop every worker (asking first, then terminating, then killing) and close pipes.

        With ``wait=False`` the workers are asked to stop and the loader's side is closed at
        once, but their exit is not awaited: :meth:`reap` collects them later. A per-epoch
        pool whose epoch ran to its end (its workers idle) is stopped so, and the next epoch
        does not wait on the workers' teardown (~8 ms with torch imported); unmapping the
        blocks before they exit also leaves freeing the memory to them (~3 ms).
        """
        self._stopping = True
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send_bytes(pickle.dumps(None))
        self._selector.close()
        for conn in self._conns:
            conn.close()  # a worker still busy gets EOF (or a broken pipe) and exits
        self._conns.clear()
        self._unstarted, self._held, self._pinned = [], {}, {}
        self._reader.close()  # batches still viewed by the consumer stay valid
        self._stopped_at = time.monotonic()
        if wait:
            self.reap(block=True)

    def reap(self, *, block: bool) -> bool:
        """Collect the workers that have exited since :meth:`shutdown`; ``True`` once none is left.

        ``block``: wait for each (``grace_seconds``, then terminate, then kill). Otherwise only
        those already gone are collected, and one still running ``grace_seconds`` after the
        shutdown is killed (a worker of a finished epoch has nothing left to do).
        """
        if block:
            deadline = self._stopped_at + self.grace_seconds
            for proc in self._procs:
                proc.join(timeout=max(0.0, deadline - time.monotonic()))
            for proc in self._procs:
                if proc.is_alive():
                    proc.terminate()  # a worker still busy with a batch nobody will read
            for proc in self._procs:
                proc.join(timeout=1.0)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
        else:
            overdue = time.monotonic() - self._stopped_at > self.grace_seconds
            for proc in self._procs:
                if overdue and proc.is_alive():
                    proc.kill()
                proc.join(timeout=0)
        self._procs = [proc for proc in self._procs if proc.exitcode is None]
        return not self._procs
