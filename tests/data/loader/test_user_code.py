"""Where user code meets the loader: the inputs of issues 13 and 16, each with the right value."""

import gc
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from support.processes import loader_script, wait_gone
from support.worker_datasets import (
    GlobalDraws,
    InnerLoader,
    KillsOnce,
    Raises,
    SleepsOnce,
    Squares,
    TorchRandom,
    Trainer,
)
from tinytorch import DataLoader, Dataset, IterableDataset, RandomSampler, Sampler, TensorDataset
from tinytorch.data.workers.errors import WorkerDiedError, WorkerError, WorkerStartError, WorkerTimeoutError

torch = pytest.importorskip("torch")


def children():
    return mp.active_children()


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    gc.collect()
    deadline = time.monotonic() + 5
    while children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not children(), children()


def values(loader, epochs=1):
    return [float(x) for _ in range(epochs) for batch in loader for x in np.atleast_1d(batch)]


# ---- issue 13 item 1: every global RNG a dataset may use ---------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_torch_rand_in_getitem_differs_per_batch_in_every_worker_and_epoch(method):
    loader = DataLoader(TorchRandom(), batch_size=1, num_workers=2, seed=0, multiprocessing_context=method)
    drawn = values(loader, epochs=2)
    assert len(set(drawn)) == 16  # was 4 of 16: every worker, every epoch, drew the same sequence
    assert drawn[:8] == values(DataLoader(TorchRandom(), batch_size=1, seed=0))  # = num_workers=0


@pytest.mark.parametrize(("workers", "kind"), [(0, None), (1, "process"), (2, "process"), (3, "process")])
def test_global_draws_give_the_same_bytes_for_any_number_of_process_workers(workers, kind):
    kwargs = {"num_workers": workers} if workers else {}
    got = [b.tolist() for b in DataLoader(GlobalDraws(), batch_size=4, seed=7, **kwargs)]
    expected = [b.tolist() for b in DataLoader(GlobalDraws(), batch_size=4, seed=7, num_workers=2)]
    assert got == expected
    flat = [tuple(row) for b in got for row in b]
    assert len(set(flat)) == len(flat)


def test_the_users_global_generators_are_as_they_were_after_the_loop():
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    expected = (np.random.random(), random.random(), float(torch.rand(1)))
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    for _ in DataLoader(GlobalDraws(), batch_size=4, seed=1):
        pass
    assert (np.random.random(), random.random(), float(torch.rand(1))) == expected


def test_draws_between_batches_are_reproducible_and_the_users_state_returns_when_the_epoch_ends():
    """Between batches the global generators are where the last batch left them (seeded from
    (seed, epoch, batch)): the training loop's own draws there repeat from run to run."""

    def between_batches():
        np.random.seed(5)
        draws = [np.random.random() for _ in DataLoader(GlobalDraws(), batch_size=4, seed=1)]
        return draws, np.random.random()

    first, after = between_batches()
    again, after_again = between_batches()
    assert first == again
    np.random.seed(5)
    assert after == after_again == np.random.random()  # the user's own stream, as before the loop


def test_an_epoch_dropped_mid_way_gives_the_state_back():
    np.random.seed(9)
    expected = np.random.random()
    np.random.seed(9)
    epoch = iter(DataLoader(GlobalDraws(), batch_size=4, seed=1))
    next(epoch)
    del epoch
    assert np.random.random() == expected


@pytest.mark.parametrize("iterable", [False, True])
def test_an_epoch_closed_mid_way_gives_the_state_back_at_once(iterable):
    """close() (or leaving ``with iter(loader) as epoch:``) ends the epoch: the user's state comes
    back then, not when the iterator is garbage-collected (it was kept as long as the variable)."""
    dataset = GlobalStream() if iterable else GlobalDraws()
    np.random.seed(9)
    expected = np.random.random()
    np.random.seed(9)
    with iter(DataLoader(dataset, batch_size=4, seed=1)) as epoch:
        next(epoch)
    assert np.random.random() == expected
    np.random.seed(9)
    epoch.close()  # closing again changes nothing
    assert np.random.random() == expected


