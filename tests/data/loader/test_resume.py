"""Mid-epoch resume (issue 15 item 1): the batches after load_state_dict are the ones an
uninterrupted run would have yielded next, byte for byte, for every dataset kind and worker setup."""

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.cifar_files import cifar10_files, make_tar, md5
from support.worker_datasets import Numbers, Uneven
from tinytorch import (
    BatchSampler,
    CIFAR10Dataset,
    Compose,
    DataLoader,
    Dataset,
    IndexShuffleSampler,
    RandomCrop,
    RandomHorizontalFlip,
    RandomSampler,
    Sampler,
    ShardedDataset,
    TensorDataset,
    WindowedShuffleSampler,
    write_shards,
)
from tinytorch.data.loader.user_sampler import order_follows_epoch


def digests(batches):
    out = []
    for batch in batches:
        parts = batch if isinstance(batch, (list, tuple)) else [batch]
        out.append(
            hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts)).hexdigest()[:16]
        )
    return out


def images(n=40):
    rng = np.random.default_rng(0)
    return TensorDataset(rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8), np.arange(n))


AUGMENT = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip()])


def augmented_images(**kwargs):
    return DataLoader(images(), batch_size=6, shuffle=True, seed=3, batch_transform=AUGMENT, **kwargs)


def resumed_run(make, k, *, resume_kwargs=None, epochs=2):
    """Run epoch 0 for k batches, save, and continue in a fresh loader: the batches after the save."""
    loader = make()
    epoch = iter(loader)
    for _ in range(k):
        next(epoch)
    state = json.loads(json.dumps(loader.state_dict()))  # it is plain JSON
    del epoch
    loader.close()
    fresh = make(**(resume_kwargs or {}))
    fresh.load_state_dict(state)
    out = []
    for _ in range(epochs):
        out += digests(fresh)
    fresh.close()
    return out


def uninterrupted(make, epochs=2):
    loader = make()
    out = []
    for _ in range(epochs):
        out += digests(loader)
    loader.close()
    return out


# ---- in memory, every batch index, every worker setup ------------------------------------------


@pytest.mark.parametrize("workers", [{}, {"num_workers": 2, "worker_type": "thread"}])
def test_resume_at_every_batch_of_an_augmented_epoch(workers):
    def make(**kwargs):
        return augmented_images(**{**workers, **kwargs})

    reference = uninterrupted(make)
    per_epoch = len(make())
    for k in range(per_epoch + 1):
        assert resumed_run(make, k) == reference[k:], k


@pytest.mark.parametrize(
    ("saved_with", "resumed_with"),
    [
        ({}, {"num_workers": 2}),
        ({"num_workers": 2}, {}),
        ({"num_workers": 2}, {"num_workers": 1, "worker_type": "thread"}),
        ({"num_workers": 2, "persistent_workers": True}, {"num_workers": 2}),
    ],
)
def test_resume_with_another_number_or_kind_of_workers(saved_with, resumed_with):
    reference = uninterrupted(augmented_images)
    for k in (0, 3, 7):
        got = resumed_run(
            lambda **kw: augmented_images(**{**saved_with, **kw}), k, resume_kwargs=resumed_with
        )
        assert got == reference[k:]


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 30),
    batch_size=st.integers(1, 7),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    k=st.integers(0, 31),
    seed=st.integers(0, 2**32),
)
def test_resume_property(n, batch_size, drop_last, shuffle, k, seed):
    def make(**kwargs):
        data = TensorDataset(np.arange(n))
        return DataLoader(
            data, batch_size=batch_size, drop_last=drop_last, shuffle=shuffle, seed=seed, **kwargs
        )

    reference = uninterrupted(make, epochs=2)
    k = min(k, len(make()))
    assert resumed_run(make, k) == reference[k:]


def test_state_between_epochs_and_before_any():
    loader = augmented_images()
    assert loader.state_dict()["epoch"] == 0
    assert loader.state_dict()["batches_delivered"] == 0
    list(loader)
    state = loader.state_dict()
    assert (state["epoch"], state["batches_delivered"]) == (1, 0)
    loader.set_epoch(5)
    assert loader.state_dict()["epoch"] == 5
    fresh = augmented_images()
    fresh.load_state_dict(state)
    assert fresh.epoch == 1
    assert digests(fresh) == uninterrupted(augmented_images)[len(loader) :]


