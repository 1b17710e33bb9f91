"""Per-batch timeline of a loader epoch: where each batch's time goes, and where a core idles.

For every batch of one epoch this records, on one clock (``time.perf_counter``, which is
``CLOCK_MONOTONIC`` and so shared by the loading process and its worker processes):

* **sent**: the loading process hands the job to a worker (``Pool.send``);
* **started** / **finished**: the worker begins reading the batch / its batch transform returns
  (before the batch is packed and sent back);
* **received**: the loading process takes the finished batch from the pool (``Pool.decode``);
* **delivered**: ``next(epoch)`` returns it to the consumer;

plus CPU times from ``time.thread_time``: the worker's for each batch, and the loading thread's
between consecutive deliveries. In the loading process the loading thread's CPU time is the time
it holds the GIL (it releases it only to block in ``select``/``recv``, which costs no CPU), so
this is the measure of the loading process's per-batch Python steps.

The hooks are user-level where they can be (a dataset wrapper for *started*, a batch-transform
wrapper for *finished*; both write into an anonymous shared mapping that forked workers share),
and wrap the pool classes' ``send`` and ``decode`` for *sent* and *received*: nothing in the
library is changed to take a timeline.

Usage (from bench_scaling.py, or alone):
    python benchmarks/timeline.py --out docs/img/timeline.png [--size 50000]
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinytorch as tt
from tinytorch.data import get_worker_info
from tinytorch.data.seeding import get_batch_context

FIELDS = ("sent", "started", "finished", "received", "delivered", "worker", "cpu", "main_cpu")
_COLUMN = {name: i for i, name in enumerate(FIELDS)}


class Events:
    """One row per batch of ``FIELDS`` in anonymous shared memory (visible to forked workers)."""

    def __init__(self, batches: int) -> None:
        self._map = mmap.mmap(-1, 8 * len(FIELDS) * batches)
        self.table = np.frombuffer(self._map, np.float64).reshape(batches, len(FIELDS))
        self.clear()

    def clear(self) -> None:
        self.table[...] = np.nan

    def mark(self, batch: int, name: str, value: float | None = None) -> None:
        if 0 <= batch < len(self.table):
            self.table[batch, _COLUMN[name]] = time.perf_counter() if value is None else value

    def column(self, name: str) -> np.ndarray:
        return self.table[:, _COLUMN[name]]


class TimedDataset(tt.Dataset):  # type: ignore[type-arg]
    """``dataset`` with *started* recorded when a batch is read (and the worker's CPU clock)."""

    def __init__(self, dataset: Any, events: Events) -> None:
        self.dataset, self.events = dataset, events

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[i]

    def __getitems__(self, indices: Any) -> Any:
        context = get_batch_context()
        if context is not None:
            k = context.batch_index
            self.events.mark(k, "started")
            self.events.mark(k, "cpu", time.thread_time())
            info = get_worker_info()
            self.events.mark(k, "worker", -1 if info is None else info.id)
        return self.dataset.__getitems__(indices)


class TimedTransform:
    """``transform`` with *finished* recorded when it returns (CPU time of the batch too)."""

    def __init__(self, transform: Callable[[Any, Any], Any], events: Events) -> None:
        self.transform, self.events = transform, events

    def __call__(self, batch: Any, rng: Any) -> Any:
        out = self.transform(batch, rng)
        context = get_batch_context()
        if context is not None:
            k = context.batch_index
            self.events.mark(k, "finished")
            self.events.table[k, _COLUMN["cpu"]] = time.thread_time() - self.events.table[k, _COLUMN["cpu"]]
        return out


@contextlib.contextmanager
def pool_hooks(events: Events) -> Iterator[None]:
    """Record *sent* and *received* by wrapping the pool classes' ``send`` and ``decode``."""
    from tinytorch.data.workers.process import ProcessPool
    from tinytorch.data.workers.thread import ThreadPool

    saved = [(cls, cls.send, cls.decode) for cls in (ProcessPool, ThreadPool)]

    def wrap(cls: Any, send: Any, decode: Any) -> None:
        def timed_send(self: Any, worker_id: int, generation: int, task: Any) -> None:
            events.mark(task.index, "sent")
            send(self, worker_id, generation, task)

        def timed_decode(self: Any, worker_id: int, message: Any) -> Any:
            events.mark(message.index, "received")
            return decode(self, worker_id, message)

        cls.send, cls.decode = timed_send, timed_decode

    for cls, send, decode in saved:
        wrap(cls, send, decode)
    try:
        yield
    finally:
        for cls, send, decode in saved:
            cls.send, cls.decode = send, decode


@dataclass
class Timeline:
    """One epoch's events, times in ms from ``iter()``."""

    label: str
    table: np.ndarray  # (batches, FIELDS), times already relative, ms
    wall_ms: float
    main_cpu_ms: float

    def column(self, name: str) -> np.ndarray:
        return self.table[:, _COLUMN[name]]

    def summary(self) -> dict[str, float]:
        """Per-batch means (ms) of each interval, worker utilization and the loading CPU."""
        c = self.column
        workers = sorted({int(w) for w in c("worker") if w >= 0})
        busy = {w: float(np.nansum((c("finished") - c("started"))[c("worker") == w])) for w in workers}
        out = {
            "wall ms": self.wall_ms,
            "queued (sent->started) ms": float(np.nanmedian(c("started") - c("sent")))
            if np.isfinite(c("sent")).any()
            else float("nan"),
            "made (started->finished) ms": float(np.nanmedian(c("finished") - c("started"))),
            "worker CPU per batch ms": float(np.nanmedian(c("cpu"))),
            "handoff (finished->delivered) ms": float(np.nanmedian(c("delivered") - c("finished"))),
            "loading thread CPU per batch us": 1000 * self.main_cpu_ms / len(self.table),
        }
        for w, b in busy.items():
            out[f"worker {w} busy share"] = b / self.wall_ms
        return out


def record(loader: Any, events: Events, label: str) -> Timeline:
    """Run one epoch of ``loader`` (built over a ``TimedDataset``/``TimedTransform`` sharing
    ``events``) and return its timeline."""
    events.clear()
    with pool_hooks(events):
        cpu0 = time.thread_time()
        start = time.perf_counter()
        it = iter(loader)
        k = 0
        for _ in it:
            events.mark(k, "delivered")
            events.mark(k, "main_cpu", time.thread_time())
            k += 1
        wall = time.perf_counter() - start
        cpu = time.thread_time() - cpu0
    table = events.table[:k].copy()
    for name in ("sent", "started", "finished", "received", "delivered"):
        table[:, _COLUMN[name]] = (table[:, _COLUMN[name]] - start) * 1000
    table[:, _COLUMN["cpu"]] *= 1000
    main = table[:, _COLUMN["main_cpu"]]
    table[:, _COLUMN["main_cpu"]] = np.diff(main, prepend=cpu0) * 1000
    return Timeline(label, table, wall * 1000, cpu * 1000)


def plot(timelines: list[Timeline], path: str, *, window_ms: float | None = None) -> None:
    """One panel per timeline: a row per worker (bars: started -> finished, a thin line from
    sent), and the loading process's row (ticks: delivered; shading: its CPU per batch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(timelines), 1, figsize=(12, 1.6 + 1.25 * len(timelines) * 1.6), squeeze=False
    )
    colors = plt.get_cmap("tab10")
    for ax, t in zip(axes[:, 0], timelines, strict=True):
        c = t.column
        workers = sorted({int(w) for w in c("worker")})
        rows = {w: i for i, w in enumerate(workers)}
        main_row = len(workers)
        end = window_ms if window_ms is not None else t.wall_ms
        for k in range(len(t.table)):
            w = int(c("worker")[k])
            y = rows[w]
            color = colors(k % 10)
            if np.isfinite(c("sent")[k]):
                ax.plot([c("sent")[k], c("started")[k]], [y + 0.4, y + 0.4], color=color, lw=0.6, alpha=0.6)
            ax.broken_barh(
                [(c("started")[k], c("finished")[k] - c("started")[k])],
                (y - 0.3, 0.6),
                color=color,
                alpha=0.85,
            )
            if np.isfinite(c("received")[k]):
                ax.plot([c("finished")[k], c("received")[k]], [y - 0.38, y - 0.38], color="grey", lw=0.6)
            # the loading process: its CPU for this batch drawn right before the delivery
            ax.broken_barh(
                [(c("delivered")[k] - c("main_cpu")[k], c("main_cpu")[k])],
                (main_row - 0.3, 0.6),
                color=color,
                alpha=0.85,
            )
            ax.plot([c("delivered")[k]] * 2, [main_row - 0.4, main_row + 0.4], color="black", lw=0.5)
        labels = [("loading process" if w < 0 else f"worker {w}") for w in workers]
        ax.set_yticks([*range(len(workers)), main_row], [*labels, "loading thread CPU\n(| delivered)"])
        ax.set_xlim(0, end)
        s = t.summary()
        shares = ", ".join(f"w{k.split()[1]} {v:.0%}" for k, v in s.items() if k.endswith("busy share"))
        busy = f" busy {shares};" if shares else ""
        ax.set_title(
            f"{t.label}: epoch {t.wall_ms:.0f} ms;{busy} CPU/batch "
            f"{s['worker CPU per batch ms']:.2f} ms; loading thread CPU/batch "
            f"{s['loading thread CPU per batch us']:.0f} us",
            fontsize=9,
            loc="left",
        )
    axes[-1, 0].set_xlabel("ms since iter(loader)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CONFIGS: dict[str, dict[str, Any]] = {
    "0 workers": {},
    "2 thread workers": {"num_workers": 2, "worker_type": "thread"},
    "2 persistent thread workers": {"num_workers": 2, "worker_type": "thread", "persistent_workers": True},
    "2 process workers": {"num_workers": 2, "worker_type": "process"},
    "2 persistent process workers": {"num_workers": 2, "worker_type": "process", "persistent_workers": True},
}


def timelines(
    images: np.ndarray,
    labels: np.ndarray,
    configs: dict[str, dict[str, Any]],
    *,
    transform: Callable[[Any, Any], Any],
    epochs: int = 3,
    batch_size: int = 256,
) -> dict[str, list[Timeline]]:
    """``epochs`` timelines of each configuration, configurations in turns (after one warm-up)."""
    batches = -(-len(images) // batch_size)
    events = Events(batches)
    dataset = TimedDataset(tt.TensorDataset(images, labels), events)
    timed = TimedTransform(transform, events)
    loaders = {
        name: tt.DataLoader(dataset, batch_size=batch_size, shuffle=True, seed=0, batch_transform=timed, **kw)
        for name, kw in configs.items()
    }
    out: dict[str, list[Timeline]] = {name: [] for name in configs}
    try:
        for name, loader in loaders.items():
            record(loader, events, name)  # warm-up
        for e in range(epochs):
            for name in list(loaders) if e % 2 == 0 else list(loaders)[::-1]:
                out[name].append(record(loaders[name], events, name))
    finally:
        for loader in loaders.values():
            loader.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="timeline.png")
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--window-ms", type=float, default=None, help="plot only the first ms of each epoch")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names from CONFIGS")
    args = parser.parse_args()
    from tinytorch.analysis.sources import augmentation

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.size, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, args.size)
    chosen = {name: CONFIGS[name] for name in args.configs.split(",")}
    got = timelines(images, labels, chosen, transform=augmentation(), epochs=args.epochs)
    # the median epoch of each configuration is drawn
    drawn = []
    for name, runs in got.items():
        runs = sorted(runs, key=lambda t: t.wall_ms)
        median = runs[len(runs) // 2]
        drawn.append(median)
        print(name)
        for key, value in median.summary().items():
            print(f"    {key:36s} {value:10.3f}")
    plot(drawn, args.out, window_ms=args.window_ms)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
