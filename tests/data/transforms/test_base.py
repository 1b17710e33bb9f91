import numpy as np
import pytest

from tinytorch import DataLoader, Dataset, TensorDataset
from tinytorch.data.seeding import BatchContext, batch_context
from tinytorch.data.transforms.base import SampleList, is_sample_list, resolve_rng
from tinytorch.data.transforms.compose import Compose
from tinytorch.data.transforms.image import RandomCrop, RandomHorizontalFlip
from tinytorch.data.transforms.normalize import Normalize, ToFloat
from tinytorch.data.transforms.resize import CenterCrop, RandomResizedCrop, Resize

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def augment():
    return Compose(
        [
            RandomCrop(32, padding=4),
            RandomHorizontalFlip(),
            ToFloat(),
            Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )


def batch(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def test_random_transform_without_a_generator_says_what_to_do():
    with pytest.raises(
        ValueError, match=r"rng=numpy.random.default_rng\(seed\), or use it inside a DataLoader"
    ):
        RandomHorizontalFlip()(batch())
    with pytest.raises(TypeError, match="rng=numpy.random.Generator"):
        RandomHorizontalFlip()(batch(), rng=42)


def test_deterministic_transform_needs_no_generator():
    assert ToFloat()(batch()).dtype == np.float32


def test_generator_comes_from_the_batch_context():
    with batch_context(BatchContext(1, 2, 3)):
        a = augment()(batch())
    b = augment()(batch(), BatchContext(1, 2, 3).rng)
    np.testing.assert_array_equal(a, b)
    with batch_context(BatchContext(1, 2, 3)):
        assert resolve_rng(None, "x").random() == BatchContext(1, 2, 3).rng.random()


def test_tuple_batches_transform_the_first_item():
    x, y = batch(), np.arange(4)
    out = augment()((x, y), np.random.default_rng(0))
    assert isinstance(out, tuple)
    assert out[0].shape == (4, 3, 32, 32)
    assert out[1] is y
    listed = augment()([x, y], np.random.default_rng(0))
    assert isinstance(listed, list)
    np.testing.assert_array_equal(listed[0], out[0])


def test_sample_and_batch_shapes():
    one = augment()(batch(1)[0], np.random.default_rng(0))
    assert one.shape == (3, 32, 32)
    with pytest.raises(ValueError, match=r"got shape \(32, 32\)"):
        augment()(np.zeros((32, 32), np.uint8), np.random.default_rng(0))


def test_golden_values_of_a_seeded_augmentation():
    # Pins the random stream of the standard CIFAR augmentation: a change must be deliberate.
    out = augment()(batch(), np.random.default_rng(2024))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 16, 16], [1.6781, 0.8683, -0.9734, 1.17], atol=1e-4)
    np.testing.assert_allclose(float(out.sum()), -2973.81, atol=0.05)


def test_as_batch_transform_is_identical_for_equal_seeds():
    ds = TensorDataset(batch(50), np.arange(50))
    a = [x for x, _ in DataLoader(ds, batch_size=16, shuffle=True, seed=3, batch_transform=augment())]
    b = [x for x, _ in DataLoader(ds, batch_size=16, shuffle=True, seed=3, batch_transform=augment())]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert a[0].dtype == np.float32


def grayscale(n=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8), dtype=np.uint8)


def test_a_loader_batch_of_2d_images_is_refused_not_taken_for_channels():
    # Issue 16 item 7: (N, H, W) was one N-channel image: one crop for the whole batch.
    ds = TensorDataset(grayscale(), np.arange(10))
    for t in (RandomCrop(6), Normalize([0.5] * 4, [0.2] * 4), augment()):
        loader = DataLoader(ds, batch_size=4, batch_transform=t)
        with pytest.raises(
            ValueError, match=r"expects a batch \(N, C, H, W\) here.*got shape \(4, 8, 8\).*x\[:, None\]"
        ):
            next(iter(loader))
    fixed = DataLoader(
        TensorDataset(grayscale()[:, None], np.arange(10)), batch_size=10, batch_transform=RandomCrop(6)
    )
    x, _ = next(iter(fixed))
    assert x.shape == (10, 1, 6, 6)


