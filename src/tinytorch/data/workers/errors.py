"""What goes wrong in workers, as exceptions that say which worker, which batch and what to do."""

from __future__ import annotations

__all__ = ["WorkerDiedError", "WorkerError", "WorkerStartError", "WorkerTimeoutError"]


class WorkerError(RuntimeError):
    """A worker raised an exception whose type could not be re-created in the main process.

    The message holds the worker id, pid, batch index and the worker's traceback.
    """


class WorkerDiedError(RuntimeError):
    """A worker process exited unexpectedly (killed by a signal, or ``os._exit``).

    A ``RuntimeError``, as torch raises when a DataLoader worker exits unexpectedly.
    """


class WorkerTimeoutError(RuntimeError, TimeoutError):
    """No batch arrived within the loader's ``timeout``.

    A ``RuntimeError``, as torch raises for a DataLoader timeout, and a ``TimeoutError``.
    """


class WorkerStartError(RuntimeError):
    """Workers could not be started (e.g. ``worker_init_fn`` failed)."""
