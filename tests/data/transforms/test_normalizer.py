import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch import DataLoader, TensorDataset
from tinytorch.data.transforms.normalize import Normalize
from tinytorch.data.transforms.normalizer import Moments, Normalizer


def images(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=[[[100]], [[50]], [[200]]], scale=[[[20]], [[5]], [[10]]], size=(n, 3, 8, 8))
    return np.clip(x, 0, 255).astype(np.uint8)


def test_per_feature_is_the_seeds_axis_zero_statistics():
    x = np.random.default_rng(0).normal(size=(100, 5)) * [1, 2, 3, 4, 5] + 7
    n = Normalizer().fit(x)
    np.testing.assert_allclose(n.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(n.std, x.std(axis=0), rtol=1e-12)
    out = n.transform(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-5)


def test_per_channel_image_statistics():
    x = images()
    n = Normalizer(mode="per_channel").fit(x)
    assert n.mean.shape == (3,)
    np.testing.assert_allclose(n.mean, x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(n.std, x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-12)
    out = n.transform(x)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-4)
    assert n.transform(x[0]).shape == (3, 8, 8)


def test_inverse_transform_round_trips():
    x = images()
    n = Normalizer(mode="per_channel").fit(x)
    np.testing.assert_allclose(n.inverse_transform(n.transform(x)), x, atol=1e-3)


def test_streaming_fit_through_a_loader_equals_full_fit():
    x = images(n=1000)
    full = Normalizer(mode="per_channel").fit(x)
    streamed = Normalizer(mode="per_channel").fit(
        DataLoader(TensorDataset(x, np.arange(1000)), batch_size=77)
    )
    np.testing.assert_allclose(streamed.mean, full.mean, rtol=1e-9)
    np.testing.assert_allclose(streamed.std, full.std, rtol=1e-9)
    assert streamed.count == full.count == 1000 * 64


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=8), st.integers(0, 1000))
def test_moments_merge_is_exact(sizes, seed):
    x = np.random.default_rng(seed).normal(size=(sum(sizes), 3)) * 1000 + 1e6
    merged = None
    start = 0
    for s in sizes:
        part = Moments.of(x[start : start + s], (0,))
        merged = part if merged is None else merged.merge(part)
        start += s
    np.testing.assert_allclose(merged.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.sqrt(merged.m2 / merged.count), x.std(axis=0), rtol=1e-9)


def test_chunked_fit_matches_on_large_uint8(monkeypatch):
    monkeypatch.setattr("tinytorch.data.transforms.normalizer.CHUNK_BYTES", 8 * 64 * 3 * 7)
    x = images(n=100)
    chunked = Normalizer(mode="per_channel").fit(x)
    np.testing.assert_allclose(chunked.std, x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-9)


def test_zero_variance_features_are_only_centred():
    x = np.column_stack([np.full(10, 3.0), np.arange(10.0)])
    n = Normalizer().fit(x)
    out = n.transform(np.array([[5.0, 4.5]]))
    assert out[0, 0] == 2.0  # centred, divided by 1
    np.testing.assert_allclose(n.inverse_transform(out), [[5.0, 4.5]], atol=1e-5)


def test_transform_before_fit():
    with pytest.raises(ValueError, match=r"needs fitted statistics: call fit\(train_data\)"):
        Normalizer().transform(np.zeros((2, 3)))


def test_shape_mismatch_names_both_shapes():
    n = Normalizer().fit(np.zeros((4, 3)) + np.arange(3))
    with pytest.raises(ValueError, match=r"fitted on samples of shape \(3,\), got samples of shape \(4,\)"):
        n.transform(np.zeros((2, 4)))
    c = Normalizer(mode="per_channel").fit(images(n=4))
    with pytest.raises(ValueError, match="fitted on images with 3 channels"):
        c.transform(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="fits images"):
        Normalizer(mode="per_channel").fit(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="mode must be"):
        Normalizer(mode="global")


