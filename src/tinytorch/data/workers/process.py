"""Worker processes: one duplex pipe each, batches through shared memory, supervision.

Each worker has its own socket pair: jobs go down, results (small messages; the arrays stay in
shared memory) come up. The loader waits on every pipe *and* every process sentinel at once,
so a worker killed by a signal is noticed immediately, never waited for. Workers ignore SIGINT
(Ctrl-C stops the loader, which stops them) and exit on their own when the loader's end of
the pipe closes, so they cannot outlive it.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import multiprocessing as mp
import os
import pickle
import select
import selectors
import signal
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for
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


def move_to_cpu(cpu: int) -> None:
    """Move this process to ``cpu`` now, leaving it free to run anywhere it could before.

    Setting the affinity to one CPU migrates the process at once; restoring the previous
    affinity does not move it back. Nothing happens where affinities are not supported or
    ``cpu`` is not allowed.
    """
    try:
        allowed = os.sched_getaffinity(0)
        if cpu in allowed:
            os.sched_setaffinity(0, {cpu})
            os.sched_setaffinity(0, allowed)
    except (OSError, AttributeError):
        pass


@dataclasses.dataclass(frozen=True)
class _LateStart:
    """A worker forked after worker 0 (see :meth:`ProcessPool.start`).

    Attributes:
        cpu: the loading process's CPU when it forked this worker, ``None`` if unknown.
    """

    cpu: int | None


def announce_start(conn: Connection, late: _LateStart | None) -> None:
    """A worker started late steps onto the loading process's CPU, then says it is running."""
    if late is None:
        return
    if late.cpu is not None and current_cpu() != late.cpu:
        move_to_cpu(late.cpu)
    conn.send(Started(os.getpid()))


def _process_main(
    conn: Connection,
    make_batch: Callable[[BatchTask], tuple[Any, StageTimes]],
    info: WorkerInfo,
    worker_init_fn: Callable[[int], None] | None,
    late: _LateStart | None = None,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    announce_start(conn, late)
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
    announce_seconds = 1.0
    """How long a staggered start waits for a new worker to announce itself."""

    def __init__(self, spec: PoolSpec, *, context: Any) -> None:
        self.spec = spec
        self.num_workers = spec.num_workers
        self._context: Any = mp.get_context(context) if isinstance(context, (str, type(None))) else context
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._reader = BlockReader()
        self._stopping = False
        # Every pipe and every process sentinel, registered once: building a selector per wait
        # cost ~50 us of the loading process's time per batch.
        self._selector = selectors.DefaultSelector()
        self._unstarted: list[int] = []  # workers start() left to the first wait()
        self._held: dict[int, list[bytes]] = {}  # their jobs, sent once each has started

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def start(self) -> None:
        """Check that the workers can be started and start them; see below for ``fork``.

        With the ``fork`` start method, starting is staggered: forking a large process takes
        milliseconds (~4 ms with torch imported), and the second fork used to delay worker
        0's first batch. Now only worker 0 is forked here, so the loader's first jobs reach
        it at once; the others are forked at the first :meth:`wait` while worker 0 works.
        Each later worker moves itself onto the loading process's CPU (about to be idle while
        it waits), because the kernel, seeing every CPU busy at the fork, may put it on
        worker 0's; it then announces itself and gets its jobs only after that, so it is
        woken by them onto an idle CPU rather than run where the fork left it. Time to first
        batch with two workers, medians of 100 interleaved starts: 30.0 -> 24.1 ms (torch:
        43.2 ms; docs/benchmarks.md). Other start methods start every worker here: their
        workers take long to start (importing, unpickling the dataset) and do so in parallel.
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

    def _start_the_rest(self) -> None:
        """Fork the workers :meth:`start` left, one at a time, and send each its held jobs."""
        unstarted, self._unstarted = self._unstarted, []
        for worker_id in unstarted:
            self._fork([worker_id], staggered=True)
            conn, proc = self._conns[worker_id], self._procs[worker_id]
            # Bounded: a worker that dies first, or is slow to start, only loses the placement
            # (its death is reported by the next wait(); a late Started is skipped there).
            if conn in wait_for([conn, proc.sentinel], timeout=self.announce_seconds):
                with contextlib.suppress(EOFError, OSError):
                    conn.recv()  # its Started message
            for job in self._held.pop(worker_id, []):
                self._send_bytes(worker_id, job)

    def _fork(self, worker_ids: Iterable[int], *, staggered: bool) -> None:
        frozen = self._context.get_start_method() == "fork"
        if frozen:
            gc.freeze()  # keep the children's garbage collector off the parent's objects' pages
        try:
            for worker_id in worker_ids:
                parent, child = self._context.Pipe(duplex=True)
                info = self.spec.info(worker_id, "process", 0)
                late = _LateStart(current_cpu()) if staggered else None
                proc = self._context.Process(
                    target=_process_main,
                    args=(child, self.spec.make_batch, info, self.spec.worker_init_fn, late),
                    name=f"tinytorch-worker-{worker_id}",
                    daemon=True,
                )
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
                self._selector.register(parent, selectors.EVENT_READ, worker_id)
                self._selector.register(proc.sentinel, selectors.EVENT_READ, worker_id)
        except BaseException:
            self.shutdown()
            raise
        finally:
            if frozen:
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
            self._start_the_rest()
        ready = {key.fileobj for key, _ in self._selector.select(timeout)}
        messages: list[tuple[int, Done | Failed]] = []
        for worker_id, conn in enumerate(self._conns):
            more = conn in ready
            while more:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break
                if isinstance(message, Done) and isinstance(message.payload, Packed):
                    packed = message.payload
                    if packed.new_block_size is not None and packed.block is not None:
                        fd = recv_handle(conn)
                        self._reader.attach(worker_id, packed.block, fd, packed.new_block_size)
                if not isinstance(message, Started):  # (one that announced itself late)
                    messages.append((worker_id, message))
                # conn.poll() would build a selector per call; one select() syscall suffices
                more = bool(select.select([conn], [], [], 0)[0])
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
                cause, hint = f"exited with code {code}", ""
            raise WorkerDiedError(
                f"DataLoader process worker {worker_id} (pid {proc.pid}) {cause} unexpectedly.{hint}"
            )

    def decode(self, worker_id: int, message: Done) -> Any:
        payload = message.payload
        return self._reader.read(worker_id, payload) if isinstance(payload, Packed) else payload

    def discard(self, worker_id: int, message: Done) -> None:
        if isinstance(message.payload, Packed):
            self._reader.discard(worker_id, message.payload)

    def shutdown(self) -> None:
        """Stop every worker (asking first, then terminating, then killing) and close pipes."""
        self._stopping = True
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send_bytes(pickle.dumps(None))
        deadline = time.monotonic() + self.grace_seconds
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
        self._selector.close()
        for conn in self._conns:
            conn.close()
        self._conns.clear()
        self._procs.clear()
        self._unstarted, self._held = [], {}
        self._reader.close()
