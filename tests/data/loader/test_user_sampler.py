"""UserSampler on its own: the epoch rule, the passes, what a resume is refused for."""

import numpy as np
import pytest

from tinytorch import BatchSampler, RandomSampler, TensorDataset
from tinytorch.data.loader.config import resolve_batching
from tinytorch.data.loader.resume import Resume
from tinytorch.data.loader.user_sampler import UserSampler

torch = pytest.importorskip("torch")

DATA = TensorDataset(np.arange(8))


def tracker(**kwargs):
    kwargs.setdefault("batch_size", 2)
    return UserSampler(resolve_batching(DATA, **kwargs))


def test_the_loaders_own_sampler_is_left_alone():
    user = tracker(shuffle=True, seed=3)
    assert (user.epoch_owner, user.sampler, user.seed, user.counts_passes) == (None, None, None, False)
    assert user.start_epoch(5, given=True, resume=None) == 5
    user.catch_up(None)
    assert user.passes == 0


def test_a_sampler_with_set_epoch_follows_the_loader_unless_the_user_set_it():
    sampler = RandomSampler(DATA, seed=1)
    user = tracker(sampler=sampler)
    assert user.start_epoch(0, given=False, resume=None) == 0
    assert user.start_epoch(1, given=False, resume=None) == 1
    assert sampler.epoch == 1
    sampler.set_epoch(7)  # a torch script's own call
    assert user.start_epoch(2, given=False, resume=None) == 7
    sampler.set_epoch(9)
    with pytest.raises(ValueError, match=r"loader.set_epoch\(3\) and RandomSampler.set_epoch\(9\) disagree"):
        user.start_epoch(3, given=True, resume=None)


def test_passes_are_counted_and_replayed_only_where_the_order_may_depend_on_them():
    g = torch.Generator().manual_seed(0)
    sampler = torch.utils.data.RandomSampler(range(8), generator=g)
    user = tracker(sampler=sampler)
    assert user.counts_passes
    assert user.seed == 0
    user.catch_up(3)  # a resumed run: three passes replayed, the fourth begins
    assert user.passes == 4
    fresh = torch.Generator().manual_seed(0)
    uninterrupted = torch.utils.data.RandomSampler(range(8), generator=fresh)
    for _ in range(3):
        list(uninterrupted)
    assert list(sampler) == list(uninterrupted)  # the fourth pass is the uninterrupted run's
    assert not tracker(
        batch_sampler=BatchSampler(RandomSampler(DATA, seed=1), 2, False), batch_size=1
    ).counts_passes


def test_a_resume_is_refused_where_it_cannot_be_exact():
    user = tracker(sampler=torch.utils.data.RandomSampler(range(8), generator=torch.Generator()))
    user.catch_up(None)
    user.catch_up(None)
    with pytest.raises(ValueError, match="saved after 1 passes over your RandomSampler.*already made 2"):
        user.check_resume(Resume(0, 0, sampler_passes=1))
    user.check_resume(Resume(0, 0, sampler_passes=2))
    on_global = tracker(sampler=torch.utils.data.RandomSampler(range(8)))
    with pytest.raises(ValueError, match="generator=None"):
        on_global.check_resume(Resume(1, 0, sampler_passes=1))
    on_global.check_resume(Resume(1, 0))  # a state without the field (saved before it existed)


def test_settings_are_read_only_from_known_samplers():
    class Counting(RandomSampler):  # a subclass: its attributes may be counters
        pass

    assert tracker(sampler=RandomSampler(DATA, seed=1)).settings == {"replacement": False, "num_samples": 8}
    assert tracker(sampler=Counting(DATA, seed=1)).settings is None
    assert tracker(
        batch_sampler=BatchSampler(RandomSampler(DATA, seed=1), 2, True), batch_size=1
    ).settings == {
        "batch_size": 2,
        "drop_last": True,
        "sampler.replacement": False,
        "sampler.num_samples": 8,
    }
    assert tracker(shuffle=True, seed=1).settings is None  # the loader's own: its settings are the loader's
