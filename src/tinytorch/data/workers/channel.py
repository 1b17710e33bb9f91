"""How jobs and batches cross between the loading process and a worker process.

Each worker has one duplex pipe. Down: pickled :class:`Job` bytes (``None`` to stop). Up: small
messages; a finished batch's arrays stay in the worker's shared-memory blocks
(:mod:`tinytorch.data.workers.transport`), and a block's file descriptor follows its first
message once (``SCM_RIGHTS``). :class:`WorkerChannel` is the worker's end;
:func:`receive` is the loader's side of one message.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle, send_handle
from typing import Any

from tinytorch.data.fetch.timing import StageTimes
from tinytorch.data.memory import allocating_in
from tinytorch.data.workers.capacity import private_memory
from tinytorch.data.workers.messages import Done, Job, Reply, Started
from tinytorch.data.workers.transport import BlockReader, BlockWriter, Packed

__all__ = ["PROBE_SECONDS", "WorkerChannel", "encode_job", "receive"]

PROBE_SECONDS = 1.0
"""How often a process worker measures its private memory (``loader.stats()``), besides once early
in every epoch. A measurement reads ``/proc/self/smaps_rollup``, whose cost grows with the
process's mappings: ~1 ms for a worker of a numpy-only program, 2-4 ms for one that has torch
imported. It is taken after a batch is sent, never between making a batch and sending it, and
travels with the next batch."""


def encode_job(job: Job | None) -> bytes:
    """The bytes sent down a worker's pipe: jobs hold only ints and index bytes, so plain
    pickle, without the reducer machinery of ``Connection.send``."""
    return pickle.dumps(job, protocol=5)


class WorkerChannel:
    """The worker's end: jobs in, results out, a batch's arrays made in shared memory."""

    def __init__(self, conn: Connection, worker_id: int) -> None:
        self.conn = conn
        self.writer = BlockWriter(worker_id)
        self._pending_fd: int | None = None
        self._probed_at = -PROBE_SECONDS
        self._probed_generation = -1  # measured once early in every epoch
        self._private = 0  # the latest measurement, sent with every batch

    def receive(self) -> Job | None:
        job: Job | None = pickle.loads(self.conn.recv_bytes())  # see encode_job
        if job is not None:
            self.writer.release(list(job.released))
        return job

    @contextlib.contextmanager
    def making(self) -> Iterator[None]:
        """Large arrays the stages allocate (``batch_empty``) are made where they will travel."""
        self.writer.begin()
        with allocating_in(self.writer):
            yield

    def package(self, job: Job, batch: Any, times: StageTimes) -> Done:
        start = time.perf_counter()
        packed, fd = self.writer.write(batch)
        self._pending_fd = fd
        times = times.with_transport(time.perf_counter() - start, self._private)
        return Done(job.generation, job.task.index, packed, times)

    def send(self, message: Reply) -> None:
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
        if isinstance(message, Done):
            self._probe(message.generation)

    def _probe(self, generation: int) -> None:
        """Measure private memory when due (see ``PROBE_SECONDS``): the batch is already sent."""
        now = time.perf_counter()
        if now - self._probed_at >= PROBE_SECONDS or generation != self._probed_generation:
            self._probed_at, self._probed_generation = now, generation
            self._private = private_memory() or self._private

    def close(self) -> None:
        self.writer.close()
        self.conn.close()


def receive(conn: Connection, reader: BlockReader, worker_id: int) -> Reply | Started:
    """The next message from a worker; a new block's descriptor is taken and mapped with it.

    Raises:
        EOFError, OSError: the worker's end is closed (it exited).
    """
    message = conn.recv()
    if isinstance(message, Done) and isinstance(message.payload, Packed):
        packed = message.payload
        if packed.new_block_size is not None and packed.block is not None:
            reader.attach(worker_id, packed.block, recv_handle(conn), packed.new_block_size)
    return message  # type: ignore[no-any-return]
