import gc

import numpy as np

from tinytorch import DataLoader, TensorDataset
from tinytorch.data.memory import RecycledArena, allocating_in, batch_empty


def test_outside_an_arena_batch_empty_is_numpy_empty():
    a = batch_empty((3, 4), np.float32)
    assert a.shape == (3, 4)
    assert a.dtype == np.float32
    assert a.flags.owndata


def test_a_buffer_is_reused_only_once_every_view_of_it_is_gone():
    arena = RecycledArena(min_bytes=1024)
    with allocating_in(arena):
        first = batch_empty((64, 64), np.float32)
    first[...] = 1.0
    kept = first[10:20]  # a view outlives the array it came from
    address = first.__array_interface__["data"][0]
    del first
    gc.collect()
    assert arena.free_buffers == 0
    second = arena.empty((64, 64), np.dtype(np.float32))
    assert second.__array_interface__["data"][0] != address
    second[...] = 2.0
    assert (kept == 1.0).all()  # not overwritten
    del kept
    gc.collect()
    assert arena.free_buffers == 1
    third = arena.empty((64, 64), np.dtype(np.float32))
    assert third.__array_interface__["data"][0] == address  # reused


def test_the_most_recently_freed_fitting_buffer_comes_back_first_and_the_pool_is_bounded():
    arena = RecycledArena(min_bytes=1024, keep=2)
    arrays = [arena.empty((256, 16), np.dtype(np.float32)) for _ in range(3)]
    addresses = [a.__array_interface__["data"][0] for a in arrays]
    del arrays[0]
    del arrays[0]
    del arrays[0]
    gc.collect()
    assert arena.free_buffers == 2  # the oldest of three was dropped
    assert arena.empty((256, 16), np.dtype(np.float32)).__array_interface__["data"][0] == addresses[2]
    small = arena.empty((4, 4), np.dtype(np.float32))  # under min_bytes: plain numpy
    assert small.flags.owndata
    big = arena.empty((256, 64), np.dtype(np.float32))  # four times larger: a new buffer
    assert big.__array_interface__["data"][0] not in addresses


def test_a_closed_arena_keeps_nothing():
    arena = RecycledArena(min_bytes=1024)
    a = arena.empty((64, 64), np.dtype(np.float32))
    arena.close()
    del a
    gc.collect()
    assert arena.free_buffers == 0


def test_thread_worker_batches_the_consumer_keeps_are_never_overwritten():
    x = np.random.default_rng(0).integers(0, 256, (64, 3, 32, 32), dtype=np.uint8)

    def transform(batch, rng):
        images, labels = batch
        out = batch_empty(images.shape, np.float32)
        out[...] = images
        return out, labels

    kept = []
    with DataLoader(
        TensorDataset(x, np.arange(64)),
        batch_size=16,
        num_workers=2,
        worker_type="thread",
        batch_transform=transform,
    ) as loader:
        for epoch in range(3):
            for images, labels in loader:
                if epoch == 0:
                    kept.append((images, labels))
    for images, labels in kept:
        np.testing.assert_array_equal(images, x[labels].astype(np.float32))