def test_state_dict_is_json_and_restores():
    n = Normalizer(mode="per_channel", eps=1e-6, dtype=np.float64).fit(images())
    state = json.loads(json.dumps(n.state_dict()))
    assert state["format"] == "tinytorch.Normalizer"
    assert state["version"] == 1
    for restored in (
        Normalizer(mode="per_channel", eps=1e-6, dtype=np.float64).load_state_dict(state),
        Normalizer.from_state_dict(state),
    ):
        assert (restored.mode, restored.eps, restored.dtype) == ("per_channel", 1e-6, np.float64)
        assert restored.count == n.count
        np.testing.assert_array_equal(restored.mean, n.mean)
        np.testing.assert_array_equal(restored.std, n.std)  # floats survive JSON exactly
        np.testing.assert_array_equal(restored.transform(images(n=3)), n.transform(images(n=3)))


def test_fitting_goes_on_after_loading():
    x = np.random.default_rng(1).normal(size=(50, 3))
    first = Normalizer().fit(x[:20])
    resumed = Normalizer.from_state_dict(json.loads(json.dumps(first.state_dict()))).partial_fit(x[20:])
    np.testing.assert_allclose(resumed.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(resumed.std, x.std(axis=0), rtol=1e-12)


def test_state_of_another_configuration_is_refused_naming_the_field():
    state = Normalizer(mode="per_channel").fit(images()).state_dict()
    with pytest.raises(
        ValueError,
        match=r"field 'mode' of the state is 'per_channel', but this Normalizer has mode='per_feature'.*from_state_dict",
    ):
        Normalizer().load_state_dict(state)
    with pytest.raises(
        ValueError, match=r"field 'eps' of the state is 1e-08, but this Normalizer has eps=0.001"
    ):
        Normalizer(mode="per_channel", eps=1e-3).load_state_dict(state)
    with pytest.raises(
        ValueError, match=r"field 'dtype' of the state is 'float32', but this Normalizer has dtype='float64'"
    ):
        Normalizer(mode="per_channel", dtype=np.float64).load_state_dict(state)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"format": "tinytorch.DataLoader"},
            r"field 'format' must be 'tinytorch.Normalizer' \(this is not a Normalizer's state\)",
        ),
        ({"version": 2}, r"field 'version' must be 1 \(a state of another version"),
        ({"version": True}, "field 'version' must be 1"),
        ({"mode": "global"}, "field 'mode' must be 'per_feature' or 'per_channel', got 'global'"),
        ({"eps": -1.0}, "field 'eps' must be a number > 0, got -1"),
        ({"dtype": "int8"}, "field 'dtype' must be the name of a floating numpy dtype"),
        ({"count": 0}, "field 'count' must be a positive int, got 0"),
        ({"count": 2.5}, "field 'count' must be a positive int, got float 2.5"),
        ({"shape": [4]}, r"field 'mean' must be a list of 4 finite numbers \(shape \[4\]\)"),
        ({"shape": "3"}, "field 'shape' must be a list of positive ints"),
        # Regressions: these loaded; [0] then failed at transform, [2**32, 2**32] raised numpy's
        # "cannot reshape array of size 0" (np.prod wrapped around to 0), None became float64.
        ({"shape": [0], "mean": [], "m2": []}, r"field 'shape' must be a list of positive ints"),
        (
            {"shape": [2**32, 2**32], "mean": [], "m2": []},
            r"field 'mean' must be a list of 18446744073709551616",
        ),
        ({"dtype": None}, "field 'dtype' must be the name of a floating numpy dtype"),
        ({"mean": [0.0, float("nan"), 1.0]}, "field 'mean' must be a list of 3 finite numbers"),
        ({"m2": [1.0, -1.0, 1.0]}, "field 'm2' must be sums of squared deviations, none negative"),
        ({"m2": ["a", "b", "c"]}, "field 'm2' must be a list of 3 numbers"),
    ],
)
def test_invalid_states_name_the_field(change, message):
    state = {**Normalizer().fit(np.random.default_rng(0).random((5, 3))).state_dict(), **change}
    with pytest.raises(ValueError, match=message):
        Normalizer().load_state_dict(state)
    with pytest.raises(ValueError, match=message):
        Normalizer.from_state_dict(state)


