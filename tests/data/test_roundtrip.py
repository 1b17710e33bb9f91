"""Every dtype survives the trip: the same dtype, shape and bytes with num_workers=0, thread
workers and process workers (shared memory above 64 KiB, pickled below), for every kind of
array numpy has and for torch tensors (bfloat16 included).

One loader per worker type is built once (persistent workers) and reused by every example:
the example travels in the batch sampler's indices, which encode (case, sample), so the
dataset never changes under the forked workers.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinytorch import DataLoader, Dataset
from tinytorch.data.workers.transport import INLINE_BYTES, shared_memory_supported

try:
    import torch
except ImportError:  # the numpy cases still run
    torch = None

STRUCTURED = np.dtype([("a", "<i4"), ("b", ">f8", (2,)), ("c", "S3")])
NUMPY_DTYPES = [
    "?",
    "i1",
    "i2",
    "i4",
    "i8",
    "u1",
    "u2",
    "u4",
    "u8",
    "f2",
    "f4",
    "f8",
    "g",
    "c8",
    "c16",
    ">i4",
    ">f8",
    "<M8[s]",
    "<m8[ms]",
    "M8[D|s]",  # the samples alternate units: collate widens to datetime64[s]
    "U",  # widths 1-3 by sample: collate widens like np.stack
    "S",
    STRUCTURED,
    np.dtype([("pos", "<f4", (2, 2))]),  # a subarray field
    "V5",
]
TORCH_DTYPES = ["float32", "bfloat16", "float16", "int64", "uint8", "bool", "complex64"] if torch else []
KINDS = [("numpy", d) for d in NUMPY_DTYPES] + [("torch", d) for d in TORCH_DTYPES]
SHAPES = [(), (0,), (3,), (2, 0), (2, 3), (3, 1, 2)]
SAMPLE_LAYOUTS = ["contiguous", "strided", "reversed"]
BATCH_LAYOUTS = ["as is", "reversed", "strided", "first"]
BIG_BYTES = 33_000  # a trailing axis this many bytes long puts a batch of >= 2 samples above INLINE_BYTES
RADIX = (len(KINDS), len(SHAPES), len(SAMPLE_LAYOUTS), len(BATCH_LAYOUTS), 2, 1 << 8)


def encode(*digits: int) -> int:
    code = 0
    for digit, base in zip(digits, RADIX, strict=True):
        assert 0 <= digit < base
        code = code * base + digit
    return code


def decode(code: int) -> list[int]:
    digits = []
    for base in reversed(RADIX):
        code, digit = divmod(code, base)
        digits.append(digit)
    return digits[::-1]


def numpy_dtype(spec, position: int) -> np.dtype:
    if spec == "M8[D|s]":
        return np.dtype("M8[D]" if position % 2 else "M8[s]")
    if spec in ("U", "S"):
        return np.dtype(f"{spec}{1 + position % 3}")
    return np.dtype(spec)


def values(rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    if dtype.kind == "b":
        flat = rng.integers(0, 2, n).astype(dtype)
    elif dtype.kind in "fc":  # finite values: NaN payloads are not what this test is about
        flat = rng.standard_normal(n).astype(dtype)
        if dtype.kind == "c":
            flat += 1j * rng.standard_normal(n).astype(dtype)
    elif dtype.kind == "U":
        codes = rng.integers(32, 0x3000, n * (dtype.itemsize // 4), dtype=np.uint32)
        flat = codes.view(dtype)
    else:  # ints, datetimes, bytes, records: any bytes are valid
        flat = rng.integers(0, 256, n * dtype.itemsize, dtype=np.uint8).view(dtype)
    return flat.reshape(shape)


def make_sample(code: int, position: int) -> dict:
    kind, shape_i, layout_i, _, big, _ = decode(code)
    library, spec = KINDS[kind]
    rng = np.random.default_rng([code, position])
    np_dtype = (
        (np.dtype("i2") if spec == "bfloat16" else torch.empty(0, dtype=getattr(torch, spec)).numpy().dtype)
        if library == "torch"
        else numpy_dtype(spec, 0)
    )
    shape = SHAPES[shape_i] + ((BIG_BYTES // np_dtype.itemsize + 1,) if big else ())
    if library == "torch":
        tensor = torch.from_numpy(values(rng, np_dtype, shape))
        if spec == "bfloat16":  # any 16 bits are a bfloat16 (no torch op: nothing runs in a pool)
            tensor = tensor.view(torch.bfloat16)
        return {"x": tensor, "code": code}
    dtype = numpy_dtype(spec, position)
    layout = SAMPLE_LAYOUTS[layout_i]
    if layout == "strided" and shape:
        base = values(rng, dtype, (*shape[:-1], 2 * shape[-1]))
        x = base[..., ::2]
    elif layout == "reversed" and shape:
        x = values(rng, dtype, shape)[..., ::-1]
    else:
        x = values(rng, dtype, shape)
    return {"x": x, "code": code}


class Cases(Dataset):
    """Sample ``i`` is made from the case ``i`` encodes; module level so any start method works."""

    def __len__(self) -> int:
        return int(np.prod(RADIX, dtype=object))

    def __getitem__(self, index: int) -> dict:
        return make_sample(index >> 8 << 8, index & 0xFF)


def relayout(batch: dict, rng=None) -> dict:
    """The batch transform: a view of the collated batch (so the transport sees views)."""
    layout = BATCH_LAYOUTS[decode(int(batch["code"][0]))[3]]
    x = batch["x"]
    if layout == "reversed" and x.ndim:
        x = x.flip(0) if torch is not None and isinstance(x, torch.Tensor) else x[::-1]
    elif layout == "strided" and x.ndim:
        x = x[::2]
    elif layout == "first" and x.ndim:
        x = x[0]
    return {"x": x, "code": batch["code"]}


class Plan:
    """A batch sampler the test points at the batches of each example."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = [[0]]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def reference_stack(arrays: list[np.ndarray]) -> np.ndarray:
    """``np.stack``, except that a dtype shared by every sample is kept exactly (np.stack
    turns a non-native byte order into the native one; collate keeps the samples' dtype)."""
    if len({a.dtype for a in arrays}) > 1:
        return np.stack(arrays)  # widening: <U2 + <U3, datetime64[D] + [s]
    out = np.empty((len(arrays), *arrays[0].shape), arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def expected_batch(indices: list[int]):
    samples = [Cases()[i] for i in indices]
    xs = [s["x"] for s in samples]
    stacked = (
        torch.stack(xs) if torch is not None and isinstance(xs[0], torch.Tensor) else reference_stack(xs)
    )
    code = np.array([s["code"] for s in samples])
    if torch is not None and isinstance(stacked, torch.Tensor):
        code = torch.from_numpy(code)  # tensor samples: every field a tensor, as torch's default_collate
    return relayout({"x": stacked, "code": code})


def raw_bytes(x) -> bytes:
    if torch is not None and isinstance(x, torch.Tensor):
        dense = torch.empty(x.shape, dtype=x.dtype).copy_(x)  # strides of 1: viewable as bytes
        return dense.reshape(-1).view(torch.uint8).numpy().tobytes()
    return np.ascontiguousarray(x).tobytes()


def assert_same_batch(got, want, where: str) -> None:
    x, y = got["x"], want["x"]
    assert type(x) is type(y), where
    assert x.dtype == y.dtype, where
    assert tuple(x.shape) == tuple(y.shape), where
    if x.dtype in (np.longdouble, np.clongdouble):  # 80-bit values in 16 bytes: the padding is garbage
        np.testing.assert_array_equal(x, y)
    else:
        assert raw_bytes(x) == raw_bytes(y), where
    assert type(got["code"]) is type(want["code"]), where
    np.testing.assert_array_equal(np.asarray(got["code"]), np.asarray(want["code"]))
    assert np.asarray(got["code"]).dtype == np.int64


@pytest.fixture(scope="module")
def loaders():
    plan = Plan()
    made = {
        "num_workers=0": DataLoader(Cases(), batch_sampler=plan, batch_transform=relayout, seed=0),
        "threads": DataLoader(
            Cases(),
            batch_sampler=plan,
            batch_transform=relayout,
            num_workers=2,
            worker_type="thread",
            persistent_workers=True,
            seed=0,
        ),
    }
    if shared_memory_supported():
        made["processes"] = DataLoader(
            Cases(),
            batch_sampler=plan,
            batch_transform=relayout,
            num_workers=2,
            worker_type="process",
            persistent_workers=True,
            multiprocessing_context="fork",
            seed=0,
        )
    for loader in made.values():
        list(loader)  # start the workers before this process runs any torch op
    yield plan, made
    for loader in made.values():
        loader.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.integers(0, len(KINDS) - 1),
    shape=st.integers(0, len(SHAPES) - 1),
    sample_layout=st.integers(0, len(SAMPLE_LAYOUTS) - 1),
    batch_layout=st.integers(0, len(BATCH_LAYOUTS) - 1),
    big=st.booleans(),
    sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
)
def test_every_dtype_survives_every_worker_type(
    loaders, kind, shape, sample_layout, batch_layout, big, sizes
):
    plan, made = loaders
    code = encode(kind, shape, sample_layout, batch_layout, int(big), 0)
    plan.batches = [
        [code + start + j for j in range(n)] for start, n in zip(range(0, 9, 3), sizes, strict=False)
    ]
    wanted = [expected_batch(b) for b in plan.batches]
    for name, loader in made.items():
        got = list(loader)
        assert len(got) == len(wanted)
        for k, (g, w) in enumerate(zip(got, wanted, strict=True)):
            assert_same_batch(g, w, f"{name}, batch {k}, {KINDS[kind]}, shape {SHAPES[shape]}")


