import pickle
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.data.transforms.compose import Compose
from tinytorch.data.transforms.fused import CropFlipNormalize
from tinytorch.data.transforms.image import RandomCrop, RandomHorizontalFlip
from tinytorch.data.transforms.kernels import crop_flip_normalize_kernel
from tinytorch.data.transforms.normalize import Normalize, ToFloat


def stepwise(steps, x, seed):
    """The steps applied one after another, unfused, from one generator."""
    rng = np.random.default_rng(seed)
    for step in steps:
        x = step(x, rng) if getattr(step, "random", False) else step(x)
    return x


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    c=st.integers(1, 4),
    height=st.integers(1, 9),
    width=st.integers(1, 17),
    padding=st.integers(0, 5),
    fill=st.integers(0, 255),
    p=st.sampled_from([0.0, 0.5, 1.0]),
    to_float=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_fused_output_is_byte_identical_to_the_steps(n, c, height, width, padding, fill, p, to_float, seed):
    x = np.random.default_rng(seed).integers(0, 256, (n, c, height, width), dtype=np.uint8)
    mean = np.linspace(0.2, 0.6, c) * (1 if to_float else 255)
    std = np.linspace(0.1, 0.3, c) * (1 if to_float else 255)
    steps = [
        RandomCrop((height, width), padding=padding, fill=fill),
        RandomHorizontalFlip(p),
        *([ToFloat()] if to_float else []),
        Normalize(mean, std),
    ]
    composed = Compose(steps)
    fused = composed.steps[0]
    assert isinstance(fused, CropFlipNormalize)
    got = composed(x, np.random.default_rng(seed))
    # Byte-identical to its two parts (crop+flip, then the normalization as Compose built it)...
    params = fused.draw(np.random.default_rng(seed), n)
    parts = fused.normalize.apply(fused.crop_flip.apply(x, params), None)
    assert got.dtype == parts.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), parts.view(np.uint32))
    # ...and to every step run alone, up to ToFloat's scaling being folded into Normalize's.
    np.testing.assert_allclose(got, stepwise(steps, x, seed), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("crop", "dtype"),
    [
        (RandomCrop(6, padding=2), np.uint8),  # smaller than the image
        (RandomCrop(8, padding=2, pad_mode="reflect"), np.uint8),
        (RandomCrop(8, padding=2, fill=0.5), np.uint8),  # a fill that uint8 truncates
        (RandomCrop(8, padding=2), np.float32),
    ],
)
def test_other_inputs_take_the_stepwise_path(crop, dtype):
    x = np.random.default_rng(0).integers(0, 256, (5, 3, 8, 8)).astype(dtype)
    steps = [crop, RandomHorizontalFlip(), Normalize([1, 2, 3], [4, 5, 6])]
    got = Compose(steps)(x, np.random.default_rng(7))
    np.testing.assert_array_equal(got, stepwise(steps, x, 7))


def test_threads_sharing_the_transform_get_their_own_buffers():
    composed = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), ToFloat(), Normalize(0.5, 0.25)])
    inputs = [np.random.default_rng(s).integers(0, 256, (s + 1, 3, 32, 32), dtype=np.uint8) for s in range(4)]
    expected = [stepwise(composed.transforms, x, s) for s, x in enumerate(inputs)]
    failures = []

    def work(s):
        for _ in range(30):
            if not np.array_equal(composed(inputs[s], np.random.default_rng(s)), expected[s]):
                failures.append(s)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_pickles_for_process_workers():
    composed = Compose([RandomCrop(8, padding=1), RandomHorizontalFlip(), Normalize(0, 1)])
    x = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    first = composed(x, np.random.default_rng(1))
    copy = pickle.loads(pickle.dumps(composed))
    np.testing.assert_array_equal(copy(x, np.random.default_rng(1)), first)
    assert "CropFlipNormalize" in repr(copy.steps[0])


needs_numba = pytest.mark.skipif(
    crop_flip_normalize_kernel() is None, reason="numba (the 'fast' extra) is not installed"
)


@needs_numba
@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 6),
    c=st.integers(1, 4),
    height=st.integers(1, 9),
    width=st.integers(1, 17),
    padding=st.integers(0, 20),  # wider than the image too: whole rows and columns of fill
    fill=st.integers(0, 255),
    p=st.sampled_from([0.0, 0.5, 1.0]),
    to_float=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_the_compiled_kernel_gives_the_numpy_paths_bytes(
    n, c, height, width, padding, fill, p, to_float, seed
):
    x = np.random.default_rng(seed).integers(0, 256, (n, c, height, width), dtype=np.uint8)
    mean = np.linspace(0.2, 0.6, c) * (1 if to_float else 255)
    std = np.linspace(0.1, 0.3, c) * (1 if to_float else 255)
    steps = [
        RandomCrop((height, width), padding=padding, fill=fill),
        RandomHorizontalFlip(p),
        *([ToFloat()] if to_float else []),
        Normalize(mean, std),
    ]
    fused = Compose(steps).steps[0]
    assert fused.backend == "numba"
    params = fused.draw(np.random.default_rng(seed), n)
    compiled = fused.apply(x, params)
    fused.backend = "numpy"
    planes = fused.apply(x, params)
    parts = fused.normalize.apply(fused.crop_flip.apply(x, params), None)
    np.testing.assert_array_equal(compiled.view(np.uint32), planes.view(np.uint32))
    np.testing.assert_array_equal(compiled.view(np.uint32), parts.view(np.uint32))


@needs_numba
def test_the_compiled_kernel_reads_non_contiguous_batches_and_keeps_the_input():
    composed = Compose([RandomCrop(8, padding=3), RandomHorizontalFlip(), Normalize([1, 2, 3], [4, 5, 6])])
    x = np.random.default_rng(0).integers(0, 256, (6, 3, 8, 16), dtype=np.uint8)[:, :, :, ::2]
    before = x.copy()
    got = composed(x, np.random.default_rng(4))
    np.testing.assert_array_equal(got, stepwise(composed.transforms, x, 4))
    np.testing.assert_array_equal(x, before)


def test_without_numba_the_numpy_path_is_used(monkeypatch):
    from tinytorch.data.transforms import fused as fused_module

    monkeypatch.setattr(fused_module, "crop_flip_normalize_kernel", lambda: None)
    composed = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip(), Normalize(0, 1)])
    assert composed.steps[0].backend == "numpy"
    x = np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8), dtype=np.uint8)
    np.testing.assert_array_equal(composed(x, np.random.default_rng(2)), stepwise(composed.transforms, x, 2))
