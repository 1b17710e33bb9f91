"""What went wrong with a worker process, from its exit status: pure functions to the error.

Kept apart from the pool so every cause and its advice can be tested without processes.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from tinytorch.data.workers.errors import WorkerDiedError

__all__ = ["death_error", "mapped_file_problem"]


def death_error(
    worker_id: int,
    pid: int | None,
    exitcode: int,
    *,
    start_method: str,
    batch: tuple[int, int] | None = None,
    file_problem: str | None = None,
) -> WorkerDiedError:
    """The error for worker ``worker_id`` that exited with ``exitcode`` without being asked to.

    Args:
        worker_id: the worker's index.
        pid: its process id.
        exitcode: ``multiprocessing``'s exit code: ``-N`` for death by signal ``N``.
        start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"``.
        batch: ``(epoch, batch index)`` it was making, when known.
        file_problem: for a SIGBUS, what the dataset found wrong with its mapped files
            (see :func:`mapped_file_problem`), e.g. a shard that shrank.

    Returns:
        A :class:`WorkerDiedError` whose message names the cause and what to do.
    """
    where = f" while making batch {batch[1]} of epoch {batch[0]}" if batch is not None else ""
    if exitcode < 0:
        number = -exitcode
        name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
        cause = f"was killed by signal {name} ({number})"
        if number == signal.SIGKILL:
            hint = (
                " SIGKILL usually comes from the out-of-memory killer: lower batch_size, prefetch_factor "
                "or num_workers, or use worker_type='thread'"
            )
        elif number == signal.SIGBUS and file_problem:
            hint = f" {file_problem}"
        elif number == signal.SIGBUS:
            hint = (
                " SIGBUS means memory it read became invalid, usually a memory-mapped file that was "
                "truncated or replaced while being read (a dataset file changed on disk)"
            )
        elif number == signal.SIGSEGV:
            hint = " A segmentation fault comes from native code the dataset or a transform called."
        else:
            hint = ""
    else:
        cause = f"exited with code {exitcode}"
        hint = " Its traceback, if it printed one, is above."
        if start_method != "fork":
            hint += (
                f" With the '{start_method}' start method a worker imports the main module again and "
                "unpickles the dataset: a script that builds or iterates the loader at import time must "
                "do so under `if __name__ == '__main__':`, and the dataset must unpickle without error"
            )
    who = f"(pid {pid}) " if pid is not None else ""
    return WorkerDiedError(f"DataLoader process worker {worker_id} {who}{cause} unexpectedly{where}.{hint}")


def mapped_file_problem(dataset: object) -> str | None:
    """Ask ``dataset`` which of its memory-mapped files changed, if it can tell.

    Datasets that map files expose ``check_mapped_files()``, which raises an error naming a
    file whose size or identity changed since it was mapped. Returns that error's message, or
    ``None`` when the dataset cannot tell or finds nothing wrong.
    """
    check: Callable[[], None] | None = getattr(dataset, "check_mapped_files", None)
    if not callable(check):
        return None
    try:
        check()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None