def test_an_epoch_left_running_does_not_keep_later_epochs_from_giving_the_state_back():
    """A mid-epoch iterator kept alive (a variable in a notebook, a traceback pytest keeps) made
    the count of running epochs stay above zero: every later epoch left the generators where its
    last batch left them, and the user's np.random.seed() before it was lost."""
    stale = iter(DataLoader(GlobalDraws(), batch_size=4, seed=1))
    next(stale)
    np.random.seed(9)
    expected = np.random.random()
    np.random.seed(9)
    for _ in DataLoader(GlobalDraws(), batch_size=4, seed=2):
        pass
    assert np.random.random() == expected
    stale.close()


def test_interleaved_and_nested_epochs_give_the_users_state_back():
    np.random.seed(9)
    expected = np.random.random()
    np.random.seed(9)
    short, long = (
        DataLoader(GlobalDraws(), batch_size=6, seed=1),
        DataLoader(GlobalDraws(), batch_size=4, seed=2),
    )
    pairs = list(zip(short, long, strict=False))  # short ends first; long is dropped mid-epoch
    alone = [b.tolist() for b in DataLoader(GlobalDraws(), batch_size=4, seed=2)]
    assert [b.tolist() for _, b in pairs] == alone[:2]
    for _ in short:
        for _ in long:
            pass
    assert np.random.random() == expected


class GlobalStream(IterableDataset):
    def __iter__(self):
        for _ in range(12):
            yield np.random.randint(1 << 30)