def test_the_state_is_small_json_with_no_data():
    loader = augmented_images(num_workers=2)
    epoch = iter(loader)
    next(epoch)
    state = loader.state_dict()
    assert len(json.dumps(state)) < 400
    assert state["format"] == "tinytorch.DataLoader"
    assert state["version"] == 1
    assert (state["epoch"], state["batches_delivered"], state["seed"]) == (0, 1, 3)
    loader.close()


# ---- what resuming reads -----------------------------------------------------------------------


class CountingReads(Dataset):
    def __init__(self, n=40):
        self.n, self.read = n, []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.read.append(i)
        return i


def test_resuming_a_map_style_epoch_reads_nothing_before_the_resume_point():
    data = CountingReads()
    loader = DataLoader(data, batch_size=4, shuffle=True, seed=1)
    order = [int(x) for b in loader for x in b]
    state = loader.state_dict()
    state["epoch"], state["batches_delivered"] = 0, 7
    data.read.clear()
    resumed = DataLoader(data, batch_size=4, shuffle=True, seed=1)
    resumed.load_state_dict(state)
    rest = [int(x) for b in resumed for x in b]
    assert rest == order[28:]
    assert data.read == order[28:]  # not one sample before the resume point


# ---- CIFAR and shards --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    archive = make_tar(cifar10_files(per_batch=8), folder="cifar-10-batches-py")
    (root / "cifar-10-python.tar.gz").write_bytes(archive)
    return CIFAR10Dataset(root, md5=md5(archive), download=False)


def test_resume_over_cifar_with_process_workers(cifar):
    def make(**kwargs):
        return DataLoader(cifar, batch_size=8, shuffle=True, seed=2, batch_transform=AUGMENT, **kwargs)

    reference = uninterrupted(make)
    for k in (0, 2, 4, 5):
        assert resumed_run(make, k, resume_kwargs={"num_workers": 2}) == reference[k:]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shards") / "data"
    write_shards(images(50), directory, samples_per_shard=8)
    return ShardedDataset(directory)


@pytest.mark.parametrize("order", ["random", "windowed", "index"])
@pytest.mark.parametrize("workers", [{}, {"num_workers": 2}])
def test_resume_over_shards_with_every_sampler(shards, order, workers):
    def make(**kwargs):
        sampler = {
            "random": RandomSampler(shards, seed=4),
            "windowed": WindowedShuffleSampler(shards, window=2, seed=4),
            "index": IndexShuffleSampler(shards, seed=4),
        }[order]
        return DataLoader(shards, batch_size=6, sampler=sampler, seed=4, **{**workers, **kwargs})

    reference = uninterrupted(make)
    for k in range(len(make()) + 1):
        assert resumed_run(make, k, resume_kwargs={"num_workers": 0}) == reference[k:], k


@pytest.mark.parametrize(
    ("saved", "other", "differs"),
    [
        ({"window": 2}, {"window": 3}, "'window': 2"),
        ({"window": 2}, {"window": 2, "drop_last": True, "num_replicas": 1, "rank": 0}, "'drop_last': False"),
    ],
)
def test_a_state_from_a_sampler_with_other_settings_is_refused(shards, saved, other, differs):
    """A sampler built with another window= gives another order from the same seed: the
    resumed run went on silently with other samples."""

    def make(**settings):
        sampler = WindowedShuffleSampler(shards, seed=4, **settings)
        return DataLoader(shards, batch_size=6, sampler=sampler, seed=4)

    loader = make(**saved)
    epoch = iter(loader)
    next(epoch)
    state = json.loads(json.dumps(loader.state_dict()))
    with pytest.raises(ValueError, match=f"sampler_settings=.*{differs}.*build it with the saved ones"):
        make(**other).load_state_dict(state)
    resumed = make(**saved)
    resumed.load_state_dict(state)
    assert digests(resumed) == digests(epoch)
    del state["sampler_settings"]  # a state saved before the field existed: not checked
    make(**other).load_state_dict(state)