@pytest.mark.parametrize("shape", [[3, 4], [], [12, 1, 1]])
def test_a_per_channel_state_must_hold_one_statistic_per_channel(shape):
    # Regression: a per-channel state of shape [3, 4] or [] loaded, then transform failed with
    # numpy's "operands could not be broadcast" or "numpy.float64 has no len()".
    size = int(np.prod(shape))
    state = {**Normalizer(mode="per_channel").fit(images()).state_dict(), "shape": shape}
    state.update(mean=[0.0] * size, m2=[1.0] * size)
    with pytest.raises(ValueError, match=r"field 'shape' must be \[C\], one statistic per channel"):
        Normalizer.from_state_dict(state)


def test_a_loaded_state_does_not_follow_later_changes_to_the_arrays_it_was_given():
    # Regression: from_state_dict kept a float64 array passed as "mean" without copying it, so
    # changing that array afterwards changed the Normalizer's statistics.
    state = Normalizer().fit(np.arange(6.0).reshape(3, 2)).state_dict()
    mean = np.array(state["mean"])
    restored = Normalizer.from_state_dict({**state, "mean": mean})
    mean[0] = 99.0
    np.testing.assert_array_equal(restored.mean, [2.0, 3.0])


def test_state_errors_change_nothing_and_missing_fields_are_named():
    n = Normalizer().fit(np.arange(6.0).reshape(3, 2))
    state = n.state_dict()
    del state["m2"]
    with pytest.raises(ValueError, match=r"Normalizer state has no field 'm2' \(fields: \["):
        n.load_state_dict(state)
    np.testing.assert_array_equal(n.mean, [2.0, 3.0])
    with pytest.raises(TypeError, match="takes the dict that Normalizer.state_dict\\(\\) returned, got list"):
        n.load_state_dict([1, 2])
    with pytest.raises(ValueError, match=r"Normalizer.state_dict needs fitted statistics"):
        Normalizer().state_dict()


def test_normalizer_as_dataset_transform_and_batch_transform():
    x = images(n=20)
    n = Normalizer(mode="per_channel").fit(x)
    ds = TensorDataset(x, np.arange(20))
    xb, yb = next(iter(DataLoader(ds, batch_size=20, batch_transform=n)))
    np.testing.assert_array_equal(xb, n.transform(x))
    assert yb.tolist() == list(range(20))
    np.testing.assert_array_equal(n(x[0]), n.transform(x)[0])


def test_transform_is_normalize_s_formula():
    # One formula: per channel, Normalizer.transform is byte-identical to Normalize with the
    # fitted statistics. Values pinned at ed1838a (which computed (x - mean) * (1 / std); the
    # two formulas differ by float32 rounding only).
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (7, 3, 5, 6), dtype=np.uint8)
    n = Normalizer(mode="per_channel").fit(x)
    out = n.transform(x)
    np.testing.assert_array_equal(out.view(np.uint32), Normalize(n.mean, n.std)(x).view(np.uint32))
    np.testing.assert_allclose(
        out[:2, :, 1, 2],
        [
            [1.696415901184082, 1.2302396297454834, 0.42385101318359375],
            [-0.8734605312347412, -1.4741144180297852, 0.12644721567630768],
        ],
        rtol=2e-7,
    )
    f = rng.normal(size=(9, 4)) * [1, 10, 100, 1000] + [0, 5, -3, 1e4]
    np.testing.assert_allclose(
        Normalizer().fit(f).transform(f)[:2],
        [
            [-0.14722615480422974, -0.914929986000061, -1.117242693901062, 1.1821855306625366],
            [-0.973297119140625, -1.2821396589279175, 0.7594139575958252, -1.0087960958480835],
        ],
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("mode", "data"),
    [
        ("per_feature", np.zeros((0, 3))),
        ("per_feature", np.zeros((4, 0))),
        ("per_channel", np.zeros((0, 3, 4, 4))),
    ],
)
def test_fitting_on_no_values_raises(mode, data):
    with pytest.raises(ValueError, match=r"got no values \(shape"):
        Normalizer(mode=mode).fit(data)
    with pytest.raises(ValueError, match="got no values"):
        Normalizer(mode=mode).partial_fit(data)
    if len(data) == 0:
        good = np.random.default_rng(0).random((2, *data.shape[1:]))
        with pytest.raises(ValueError, match=r"got no values.*in batch 1 of the iterable"):
            Normalizer(mode=mode).fit(iter([good, data]))