class Indices(Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return i


class PermutesGlobally(Sampler):
    """A torch-style sampler that shuffles with the global generators (no generator= of its own)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        torch.randperm(self.n)
        return iter(np.random.permutation(self.n).tolist())


@pytest.mark.parametrize("workers", [0, 2])
def test_a_sampler_drawing_from_the_global_generators_gives_a_new_order_every_epoch(workers):
    """The sampler draws from the user's generators (as with torch and with workers), before the
    epoch borrows them: with num_workers=0 every epoch had the same order, as the state from
    before the epoch came back at its end."""
    np.random.seed(0)
    torch.manual_seed(0)
    loader = DataLoader(Indices(), batch_size=4, sampler=PermutesGlobally(12), num_workers=workers, seed=1)
    orders = [tuple(int(i) for b in loader for i in b) for _ in range(3)]
    assert len(set(orders)) == 3
    np.random.seed(0)
    assert orders[0] == tuple(np.random.permutation(12))  # the user's own stream, as torch draws it


class DrawsEachIndex(Sampler):
    """A sampler with replacement that draws each index from np.random as it yields it (80
    indices: 20 batches of 4, more than an in-process epoch plans at a time)."""

    def __len__(self):
        return 80

    def __iter__(self):
        for _ in range(80):
            yield int(np.random.randint(12))


class IndexAndDraw(Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return np.array([i, np.random.randint(1 << 30)])


def lazy_order(workers):
    np.random.seed(0)
    loader = DataLoader(IndexAndDraw(), batch_size=4, sampler=DrawsEachIndex(), num_workers=workers, seed=1)
    return [b.tolist() for b in loader], np.random.random()


def test_a_sampler_drawing_an_index_at_a_time_gives_the_workers_order_with_num_workers_0():
    """Indices after the first batch were drawn from the state the last batch left (seeded by the
    loader), not from the user's stream as with workers: the second batch on differed."""
    np.random.seed(0)
    expected = [int(np.random.randint(12)) for _ in range(80)]
    after = np.random.random()
    in_process, left = lazy_order(0)
    assert [row[0] for b in in_process for row in b] == expected
    assert left == after  # the sampler advanced the user's stream, as with workers
    assert lazy_order(0) == lazy_order(2)


@pytest.mark.parametrize(("before", "after"), [(0, 0), (0, 2), (2, 0)])
def test_resuming_with_a_sampler_drawing_an_index_at_a_time_gives_the_uninterrupted_batches(before, after):
    def loader(workers):
        np.random.seed(0)
        return DataLoader(IndexAndDraw(), batch_size=4, sampler=DrawsEachIndex(), num_workers=workers, seed=1)

    first = loader(before)
    epoch = iter(first)
    next(epoch)
    state = first.state_dict()
    rest = [b.tolist() for b in epoch]
    resumed = loader(after)
    resumed.load_state_dict(state)
    assert [b.tolist() for b in resumed] == rest


class FailsAfterEight(Sampler):
    def __len__(self):
        return 12

    def __iter__(self):
        yield from range(8)
        raise ValueError("the sampler's own error")


def test_a_sampler_error_comes_after_the_batches_planned_before_it_and_the_state_comes_back():
    """Tasks are planned a few at a time with the user's generators in place: an error of the
    sampler still surfaces at the batch it belongs to, not with the first."""
    np.random.seed(3)
    expected = np.random.random()
    np.random.seed(3)
    epoch = iter(DataLoader(IndexAndDraw(), batch_size=4, sampler=FailsAfterEight(), seed=1))
    got = [next(epoch)[:, 0].tolist() for _ in range(2)]
    with pytest.raises(ValueError, match="the sampler's own error"):
        next(epoch)
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert np.random.random() == expected


# ---- issue 13 item 6: one epoch at a time, never a silently short one --------------------------


def test_a_superseded_persistent_epoch_raises_instead_of_ending_early():
    loader = DataLoader(Squares(n=96), batch_size=4, num_workers=2, persistent_workers=True)
    running = iter(loader)
    got = [next(running) for _ in range(6)]
    peek = next(iter(loader))  # the input: next(iter(loader)) inside a running epoch
    assert peek[1].tolist() == [0, 1, 4, 9]
    with pytest.raises(RuntimeError, match="superseded by a newer iter"):
        next(running)
    assert len(got) == 6
    loader.close()


@pytest.mark.parametrize("kwargs", [{}, {"num_workers": 2}, {"num_workers": 2, "worker_type": "thread"}])
def test_two_epochs_side_by_side_both_deliver_their_whole_epochs(kwargs):
    loader = DataLoader(Squares(n=40), batch_size=4, **kwargs)
    a, b = iter(loader), iter(loader)
    first = [next(a)[1].tolist() for _ in range(3)]
    second = [y.tolist() for _, y in b]
    first += [y.tolist() for _, y in a]
    assert first == second
    assert len(first) == 10
    loader.close()


# ---- issue 13 item 7: the user's sampler keeps the user's epoch --------------------------------


def test_the_loader_runs_the_epoch_the_user_gave_the_sampler():
    ds = TensorDataset(np.arange(20))
    s = RandomSampler(ds, seed=0)
    s.set_epoch(5)
    loader = DataLoader(ds, sampler=s, batch_size=20)
    assert next(iter(loader))[0].tolist() == s.indices(5).tolist()  # was the order of epoch 0
    assert loader.epoch == 6
    assert next(iter(loader))[0].tolist() == s.indices(6).tolist()  # then it moves on from there
    s.set_epoch(2)  # a resumed torch script: sampler.set_epoch(e) each epoch
    assert next(iter(loader))[0].tolist() == s.indices(2).tolist()


def test_loader_and_sampler_epochs_that_disagree_are_an_error():
    ds = TensorDataset(np.arange(20))
    s = RandomSampler(ds, seed=0)
    loader = DataLoader(ds, sampler=s, batch_size=20)
    loader.set_epoch(3)
    s.set_epoch(5)
    with pytest.raises(ValueError, match=r"loader.set_epoch\(3\) and RandomSampler.set_epoch\(5\) disagree"):
        iter(loader)
    s.set_epoch(3)  # agreeing is fine
    loader.set_epoch(3)
    assert next(iter(loader))[0].tolist() == s.indices(3).tolist()


def test_torchs_distributed_sampler_epoch_is_kept():
    ds = TensorDataset(np.arange(12))
    s = torch.utils.data.DistributedSampler(ds, num_replicas=2, rank=0, shuffle=True, seed=1)
    s.set_epoch(4)
    expected = list(s)
    s.set_epoch(4)
    loader = DataLoader(ds, sampler=s, batch_size=6)
    assert next(iter(loader))[0].tolist() == expected


# ---- issue 13 item 8 and 16 item 6b: a failed worker is replaced --------------------------------


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_after_a_timeout_the_next_persistent_epoch_runs(kind, tmp_path):
    loader = DataLoader(
        SleepsOnce(tmp_path / "slept"),
        batch_size=2,
        num_workers=2,
        timeout=2,  # generous: the second epoch must not time out on a busy machine
        persistent_workers=True,
        worker_type=kind,
    )
    with pytest.raises(WorkerTimeoutError, match="timed out after 2.0 s waiting for batch 2"):
        list(loader)
    assert [b.tolist() for b in loader] == [[2 * k, 2 * k + 1] for k in range(8)]  # timed out again before
    loader.close()


def test_after_a_dead_worker_the_next_persistent_epoch_runs(tmp_path):
    loader = DataLoader(KillsOnce(tmp_path / "died"), batch_size=2, num_workers=2, persistent_workers=True)
    with pytest.raises(WorkerDiedError, match="SIGKILL"):
        list(loader)
    assert [b.tolist() for b in loader] == [[2 * k, 2 * k + 1] for k in range(8)]  # raised again before
    loader.close()


# ---- issue 13 item 9: exceptions read like the original ----------------------------------------


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_a_key_error_from_a_worker_shows_its_traceback_as_lines(kind):
    loader = DataLoader(
        Raises(KeyError("first line\nsecond line")), batch_size=2, num_workers=2, worker_type=kind
    )
    with pytest.raises(KeyError) as info:
        list(loader)
    text = str(info.value)
    assert "\nOriginal traceback:\nTraceback (most recent call last):\n" in text  # lines, not one line
    assert text.rstrip().endswith("KeyError: 'first line\\nsecond line'")  # the original, as Python prints it
    assert isinstance(info.value.__cause__, KeyError)


def test_types_that_cannot_carry_the_message_become_worker_errors():
    class TwoArgs(Exception):
        def __init__(self, a, b):
            super().__init__(a, b)

    loader = DataLoader(Raises(TwoArgs(1, 2)), batch_size=2, num_workers=2, worker_type="thread")
    with pytest.raises(WorkerError, match="Caught .*TwoArgs in DataLoader thread worker"):
        list(loader)


def test_memory_error_keeps_its_type():
    with pytest.raises(MemoryError, match="Caught builtins.MemoryError in DataLoader process worker"):
        list(DataLoader(Raises(MemoryError("no room")), batch_size=2, num_workers=2))


# ---- issue 13 item 11: forked workers and torch's thread pool ----------------------------------


def test_torch_ops_in_forked_workers_after_the_parent_used_torch_threads(tmp_path):
    script = loader_script(
        tmp_path / "torch_threads.py",
        "import torch\n"
        "from support.worker_datasets import TorchOps\n"
        "torch.set_num_threads(2)\n"
        "x = torch.ones(512, 512); (x @ x).sum()\n"  # the parent's intra-op pool is running
        "loader = DataLoader(TorchOps(), batch_size=4, num_workers=2, multiprocessing_context='fork')\n"
        "for epoch in range(3):\n"
        "    print(epoch, len(list(loader)), flush=True)\n",
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["0 4", "1 4", "2 4"]


# ---- issue 16 item 5: no failure hangs the loop -------------------------------------------------


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt()])
@pytest.mark.parametrize("timeout", [0, 5])
def test_a_thread_worker_raising_base_exceptions_is_reported_not_waited_for(error, timeout):
    loader = DataLoader(Raises(error), batch_size=2, num_workers=2, worker_type="thread", timeout=timeout)
    start = time.monotonic()
    with pytest.raises(type(error)) as info:
        list(loader)
    assert time.monotonic() - start < 3
    assert f"Caught builtins.{type(error).__name__} in DataLoader thread worker" in str(info.value)


