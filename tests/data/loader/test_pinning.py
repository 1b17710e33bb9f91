"""The conversion ``pin_memory`` applies, tested without CUDA (``finish`` stands for ``pin_memory``)."""

import warnings
from collections import OrderedDict, namedtuple

import numpy as np
import pytest

from tinytorch.data.loader.pinning import pin_memory_function, to_tensors

torch = pytest.importorskip("torch")

Pair = namedtuple("Pair", "a b")


def test_every_dtype_torch_holds_becomes_a_tensor_with_the_same_values():
    dtypes = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
    batch = {d: (np.arange(6) % 2).astype(d).reshape(2, 3) for d in dtypes}
    out = to_tensors(batch)
    for d in dtypes:
        assert isinstance(out[d], torch.Tensor), d
        np.testing.assert_array_equal(out[d].numpy(), batch[d])
        assert out[d].numpy().dtype == np.dtype(d)
    assert np.shares_memory(out["f4"].numpy(), batch["f4"])  # no copy where none is needed


def test_dtypes_torch_cannot_hold_stay_numpy_arrays_never_a_torch_error():
    record = np.zeros(2, [("a", "<i4"), ("b", "<f8")])
    batch = {
        "text": np.array(["ab", "c"]),
        "raw": np.array([b"x", b"y"]),
        "when": np.arange(2).astype("M8[s]"),
        "delta": np.arange(2).astype("m8[ms]"),
        "record": record,
        "long_double": np.ones(2, np.longdouble),
        "names": ["a", "b"],
        "count": 3,
    }
    out = to_tensors(batch)
    for key in ("text", "raw", "when", "delta", "record", "long_double"):
        assert out[key] is batch[key], key
    assert out["names"] == ["a", "b"]
    assert out["count"] == 3


def test_views_torch_refuses_are_copied_and_other_byte_orders_made_native():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    readonly = np.arange(3)
    readonly.flags.writeable = False
    batch = [base[::-1], base[:, ::2], np.arange(4, dtype=">i4"), readonly]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable array" warning from torch
        out = to_tensors(batch)
    np.testing.assert_array_equal(out[0].numpy(), base[::-1])
    np.testing.assert_array_equal(out[1].numpy(), base[:, ::2])
    assert out[2].dtype == torch.int32
    assert out[2].tolist() == [0, 1, 2, 3]
    assert out[3].tolist() == [0, 1, 2]


def test_containers_and_tensors_are_kept_and_finish_is_applied_to_each_tensor():
    grad = torch.ones(2, requires_grad=True) * 2
    batch = OrderedDict(pair=Pair(np.zeros(2), grad), nested=[(np.ones(1, np.uint8),)])
    finished = []

    def finish(t):
        finished.append(t)
        return t

    out = to_tensors(batch, finish)
    assert isinstance(out, OrderedDict)
    assert isinstance(out["pair"], Pair)
    assert out["pair"].b is grad  # tensors pass as they are: the graph is kept
    assert isinstance(out["nested"][0], tuple)
    assert len(finished) == 3


def test_no_pinning_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert pin_memory_function() is None
