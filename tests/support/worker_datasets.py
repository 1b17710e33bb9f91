"""Datasets for worker tests; module level so spawn workers can import them."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import numpy as np

from tinytorch import Dataset, get_batch_context, get_worker_info


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
