"""How a worker process starts: CPU placement at a staggered fork, the start handshake, and
what a worker process sets up for itself before its first job.

Staggered start (``fork``): only worker 0 is forked by ``ProcessPool.start``; the others are
forked at the loader's first wait, while worker 0 works. Each later worker is pinned to the
loading process's CPU right after its fork (:func:`pin_to_cpu`, from the parent) because the
kernel, seeing every CPU busy, often put it on worker 0's and halved both; once running it
announces itself (:func:`announce_start`, a :class:`~tinytorch.data.workers.messages.Started`
message) and the loader gives it back its affinity (:func:`unpin`) and its jobs.

A worker process belongs to the loader, so :func:`prepare_worker_process` may change its
global state: signals, the C allocator, thread pools, and a watch on its parent.
"""

from __future__ import annotations

import _thread
import contextlib
import ctypes
import functools
import os
import signal
import sys
import time
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any

from tinytorch.data.workers.messages import Started

__all__ = [
    "PARENT_CHECK_SECONDS",
    "announce_start",
    "c_library",
    "current_cpu",
    "keep_freed_memory",
    "limit_thread_pools",
    "openmp_runtimes",
    "pin_to_cpu",
    "prepare_worker_process",
    "unpin",
    "watch_parent",
]

PARENT_CHECK_SECONDS = 0.5
"""How often a worker checks that the loading process is alive (see :func:`watch_parent`)."""


@functools.cache
def c_library() -> Any:
    """The C library already loaded in this process (``ctypes.CDLL(None)``), or ``None``.

    Resolved once, in the loading process before it forks (with the functions workers call:
    ``mallopt``, ``sched_getcpu``), so a forked worker inherits it instead of loading it again on
    the path to the first batch (docs/benchmarks.md, "Time to first batch").
    """
    try:
        library = ctypes.CDLL(None)
    except OSError:
        return None
    for name in ("mallopt", "sched_getcpu"):
        with contextlib.suppress(AttributeError):
            getattr(library, name)  # ctypes keeps each function it looked up
    return library


def current_cpu() -> int | None:
    """The CPU this thread runs on (glibc's ``sched_getcpu``), ``None`` where unknown."""
    try:
        cpu = int(c_library().sched_getcpu())
    except AttributeError:
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


def announce_start(conn: Connection, announce: bool) -> bool:
    """A worker started after worker 0 tells the loader it is running (see the module docstring).

    Returns ``False`` when the loader is gone already (it stopped before this worker was up):
    the worker then exits quietly.
    """
    if announce:
        try:
            conn.send(Started(os.getpid()))
        except (BrokenPipeError, ConnectionResetError):
            return False
    return True


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_memory() -> None:
    """Ask the C allocator (glibc) of this worker process to keep freed memory for reuse.

    By default glibc returns memory to the system when more than about twice the largest
    recently freed block sits unused at the top of the heap; a worker freeing a batch's
    temporaries every batch then faults the same pages in again for the next (~180 page faults
    per CIFAR batch; docs/benchmarks.md). Keeping up to 128 MB is the worker's steady state,
    not growth. Elsewhere (musl, macOS) this does nothing.
    """
    try:
        mallopt = c_library().mallopt  # the C library is loaded already; no search
    except AttributeError:
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 128 << 20)


_OPENMP: dict[int, Any] = {}  # len(sys.modules) -> controller (a cache; see openmp_runtimes)


def openmp_runtimes() -> Any:
    """threadpoolctl's controller of the OpenMP runtimes loaded in this process, or ``None``.

    Called in the loading process before forking, so a forked worker only has to apply the
    limit instead of importing threadpoolctl and scanning the loaded libraries itself (many
    milliseconds per worker start on a busy machine). Cached for as long as no module is imported
    (native libraries come with modules).
    """
    key = len(sys.modules)
    if key not in _OPENMP:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a dependency; absent only in unusual installs
            return None
        controller = ThreadpoolController().select(user_api="openmp")
        _OPENMP.clear()
        _OPENMP[key] = controller if controller.lib_controllers else None
    return _OPENMP[key]


def limit_thread_pools(openmp: Any = None) -> None:
    """One thread for the thread pools that are not safe in a forked worker.

    A pool the parent used before the fork is not safe in the child: torch's intra-op pool
    (OpenMP) left the second epoch of a torch-style dataset hanging forever, and GNU OpenMP
    (libgomp) hangs in any child whose parent ran a parallel region. torch's own workers call
    ``torch.set_num_threads(1)``; this does that when torch is imported, and limits every loaded
    OpenMP runtime through threadpoolctl (``openmp``: from :func:`openmp_runtimes`, found in the
    parent). BLAS pools that are fork-safe (OpenBLAS's own threads) are left as they are. One
    thread per worker is also what a worker should use: ``num_workers`` workers each running a
    pool as wide as the machine would oversubscribe the CPUs. The limit is set directly on each
    runtime (``omp_set_num_threads``), not through ``ThreadpoolController.limit``, which also
    records the old values to restore (a worker process never restores them), for a fraction
    of the time on worker 0's start.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    if openmp is not None:
        for runtime in openmp.lib_controllers:
            runtime.set_num_threads(1)


def watch_parent(interval: float = PARENT_CHECK_SECONDS) -> int:
    """Exit this process soon after its parent is gone.

    A worker notices a closed pipe only when it asks for its next job; one busy in a long
    ``__getitem__`` when the loader is killed outright (SIGKILL, the OOM killer) would run on.
    A daemon thread checks the parent every ``interval`` seconds (the worker is re-parented
    when its parent dies, so ``os.getppid()`` changes) and ends the process with ``os._exit``.
    The parent is the loading process under ``fork`` and ``spawn``; under ``forkserver`` it is
    the fork server, which exits when the loading process does.

    The thread is started with ``_thread.start_new_thread``, which does not wait for it to run
    (``threading.Thread.start`` does, on worker 0's path to the first batch). It is a daemon: it
    never delays the worker's exit. Returns the thread's identifier.
    """
    parent_pid = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os._exit(0)

    return _thread.start_new_thread(watch, ())


def prepare_worker_process(loader_ends: Iterable[Connection], openmp: Any = None) -> None:
    """Everything a worker process sets up before its first job.

    Args:
        loader_ends: the loader's ends of pipes this (forked) worker inherited: its own and
            earlier workers'. Held here, they would keep this worker's pipe open if the loading
            process died without closing it, and the worker would wait for jobs forever.
        openmp: the OpenMP runtimes the parent found (see :func:`limit_thread_pools`).
    """
    for end in loader_ends:
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the loader, which stops us
    watch_parent()
    keep_freed_memory()
    limit_thread_pools(openmp)