def test_a_process_worker_raising_system_exit_is_reported_with_the_cause():
    with pytest.raises(SystemExit, match="Caught builtins.SystemExit in DataLoader process worker"):
        list(DataLoader(Raises(SystemExit(3)), batch_size=2, num_workers=2))


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_an_unguarded_spawn_script_with_a_large_dataset_fails_fast_with_the_fix(tmp_path, method):
    script = tmp_path / "unguarded.py"
    script.write_text(  # no `if __name__ == '__main__':` guard, as in the issue
        "import numpy as np\n"
        "from tinytorch import DataLoader, TensorDataset\n"
        "data = TensorDataset(np.zeros((100, 1000)))\n"  # 800 KB: more than a pipe holds
        f"loader = DataLoader(data, batch_size=10, num_workers=2, multiprocessing_context={method!r})\n"
        "list(loader)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode != 0
    assert "tinytorch.data.workers.errors.WorkerDiedError: DataLoader process worker" in out.stderr, (
        out.stderr
    )
    assert "if __name__ == '__main__':" in out.stderr.split("WorkerDiedError")[-1]


# ---- issue 16 item 6: persistent workers live exactly as long as the loader --------------------


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_workers_of_a_loader_whose_collate_fn_refers_back_to_its_owner_stop_when_it_is_dropped(kind):
    import threading

    before = set(threading.enumerate())  # a stuck thread of an earlier test may live on
    trainers = [Trainer(num_workers=2, persistent_workers=True, worker_type=kind) for _ in range(5)]
    for trainer in trainers:
        assert len(list(trainer.loader)) == 16
    del trainers, trainer
    gc.collect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (children() or set(threading.enumerate()) - before):
        time.sleep(0.05)
    assert not children()  # five trainers left ten live workers before
    assert not set(threading.enumerate()) - before


def test_a_worker_busy_in_a_long_getitem_exits_when_the_loader_is_killed(tmp_path):
    script = loader_script(
        tmp_path / "busy.py",
        "loader = DataLoader(Squares(n=64, sleep_at=9), batch_size=4, num_workers=2)\n"
        "it = iter(loader); next(it)\n"
        "print(' '.join(map(str, loader.worker_pids)), flush=True)\n"
        "time.sleep(3600)\n",
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    time.sleep(0.5)  # worker 0 is asleep inside __getitem__(9) by now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert not wait_gone(pids, 5)  # it ran on until its batch ended before


# ---- issue 16 item 8: errors from the right place -----------------------------------------------


def test_process_workers_inside_a_process_worker_get_a_clear_error():
    with pytest.raises(WorkerStartError, match="cannot be started inside a DataLoader process worker"):
        list(DataLoader(InnerLoader(), batch_size=2, num_workers=1))


@pytest.mark.parametrize("persistent", [False, True])
def test_an_epoch_used_after_close_says_so(persistent):
    loader = DataLoader(Squares(n=64), batch_size=4, num_workers=2, persistent_workers=persistent)
    epoch = iter(loader)
    next(epoch)
    loader.close()
    with pytest.raises(RuntimeError, match=r"DataLoader.close\(\) stopped its workers"):
        next(epoch)  # was ValueError: I/O operation on closed epoll object


def test_more_workers_than_cpus_warns_once_with_the_number():
    import warnings

    cpus = len(os.sched_getaffinity(0))
    loader = DataLoader(Squares(n=8), batch_size=4, num_workers=cpus + 1, worker_type="thread")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(loader)
        list(loader)
    messages = [str(w.message) for w in caught if "will create" in str(w.message)]
    assert len(messages) == 1
    assert f"Use num_workers <= {cpus}" in messages[0]