# ---- streams ------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [{}, {"num_workers": 3}, {"num_workers": 3, "worker_type": "thread"}])
def test_resume_a_stream_at_every_batch(workers):
    def make(**kwargs):
        return DataLoader(Uneven(), batch_size=2, seed=9, **{**workers, **kwargs})

    width = 2 if workers.get("worker_type") == "thread" else 3  # threads share np.random
    reference = [r for r in uninterrupted_rows(make)]
    total = len([b for b in make()])
    for k in range(total + 1):
        got = resumed_rows(make, k)
        assert [[row[:width] for row in b] for b in got] == [
            [row[:width] for row in b] for b in reference[k:]
        ], k


def uninterrupted_rows(make):
    loader = make()
    out = [b.tolist() for b in loader] + [b.tolist() for b in loader]
    loader.close()
    return out


def resumed_rows(make, k):
    loader = make()
    epoch = iter(loader)
    for _ in range(k):
        next(epoch)
    state = json.loads(json.dumps(loader.state_dict()))
    del epoch
    loader.close()
    fresh = make()
    fresh.load_state_dict(state)
    out = [b.tolist() for b in fresh] + [b.tolist() for b in fresh]
    fresh.close()
    return out


def test_a_stream_split_between_workers_cannot_resume_with_another_number_of_workers():
    loader = DataLoader(Numbers(), batch_size=2, num_workers=2, seed=0)
    epoch = iter(loader)
    next(epoch)
    state = loader.state_dict()
    loader.close()
    with pytest.raises(ValueError, match="num_workers=2, this loader has num_workers=3: an IterableDataset"):
        DataLoader(Numbers(), batch_size=2, num_workers=3, seed=0).load_state_dict(state)


# ---- refused states ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("other", "field"),
    [
        (lambda: DataLoader(images(41), batch_size=6, shuffle=True, seed=3), "dataset_length=40"),
        (lambda: DataLoader(images(), batch_size=5, shuffle=True, seed=3), "batch_size=6"),
        (lambda: DataLoader(images(), batch_size=6, shuffle=True, seed=4), "seed=3"),
        (lambda: DataLoader(images(), batch_size=6, shuffle=True, seed=3, drop_last=True), "drop_last=False"),
    ],
)
def test_a_state_of_another_run_is_refused_naming_the_field(other, field):
    state = augmented_images().state_dict()
    with pytest.raises(ValueError, match=f"saved by a loader with {field}, this loader has"):
        other().load_state_dict(state)


def test_another_format_or_version_is_refused():
    loader = augmented_images()
    state = loader.state_dict()
    with pytest.raises(ValueError, match="state version 2, this tinytorch reads version 1"):
        loader.load_state_dict({**state, "version": 2})
    with pytest.raises(ValueError, match="this is not a DataLoader state"):
        loader.load_state_dict({"epoch": 0})
    with pytest.raises(TypeError, match="takes the dict state_dict\\(\\) returned"):
        loader.load_state_dict([1, 2])


class StatefulSampler:
    """A torchdata-style sampler: its order depends on state it carries, not on its epoch (a new
    order on every pass), with ``state_dict()``/``load_state_dict()`` and, like torch's
    ``Sampler``, no ``set_epoch``."""

    def __init__(self, n):
        self.n, self.rng = n, np.random.default_rng(0)

    def __iter__(self):
        return iter(self.rng.permutation(self.n).tolist())

    def __len__(self):
        return self.n

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]


def test_a_samplers_own_state_is_saved_at_the_epoch_start_and_restored():
    def make(**kwargs):
        return DataLoader(images(), batch_size=6, sampler=StatefulSampler(40), seed=1, **kwargs)

    reference = uninterrupted(make)
    for k in (0, 3, 6):
        assert resumed_run(make, k) == reference[k:]


def test_a_loader_with_a_drawn_seed_takes_the_saved_runs_seed():
    """New-user trial: a state saved with seed=None was refused by a fresh seed=None loader."""

    def make(**kwargs):
        return DataLoader(images(), batch_size=6, shuffle=True, batch_transform=AUGMENT, **kwargs)

    first = make(num_workers=2, persistent_workers=True)
    whole = digests(first)  # epoch 0, uninterrupted
    first.set_epoch(0)
    epoch = iter(first)
    for _ in range(3):
        next(epoch)
    state = json.loads(json.dumps(first.state_dict()))
    first.close()
    fresh = make()
    assert fresh.seed != first.seed  # drawn: torch is imported here, but this is another loader
    fresh.load_state_dict(state)
    assert fresh.seed == first.seed
    assert digests(fresh) == whole[3:]
    with pytest.raises(ValueError, match="saved by a loader with seed="):
        make(seed=123).load_state_dict(state)  # a seed you chose is never replaced


