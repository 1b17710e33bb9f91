import gc
import os
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

from tinytorch.data.memory import allocating_in, batch_empty
from tinytorch.data.workers.transport import (
    BlockReader,
    BlockWriter,
    flatten,
    shared_memory_supported,
    unflatten,
)

pytestmark = pytest.mark.skipif(not shared_memory_supported(), reason="needs memfd_create")

Pair = namedtuple("Pair", "a b")


def sample_batch(value=1.0):
    # x is large enough (> INLINE_BYTES) to travel through shared memory
    return {
        "x": np.full((4, 30000), value, dtype=np.float32),
        "pair": Pair(np.arange(4), ["s1", "s2", "s3", "s4"]),
        "nested": [np.zeros((2, 2), np.uint8), (7, np.array([True, False]))],
        "od": OrderedDict(k=np.ones(1)),
    }


def assert_same(a, b):
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    elif isinstance(a, dict):
        assert type(a) is type(b)
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def test_flatten_round_trip_keeps_containers():
    arrays = []
    structure = flatten(sample_batch(), arrays)
    assert len(arrays) == 5
    assert_same(unflatten(structure, arrays), sample_batch())


def transfer(writer, reader, batch, worker=0):
    packed, fd = writer.write(batch)
    if fd is not None:
        reader.attach(worker, packed.block, os.dup(fd), packed.new_block_size)
        os.close(fd)
    return packed, reader.read(worker, packed)


def test_batch_round_trips_through_shared_memory_without_copy_on_read():
    writer, reader = BlockWriter(0), BlockReader()
    packed, out = transfer(writer, reader, sample_batch())
    assert packed.block == 0
    assert_same(out, sample_batch())
    assert out["x"].base is not None  # a view of the block, not a copy
    writer.close()
    reader.close()


def test_a_kept_batch_is_never_overwritten_and_blocks_are_reused_once_released():
    writer, reader = BlockWriter(0), BlockReader()
    _, first = transfer(writer, reader, sample_batch(1.0))
    writer.release(reader.take_released(0))
    packed2, second = transfer(writer, reader, sample_batch(2.0))
    assert packed2.block == 1  # block 0 still in use: a new block
    np.testing.assert_array_equal(first["x"], 1.0)
    del first
    gc.collect()
    released = reader.take_released(0)
    assert released == [0]
    writer.release(released)
    packed3, third = transfer(writer, reader, sample_batch(3.0))
    assert packed3.block == 0  # reused
    assert packed3.new_block_size is None
    np.testing.assert_array_equal(second["x"], 2.0)
    np.testing.assert_array_equal(third["x"], 3.0)
    reader.close()
    np.testing.assert_array_equal(third["x"], 3.0)  # still valid after the reader closed
    writer.close()


def test_batches_without_arrays_travel_inline():
    writer = BlockWriter(0)
    packed, fd = writer.write(["a", 1, np.zeros(10)])
    assert packed.block is None
    assert fd is None
    assert BlockReader().read(0, packed)[:2] == ["a", 1]


def made_in_arena(writer, value, n=4):
    """What a worker's stages produce: a large array allocated through the arena, small labels."""
    writer.begin()
    with allocating_in(writer):
        scratch = batch_empty((n, 30000), np.uint8)  # an intermediate, garbage afterwards
        scratch[...] = 1
        x = batch_empty((n, 30000), np.float32)
        x[...] = value
    return [x, np.arange(n)]


def test_arrays_made_in_the_arena_travel_without_a_copy():
    writer, reader = BlockWriter(0), BlockReader()
    batch = made_in_arena(writer, 5.0)
    address = batch[0].__array_interface__["data"][0]
    packed, out = transfer(writer, reader, batch)
    main = packed.block
    assert writer._addresses[main] + packed.specs[0].offset == address  # written in place
    assert packed.specs[1].offset >= batch[0].nbytes  # labels copied after it, same block
    np.testing.assert_array_equal(out[0], 5.0)
    np.testing.assert_array_equal(out[1], np.arange(4))
    assert writer._lent == {}
    assert len(writer._free) == 1  # the intermediate's block: reusable at once
    writer.close()
    reader.close()


def test_arena_blocks_are_reused_only_once_released_and_descriptors_sent_once():
    writer, reader = BlockWriter(0), BlockReader()
    announced, used, kept = [], [], []
    for value in range(8):
        batch = made_in_arena(writer, float(value))
        packed, fd = writer.write(batch)
        if fd is not None:
            announced.append(packed.block)
            reader.attach(0, packed.block, os.dup(fd), packed.new_block_size)
            os.close(fd)
        assert (packed.block in used) != (fd is not None)  # a descriptor with the first use only
        used.append(packed.block)
        kept.append((value, reader.read(0, packed)))
        if value >= 3:  # from here on the consumer lets go of the oldest batch it holds
            kept.pop(0)
            gc.collect()
            writer.release(reader.take_released(0))
    for value, out in kept:
        np.testing.assert_array_equal(out[0], float(value))  # never overwritten under the consumer
    assert len(set(used)) < len(used)  # blocks were reused
    assert sorted(announced) == sorted(set(used))
    writer.close()
    reader.close()


def test_batches_the_arena_cannot_hold_whole_are_copied():
    writer, reader = BlockWriter(0), BlockReader()
    writer.begin()
    with allocating_in(writer):
        x = batch_empty((4, 30000), np.float32)
    x[...] = 3.0
    big_labels = np.arange(40_000)  # more than the slack after x: copied with x into a new block
    view = x[:, ::2]  # not contiguous: copied
    packed, out = transfer(writer, reader, [x, big_labels, view])
    address = x.__array_interface__["data"][0]
    assert writer._addresses[packed.block] + packed.specs[0].offset != address  # copied
    np.testing.assert_array_equal(out[0], 3.0)
    np.testing.assert_array_equal(out[1], big_labels)
    np.testing.assert_array_equal(out[2], 3.0)
    assert out[2].shape == (4, 15000)
    writer.close()
    reader.close()


def test_batch_empty_is_numpy_empty_outside_an_arena():
    a = batch_empty((3, 2), np.int16)
    assert a.shape == (3, 2)
    assert a.dtype == np.int16
    assert a.flags.owndata
