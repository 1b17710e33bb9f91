import gc
import os
import pickle
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
    packed = pickle.loads(pickle.dumps(packed))  # as the pipe carries it
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


def test_a_worker_keeps_a_bounded_number_of_free_blocks_and_both_sides_let_go_of_the_rest():
    from tinytorch.data.workers.transport import MAX_FREE_BLOCKS

    writer, reader = BlockWriter(0), BlockReader()
    kept = [transfer(writer, reader, sample_batch(float(k)))[1] for k in range(10)]  # list(loader)
    assert len(writer._maps) == 10
    del kept
    gc.collect()
    writer.release(reader.take_released(0))
    assert len(writer._maps) == MAX_FREE_BLOCKS  # six given back at once
    packed, batch = transfer(writer, reader, sample_batch(5.0))
    assert len(packed.retired) == 10 - MAX_FREE_BLOCKS
    assert len(reader._maps) == MAX_FREE_BLOCKS  # the consumer dropped its mappings too
    np.testing.assert_array_equal(batch["x"], 5.0)
    reader.close()
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


STRUCTURED = np.dtype([("a", "<i4"), ("b", ">f8", (2,)), ("c", "S3")])


@pytest.mark.parametrize("n", [3, 4000], ids=["inline", "shared memory"])
def test_structured_string_datetime_and_byte_order_dtypes_come_back_whole(n):
    """The layout carries the dtype itself: ``dtype.str`` of a record is '|V20', which lost the fields."""
    batch = {
        "rec": np.zeros(n, STRUCTURED),
        "sub": np.zeros(n, [("pos", "<f4", (2, 2))]),
        "text": np.array(["ab", "c"] * n),
        "raw": np.array([b"xyz"] * n),
        "when": np.arange(n).astype("M8[ms]"),
        "big_endian": np.arange(n, dtype=">i4"),
        "empty": np.zeros((n, 0), np.float32),
        "scalar": np.array(7, np.int16),
    }
    batch["rec"]["b"] = 1.5
    writer, reader = BlockWriter(0), BlockReader()
    packed, out = transfer(writer, reader, batch)
    assert (packed.block is None) == (n == 3)
    for key, value in batch.items():
        assert out[key].dtype == value.dtype, key
        assert out[key].shape == value.shape, key
        assert out[key].tobytes() == value.tobytes(), key
    assert out["rec"]["b"][0, 1] == 1.5
    writer.close()
    reader.close()


def test_object_arrays_and_array_subclasses_stay_in_the_structure():
    masked = np.ma.masked_array(np.arange(3), mask=[0, 1, 0])
    objects = np.array([None, 1], dtype=object)
    arrays = []
    structure = flatten([masked, objects, np.memmap], arrays)
    assert arrays == []
    assert structure[0] is masked  # the mask is not lost in a plain array
    assert structure[1] is objects


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("n", [2, 20000], ids=["inline", "shared memory"])
def test_tensors_travel_as_numpy_views_and_come_back_as_tensors(n):
    torch = _torch()
    batch = {
        "f": torch.arange(n * 3, dtype=torch.float32).reshape(n, 3),
        "bf16": torch.linspace(-2, 2, n * 2).to(torch.bfloat16).reshape(n, 2),
        "strided": torch.arange(2 * n)[::2],
        "flag": torch.zeros(n, dtype=torch.bool),
        "arr": np.arange(n),
    }
    arrays = []
    structure = flatten(batch, arrays)
    assert len(arrays) == len(batch)  # every tensor is taken out...
    assert all(isinstance(a, np.ndarray) for a in arrays)  # ...as a numpy view for the block
    writer, reader = BlockWriter(0), BlockReader()
    packed, out = transfer(writer, reader, batch)
    assert (packed.block is None) == (n == 2)
    for key, value in batch.items():
        assert type(out[key]) is type(value), key
        if isinstance(value, torch.Tensor):
            assert out[key].dtype == value.dtype, key
            assert torch.equal(out[key], value), key
    if packed.block is not None:
        assert out["f"].numpy().base is not None  # viewing the block: not a copy
    writer.close()
    reader.close()
    assert unflatten(structure, arrays)["bf16"].dtype == torch.bfloat16


def test_a_tensor_batch_collated_in_the_arena_is_sent_without_a_copy():
    torch = _torch()
    from tinytorch.data.collate.default import default_collate

    writer, reader = BlockWriter(0), BlockReader()
    writer.begin()
    with allocating_in(writer):
        batch = default_collate([torch.full((30000,), float(i)) for i in range(4)])
    address = batch.data_ptr()
    packed, out = transfer(writer, reader, batch)
    assert writer._addresses[packed.block] + packed.specs[0].offset == address
    assert torch.equal(out[:, 0], torch.arange(4.0))
    writer.close()
    reader.close()


def test_a_tensor_that_requires_grad_cannot_leave_a_worker_process():
    torch = _torch()
    writer = BlockWriter(0)
    with pytest.raises(RuntimeError, match=r"field \['x'\]\[1\] is a tensor that requires grad.*detach"):
        writer.write({"x": [torch.ones(2), torch.ones(2, requires_grad=True)]})
    assert writer._lent == {}
    writer.close()
    arrays = []
    flatten(torch.ones(2, requires_grad=True), arrays)  # sizing a batch (stats) is fine
    assert arrays[0].shape == (2,)


def test_batch_footprint_counts_tensors():
    torch = _torch()
    from tinytorch.data.workers.transport import batch_footprint

    batch = [torch.zeros(4, 3, dtype=torch.bfloat16, requires_grad=True), np.arange(4)]
    assert batch_footprint(batch) == (4, 4 * 3 * 2 + 4 * 8)


def test_the_requires_grad_error_keeps_its_field_when_pickled():
    torch = _torch()
    with pytest.raises(RuntimeError) as info:
        BlockWriter(0).write({"x": (torch.ones(1, requires_grad=True),)})
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)
    assert "field ['x'][0]" in str(again)