def test_the_loader_says_whether_its_data_is_a_batch():
    x = grayscale()[:, None]
    seen = []

    class PerSample(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            seen.append(RandomCrop(6)(x[i]).shape)  # one sample, rng from the sample's context
            return x[i], i

    list(DataLoader(PerSample(), batch_size=5))
    assert seen == [(1, 6, 6)] * 10
    # batch_size=None: the batch stage sees one sample (C, H, W), and the loader says so.
    unbatched = DataLoader(TensorDataset(x, np.arange(10)), batch_size=None, batch_transform=RandomCrop(6))
    assert next(iter(unbatched))[0].shape == (1, 6, 6)


def test_per_sample_transform_refuses_a_batch():
    class Bad(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return RandomCrop(6)(grayscale()[:3, None]), 0  # a batch where one sample belongs

    with pytest.raises(ValueError, match=r"expects one sample \(C, H, W\) here.*batched=True"):
        next(iter(DataLoader(Bad(), batch_size=2)))


def test_outside_a_loader_the_rank_or_batched_decides():
    rng = np.random.default_rng(0)
    image, images = batch(1)[0], batch(3)
    assert RandomCrop(30)(image, rng).shape == (3, 30, 30)  # (C, H, W): one image
    assert RandomCrop(30)(images, rng).shape == (3, 3, 30, 30)
    with pytest.raises(ValueError, match=r"expects a batch \(N, C, H, W\) here"):
        RandomCrop(30)(image, rng, batched=True)
    with pytest.raises(ValueError, match=r"expects one sample \(C, H, W\) here"):
        RandomCrop(30)(images, rng, batched=False)
    with pytest.raises(
        ValueError, match=r"got shape \(32, 32\); for single-channel images add the channel axis"
    ):
        ToFloat()(np.zeros((32, 32), np.uint8))
    with pytest.raises(TypeError, match="batched must be True, False or None"):
        ToFloat()(image, batched="yes")


def test_a_list_of_images_is_a_batch_stacked_when_sizes_agree():
    rng = np.random.default_rng(0)
    images = list(batch(3))
    out = RandomHorizontalFlip(1.0)(images, rng)
    np.testing.assert_array_equal(out, batch(3)[..., ::-1])
    labels = np.arange(3)
    out, same = RandomHorizontalFlip(1.0)((images, labels), rng)  # (images, labels) batch
    assert out.shape == (3, 3, 32, 32)
    assert same is labels
    with pytest.raises(
        ValueError,
        match=r"item 1: \(3, 30, 32\).*put Resize\(\(h, w\)\), CenterCrop or RandomResizedCrop first",
    ):
        ToFloat()([images[0], images[1][:, :30]])
    # A list that is one sample's items (e.g. image and mask) in a per-sample context stays a container.
    pair = ToFloat()(images[:2], batched=False)
    assert isinstance(pair, list)
    assert pair[0].dtype == np.float32
    assert pair[1] is images[1]


# -- lists: samples or fields (hostile-tester item 6) --------------------------------------------


def test_a_one_array_loader_batch_of_2d_images_is_refused_not_taken_for_channels():
    """Hostile-tester item 6: TensorDataset(x) with x (4, 8, 8) gave the batch [x] with x
    (2, 8, 8), taken for a list of one 2-channel photo: RandomCrop gave (1, 2, 4, 4) and
    RandomHorizontalFlip flipped both images together."""
    x = grayscale(4)
    for t in (RandomCrop(4), RandomHorizontalFlip(), augment()):
        for ds in (TensorDataset(x), TensorDataset(x, x)):  # [x] and [x, y] (an image and a mask)
            loader = DataLoader(ds, batch_size=2, batch_transform=t)
            with pytest.raises(
                ValueError, match=r"expects a batch \(N, C, H, W\) here.*shape \(2, 8, 8\).*x\[:, None\]"
            ):
                next(iter(loader))
    (fixed,) = next(iter(DataLoader(TensorDataset(x[:, None]), batch_size=2, batch_transform=RandomCrop(4))))
    assert fixed.shape == (2, 1, 4, 4)


class Photos(Dataset):
    """(photo (3, H_i, W_i), label): sizes differ, or all one size."""

    def __init__(self, sizes):
        self.sizes = sizes

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, i):
        h, w = self.sizes[i]
        return np.full((3, h, w), i, np.uint8), i


def photos_and_labels(samples):
    return [s[0] for s in samples], np.array([s[1] for s in samples])


@pytest.mark.parametrize("sizes", [[(10, 12), (14, 9), (12, 12), (9, 20), (16, 16)], [(10, 12)] * 5])
def test_photos_next_to_labels_are_a_list_of_samples_whatever_their_sizes(sizes):
    # Five photos in batches of 2: the last batch is one photo, a list of one (3, H, W) array.
    for t in (Resize((6, 6)), CenterCrop(6), RandomResizedCrop(6), Compose([Resize(8), CenterCrop(6)])):
        batches = list(
            DataLoader(Photos(sizes), batch_size=2, collate_fn=photos_and_labels, batch_transform=t)
        )
        assert [images.shape for images, _ in batches] == [(2, 3, 6, 6), (2, 3, 6, 6), (1, 3, 6, 6)]
        assert [labels.tolist() for _, labels in batches] == [[0, 1], [2, 3], [4]]
        assert [int(images[0, 0, 0, 0]) for images, _ in batches] == [0, 2, 4]  # each photo its own


def test_a_bare_list_of_photos_of_different_sizes_is_a_batch():
    sizes = [(10, 15), (20, 30), (8, 12), (14, 9)]  # after Resize(8) the first three share a shape
    loader = DataLoader(
        Photos(sizes),
        batch_size=3,
        collate_fn=lambda samples: [s[0] for s in samples],
        batch_transform=Compose([Resize(8), CenterCrop(6)]),
    )
    batches = iter(loader)
    assert next(batches).shape == (3, 3, 6, 6)
    # A bare list of one photo (or of photos of one size) is a loader's list of fields: refused
    # with the fix; (photos, labels) is the form that holds for any sizes (test above).
    with pytest.raises(
        ValueError, match=r"got a list of 1 array\(s\) of shape \(3, 14, 9\).*\(images, labels\)"
    ):
        next(batches)
    resized = Resize(8)([np.zeros((3, h, w), np.uint8) for h, w in sizes[:3]], batched=True)
    assert isinstance(resized, SampleList)  # one shape now, still a list of samples
    assert {r.shape for r in resized} == {(3, 8, 12)}
    assert RandomHorizontalFlip(1.0)(resized, np.random.default_rng(0), batched=True).shape == (3, 3, 8, 12)


def test_a_list_field_is_samples_only_when_its_length_is_the_batchs():
    labels = np.arange(5)
    rng = np.random.default_rng(0)
    # A nested sample ((image (H, W), mask (H, W)), label): the batch [[images, masks], labels].
    nested = [[grayscale(5), grayscale(5, seed=1)], labels]
    with pytest.raises(ValueError, match=r"got shape \(5, 8, 8\).*x\[:, None\]"):
        RandomCrop(6)(nested, rng, batched=True)
    photos = [np.zeros((3, 8, 8), np.uint8)] * 5
    out, same = RandomCrop(6)([photos, labels], rng, batched=True)
    assert out.shape == (5, 3, 6, 6)
    assert same is labels
    assert is_sample_list(photos, 3, True, (labels,))
    assert not is_sample_list(photos[:2], 3, True, (labels,))
    assert not is_sample_list(photos, 3, True)  # a whole batch of one shape: fields
    assert is_sample_list(photos, 3, None)  # outside a loader: the rank decides
    assert not is_sample_list(photos, 3, False)