@pytest.mark.parametrize("kind", ["ours", "torch generator"])
def test_a_state_from_a_sampler_with_another_seed_is_refused(kind):
    """The sampler the user passed shuffles with its own seed, not the loader's: resumed with
    another, the position meant other samples and the run went on silently with other batches."""
    if kind == "ours":
        make_sampler = lambda seed: RandomSampler(range(40), seed=seed)  # noqa: E731
    else:
        torch = pytest.importorskip("torch")
        make_sampler = lambda seed: torch.utils.data.RandomSampler(  # noqa: E731
            range(40), generator=torch.Generator().manual_seed(seed)
        )

    def make(sampler_seed):
        return DataLoader(images(), batch_size=6, sampler=make_sampler(sampler_seed), seed=1)

    loader = make(7)
    epoch = iter(loader)
    next(epoch)
    state = json.loads(json.dumps(loader.state_dict()))
    assert state["sampler_seed"] == 7
    with pytest.raises(ValueError, match="sampler_seed=7, this loader has sampler_seed=8.*seed=7"):
        make(8).load_state_dict(state)
    resumed = make(7)
    resumed.load_state_dict(state)
    assert digests(resumed) == digests(epoch)


def test_a_state_saved_before_the_sampler_seed_was_recorded_still_loads():
    loader = DataLoader(images(), batch_size=6, sampler=RandomSampler(range(40), seed=7), seed=1)
    state = loader.state_dict()
    del state["sampler_seed"]
    DataLoader(images(), batch_size=6, sampler=RandomSampler(range(40), seed=8), seed=1).load_state_dict(
        state
    )
    assert DataLoader(images(), batch_size=6, shuffle=True, seed=1).state_dict()["sampler_seed"] is None


# ---- samplers whose order changes with every pass over them ------------------------------------


class HiddenStateSampler(Sampler):
    """Draws a new order from a generator it carries on every pass, as torch's RandomSampler
    with generator= does; no state_dict(), and set_epoch (inherited) changes nothing."""

    def __init__(self, n):
        self.n, self.rng = n, np.random.default_rng(5)

    def __iter__(self):
        return iter(self.rng.permutation(self.n).tolist())

    def __len__(self):
        return self.n


def _resume_after(loader, make, k, resume_kwargs):
    epoch = iter(loader)
    for _ in range(k):
        next(epoch)
    state = json.loads(json.dumps(loader.state_dict()))
    rest = digests(epoch) + digests(loader)  # the uninterrupted run: the rest of this epoch and the next
    loader.close()
    fresh = make(**(resume_kwargs or {}))
    fresh.load_state_dict(state)
    resumed = digests(fresh) + digests(fresh)
    fresh.close()
    return resumed, rest


@pytest.mark.parametrize("kind", ["ours", "torch generator"])
@pytest.mark.parametrize(("epochs", "k"), [(1, 0), (1, 3), (2, 5)])
@pytest.mark.parametrize("workers", [0, 2])
def test_a_sampler_with_a_new_order_every_pass_resumes_in_later_epochs(kind, epochs, k, workers):
    """torch's RandomSampler(generator=g) draws each epoch's order from g: a resumed loader gave
    epoch 0's order in every later epoch (the generator started over), silently."""
    if kind == "ours":
        make_sampler = lambda: HiddenStateSampler(40)  # noqa: E731
    else:
        torch = pytest.importorskip("torch")
        make_sampler = lambda: torch.utils.data.RandomSampler(  # noqa: E731
            range(40), generator=torch.Generator().manual_seed(5)
        )

    def make(**kwargs):
        kwargs.setdefault("num_workers", workers)
        return DataLoader(
            images(), batch_size=6, sampler=make_sampler(), seed=1, batch_transform=AUGMENT, **kwargs
        )

    resumed, rest = _resume_after(_after_epochs(make(), epochs), make, k, {"num_workers": 2 - workers})
    assert resumed == rest