def test_the_cases_cover_both_sides_of_the_inline_threshold():
    small = expected_batch([encode(KINDS.index(("numpy", "?")), 2, 0, 0, 0, 0) + j for j in range(3)])
    large = expected_batch([encode(KINDS.index(("numpy", "?")), 0, 0, 0, 1, 0) + j for j in range(2)])
    assert small["x"].nbytes < INLINE_BYTES < large["x"].nbytes


def test_every_kind_once_on_both_sides_of_the_inline_threshold(loaders):
    """Each kind in one epoch (the property test above samples the combinations)."""
    plan, made = loaders
    plan.batches = [
        [encode(kind, SHAPES.index((3,)), layout, 0, big, 0) + j for j in range(3)]
        for kind in range(len(KINDS))
        for big in (0, 1)
        for layout in (0, 2)
    ]
    wanted = [expected_batch(b) for b in plan.batches]
    for name, loader in made.items():
        for k, (g, w) in enumerate(zip(list(loader), wanted, strict=True)):
            assert_same_batch(g, w, f"{name}, {KINDS[decode(plan.batches[k][0])[0]]}, batch {k}")


class GradSamples(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        return {"x": torch.full((2,), float(index), requires_grad=True), "y": index}


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_tensors_that_require_grad_keep_their_graph_in_process_and_are_refused_by_process_workers():
    for options in ({}, {"num_workers": 2, "worker_type": "thread"}):
        batch = next(iter(DataLoader(GradSamples(), batch_size=4, **options)))
        assert batch["x"].grad_fn is not None  # torch.stack's graph, as torch gives without workers
    if not shared_memory_supported():
        return
    with (
        DataLoader(GradSamples(), batch_size=4, num_workers=1, multiprocessing_context="fork") as loader,
        pytest.raises(RuntimeError, match=r"field \['x'\] is a tensor that requires grad.*detach"),
    ):
        next(iter(loader))


def test_numpy_batches_never_import_torch():
    """torch is imported only where a sample already is a tensor (``import torch`` costs ~700 MB)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from tinytorch import DataLoader, TensorDataset, default_collate\n"
        "from tinytorch.data.workers.transport import BlockReader, BlockWriter\n"
        "ds = TensorDataset(np.zeros((8, 3), np.float32), np.arange(8))\n"
        "for options in ({}, {'num_workers': 1, 'multiprocessing_context': 'fork'}):\n"
        "    with DataLoader(ds, batch_size=4, **options) as loader:\n"
        "        list(loader)\n"
        "default_collate([(np.zeros(2), 1, 'a', {'k': 1.0})] * 2)\n"
        "packed, fd = BlockWriter(0).write([np.zeros(40000), 1])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
