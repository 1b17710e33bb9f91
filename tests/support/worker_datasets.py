"""Datasets for worker tests; module level so spawn workers can import them."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import numpy as np

from tinytorch import Dataset, IterableDataset, get_batch_context, get_worker_info


class Squares(Dataset):
    def __init__(self, n=64, fail_at=None, sleep_at=None, kill_at=None):
        self.n, self.fail_at, self.sleep_at, self.kill_at = n, fail_at, sleep_at, kill_at

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise KeyError(f"sample {i} is broken")
        if i == self.sleep_at:
            time.sleep(3600)
        if i == self.kill_at and get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return np.full((2, 3), i, dtype=np.int32), i * i


class Randomized(Dataset):
    """Uses the batch context's generator, and numpy's and Python's global generators."""

    def __len__(self):
        return 48

    def __getitem__(self, i):
        context = get_batch_context().rng.integers(0, 10**9)
        return np.array([i, context], dtype=np.int64)


class GlobalRandom(Dataset):
    def __len__(self):
        return 32

    def __getitem__(self, i):
        return np.array([np.random.randint(0, 10**9), random.randrange(10**9)], dtype=np.int64)


class WhoAmI(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        info = get_worker_info()
        return np.array([info.id, info.num_workers, os.getpid(), threading.get_ident() % 10**6])


class Unpicklable(Squares):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()


def record_init(worker_id):
    if worker_id == 1:
        raise RuntimeError("init failed on purpose")


class Images(Dataset):
    """CIFAR-sized uint8 images, per sample: batches of 64+ are large enough for shared memory."""

    def __init__(self, n=640):
        self.images = np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], i


class TorchRandom(Dataset):
    """Issue 13 item 1: torch's global generator, as torchvision's v1 transforms use it."""

    def __init__(self, n=8):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import torch

        return float(torch.rand(1))


class GlobalDraws(Dataset):
    """Draws from numpy's, Python's and (when imported) torch's global generators."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        import torch

        return np.array(
            [np.random.randint(1 << 30), random.randrange(1 << 30), int(torch.randint(1 << 30, ()))]
        )


class TorchOps(Dataset):
    """Issue 13 item 11: torch ops in __getitem__ (intra-op threads in the parent first)."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        import torch

        x = torch.ones(256, 256) * i
        return (x @ x).sum().item()


class SleepsOnce(Dataset):
    """Sleeps on sample ``at`` until the flag file exists (created by the first sleeper)."""

    def __init__(self, flag, at=5, n=16):
        self.flag, self.at, self.n = str(flag), at, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.at and not os.path.exists(self.flag):
            open(self.flag, "w").close()
            time.sleep(3600)
        return i


class KillsOnce(Dataset):
    """The first worker to read sample ``at`` kills itself (the flag file remembers)."""

    def __init__(self, flag, at=5, n=16):
        self.flag, self.at, self.n = str(flag), at, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.at and get_worker_info() is not None and not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return i


class Raises(Dataset):
    """Raises ``error`` (an exception instance) on sample 3."""

    def __init__(self, error):
        self.error = error

    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 3:
            raise self.error
        return i


class InnerLoader(Dataset):
    """Builds a loader with process workers inside a worker (issue 16 item 8)."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        from tinytorch import DataLoader

        return sum(int(b.sum()) for b in DataLoader(Squares(n=8), batch_size=4, num_workers=2))


class Trainer:
    """Refers back to its loader through ``collate_fn=self.collate`` (issue 16 item 6a)."""

    def __init__(self, **kwargs):
        from tinytorch import DataLoader

        self.loader = DataLoader(Squares(n=64), batch_size=4, collate_fn=self.collate, **kwargs)

    def collate(self, samples):
        return np.stack([s[0] for s in samples])


class Numbers:
    """A plain iterable (no torch, not our class) of ``n`` numbers split between readers."""

    def __init__(self, n=20):
        self.n = n

    def __iter__(self):
        from tinytorch import split_stream

        for i in split_stream(range(self.n)):
            yield np.array([i, get_batch_context().rng.integers(1000)])


class Uneven(IterableDataset):
    """An IterableDataset whose worker w yields 3 * (w + 1) items (workers end at different times)."""

    def __iter__(self):
        info = get_worker_info()
        worker = 0 if info is None else info.id
        for i in range(3 * (worker + 1)):
            yield np.array([worker, i, np.random.randint(1000)])


class StopsEarly(Dataset):
    """Raises StopIteration on sample 5 (a bug in user code must not end the epoch silently)."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise StopIteration
        return np.float32(i)


class Tagged(Exception):
    """An exception with an attribute the consumer wants back."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class RaisesTagged(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise Tagged("bad file", path=f"/data/{i}.jpg")


class PickleBomb(Exception):
    def __reduce__(self):
        raise KeyboardInterrupt  # pickling raises a BaseException


class RaisesPickleBomb(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise PickleBomb("cannot travel")


class Short(Dataset):
    """__getitems__ returns one sample too few (or None)."""

    def __init__(self, none=False):
        self.none = none

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return i

    def __getitems__(self, indices):
        return None if self.none else [int(i) for i in indices][:-1]


def fail_in_worker_one(worker_id):
    if worker_id == 1:
        1 / 0  # noqa: B018