def test_nan_and_inf_are_refused_with_count_and_position():
    x = np.ones((6, 3))
    x[2, 1] = np.nan
    x[4, 0] = np.inf
    x[5, 2] = -np.inf
    with pytest.raises(
        ValueError, match=r"got 3 NaN or infinite value\(s\).*first at index \(2, 1\) \(nan\)"
    ):
        Normalizer().fit(x)
    images = np.ones((4, 3, 2, 2), np.float32)
    images[3, 2, 1, 0] = np.inf
    with pytest.raises(ValueError, match=r"got 1 NaN.*first at index \(3, 2, 1, 0\) \(inf\)"):
        Normalizer(mode="per_channel").fit(images)


def test_a_failed_partial_fit_leaves_the_statistics_as_they_were(monkeypatch):
    monkeypatch.setattr("tinytorch.data.transforms.normalizer.CHUNK_BYTES", 8 * 3 * 2)  # chunks of 2 rows
    n = Normalizer().fit(np.arange(12.0).reshape(4, 3))
    mean, count = n.mean.copy(), n.count
    bad = np.ones((6, 3))
    bad[5, 0] = np.nan  # in the last chunk
    with pytest.raises(ValueError, match=r"first at index \(5, 0\)"):
        n.partial_fit(bad)
    np.testing.assert_array_equal(n.mean, mean)
    assert n.count == count


@pytest.mark.parametrize("eps", [0, -1e-8, 0.0, float("nan")])
def test_eps_must_be_positive(eps):
    with pytest.raises(ValueError, match="Normalizer eps must be a number > 0"):
        Normalizer(eps=eps)


def test_bad_arguments_name_what_to_pass():
    with pytest.raises(TypeError, match="Normalizer eps must be a number"):
        Normalizer(eps="small")
    assert Normalizer(eps=np.float32(1e-6)).eps == pytest.approx(1e-6)
    with pytest.raises(TypeError, match="dtype must be a floating dtype such as numpy.float32, got int32"):
        Normalizer(dtype=np.int32)
    with pytest.raises(TypeError, match="fits real numbers, got an array of dtype <U1"):
        Normalizer().fit(np.array([["a"]]))
    with pytest.raises(
        ValueError,
        match=r"fits images \(N, C, H, W\), got shape \(4, 8, 8\); for single-channel images add the channel axis",
    ):
        Normalizer(mode="per_channel").fit(np.zeros((4, 8, 8)))


def test_a_list_of_rows_is_data_not_a_batch_with_labels():
    # It used to fit on the first row only.
    n = Normalizer().fit([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(n.mean, [2.0, 3.0])
    n = Normalizer().fit([np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0, 1])])  # (data, labels)
    np.testing.assert_array_equal(n.mean, [2.0, 3.0])


def test_in_a_loader_batch_per_channel_needs_the_channel_axis():
    x = images(n=8)
    n = Normalizer(mode="per_channel").fit(x[:, :1])
    gray = TensorDataset(x[:, 0], np.arange(8))  # (N, H, W)
    with pytest.raises(ValueError, match=r"expects a batch \(N, C, H, W\) here.*x\[:, None\]"):
        next(iter(DataLoader(gray, batch_size=3, batch_transform=n)))
    xb, _ = next(iter(DataLoader(TensorDataset(x[:, :1], np.arange(8)), batch_size=3, batch_transform=n)))
    assert xb.shape == (3, 1, 8, 8)
    assert n.transform(x[0, :1]).shape == (1, 8, 8)  # outside a loader: (C, H, W) is one image