def _after_epochs(loader, epochs):
    for _ in range(epochs):
        digests(loader)
    return loader


def test_a_state_cannot_go_back_over_passes_already_made():
    def make():
        return DataLoader(images(), batch_size=6, sampler=HiddenStateSampler(40), seed=1)

    early = make()
    state = early.state_dict()  # before any pass
    late = _after_epochs(make(), 2)
    with pytest.raises(ValueError, match="saved after 0 passes over your HiddenStateSampler.*already made 2"):
        late.load_state_dict(state)
    assert make().state_dict()["sampler_passes"] == 0
    assert late.state_dict()["sampler_passes"] == 2


def test_which_samplers_replay_their_passes():
    torch = pytest.importorskip("torch")
    data = torch.utils.data
    pure = [
        RandomSampler(range(4), seed=1),
        IndexShuffleSampler(range(4), seed=1),
        BatchSampler(RandomSampler(range(4), seed=1), 2, False),
        data.SequentialSampler(range(4)),
        data.DistributedSampler(range(4), num_replicas=2, rank=0),
        data.BatchSampler(data.SequentialSampler(range(4)), 2, False),
        [3, 1, 2, 0],
        range(4),
        np.arange(4),
    ]
    stateful = [
        data.RandomSampler(range(4), generator=torch.Generator()),
        data.BatchSampler(data.RandomSampler(range(4)), 2, False),
        BatchSampler(HiddenStateSampler(4), 2, False),
        HiddenStateSampler(4),
    ]
    assert all(order_follows_epoch(s) for s in pure)
    assert not any(order_follows_epoch(s) for s in stateful)


@pytest.mark.parametrize(("epochs", "k"), [(1, 3), (2, 0)])
def test_a_sampler_with_state_dict_and_no_set_epoch_resumes(epochs, k):
    """Its state_dict() was saved only for a sampler with set_epoch: the state held
    "sampler": None, and the resumed epoch ran epoch 0's order again, silently."""

    def make(**kwargs):
        return DataLoader(images(), batch_size=6, sampler=StatefulSampler(40), seed=1, **kwargs)

    resumed, rest = _resume_after(_after_epochs(make(), epochs), make, k, {"num_workers": 2})
    assert resumed == rest


@pytest.mark.parametrize("set_epoch", [False, True])
def test_a_sampler_with_state_dict_resumes_from_a_state_saved_between_epochs(set_epoch):
    """A state saved after an epoch ended held "sampler": None (the sampler's state was kept only
    for a checkpoint mid-epoch): the resumed run started the sampler's generator over."""

    class WithEpoch(StatefulSampler):
        def set_epoch(self, epoch):
            self.epoch = epoch

    def make():
        sampler = WithEpoch(40) if set_epoch else StatefulSampler(40)
        return DataLoader(images(), batch_size=6, sampler=sampler, seed=1)

    loader = _after_epochs(make(), 1)
    state = json.loads(json.dumps(loader.state_dict()))
    rest = digests(loader) + digests(loader)
    fresh = make()
    fresh.load_state_dict(state)
    assert digests(fresh) + digests(fresh) == rest


@pytest.mark.parametrize("batched", [False, True])
def test_a_torch_sampler_on_the_global_generator_is_refused_on_resume(batched):
    """torch's RandomSampler() without generator= draws each pass's order from torch's global
    generator: the resumed run replayed the passes on whatever state that generator had (the
    fresh process's, or one restored from the checkpoint) and gave other batches, silently."""
    torch = pytest.importorskip("torch")

    def make():
        sampler = torch.utils.data.RandomSampler(range(40))
        if batched:
            return DataLoader(
                images(), batch_sampler=torch.utils.data.BatchSampler(sampler, 6, False), seed=1
            )
        return DataLoader(images(), batch_size=6, sampler=sampler, seed=1)

    torch.manual_seed(0)
    loader = make()
    epoch = iter(loader)
    next(epoch)
    torch.rand(3)  # a training step draws from the global generator too
    state = json.loads(json.dumps(loader.state_dict()))
    with pytest.raises(ValueError, match=r"sampler_passes.*RandomSampler has generator=None.*manual_seed"):
        make().load_state_dict(state)
