import gc
import os
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

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
