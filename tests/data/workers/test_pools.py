"""Process and thread workers end to end: determinism, failures, cleanup (real processes)."""

import gc
import hashlib
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.processes import loader_script, wait_gone
from support.worker_datasets import (
    GlobalRandom,
    Images,
    Randomized,
    Squares,
    Unpicklable,
    WhoAmI,
    record_init,
)
from tinytorch import (
    Compose,
    DataLoader,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ToFloat,
    get_worker_info,
)
from tinytorch.data.workers.errors import WorkerDiedError, WorkerTimeoutError


def digest(loader):
    return [hashlib.sha256(np.ascontiguousarray(b).tobytes()).hexdigest()[:16] for b in loader]


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
    assert not [f for f in os.listdir("/dev/shm") if "tinytorch" in f]


@pytest.mark.parametrize(
    ("workers", "kind"),
    [(1, "process"), (2, "process"), (4, "process"), (2, "thread"), (4, "thread")],
)
def test_same_bytes_as_in_process(workers, kind):
    reference = digest(DataLoader(Randomized(), batch_size=5, shuffle=True, seed=9))
    loader = DataLoader(
        Randomized(), batch_size=5, shuffle=True, seed=9, num_workers=workers, worker_type=kind
    )
    assert digest(loader) == reference
    assert digest(loader) != reference  # the next epoch differs


@settings(max_examples=6, deadline=None)
@given(
    workers=st.integers(1, 3),
    kind=st.sampled_from(["process", "thread"]),
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 2**32),
    drop_last=st.booleans(),
)
def test_determinism_property(workers, kind, batch_size, seed, drop_last):
    kwargs = {"batch_size": batch_size, "shuffle": True, "seed": seed, "drop_last": drop_last}
    expected = digest(DataLoader(Randomized(), **kwargs))
    assert digest(DataLoader(Randomized(), num_workers=workers, worker_type=kind, **kwargs)) == expected


def test_global_rngs_in_process_workers_depend_on_batch_not_worker():
    one = [b.tolist() for b in DataLoader(GlobalRandom(), batch_size=4, seed=3, num_workers=1)]
    three = [b.tolist() for b in DataLoader(GlobalRandom(), batch_size=4, seed=3, num_workers=3)]
    assert one == three
    flat = [tuple(x) for b in one for x in b]
    assert len(set(flat)) == len(flat)  # no duplicated streams across batches


def test_exception_is_reraised_with_worker_batch_and_traceback():
    loader = DataLoader(Squares(fail_at=13), batch_size=4, num_workers=2)
    seen = []

    def consume():
        for batch in loader:
            seen.append(batch)

    with pytest.raises(KeyError) as info:
        consume()
    message = str(info.value)
    assert "process worker" in message
    assert "while making batch 3 of epoch 0" in message
    assert "sample 13 is broken" in message
    assert "__getitem__" in message
    assert len(seen) == 3  # earlier batches were delivered in order


def test_thread_worker_exception():
    with pytest.raises(KeyError, match="thread worker .* batch 1 of epoch 0"):
        list(DataLoader(Squares(fail_at=5), batch_size=4, num_workers=2, worker_type="thread"))


def test_killed_worker_is_reported_quickly_with_the_signal():
    loader = DataLoader(Squares(kill_at=40), batch_size=4, num_workers=2)
    start = time.monotonic()
    with pytest.raises(WorkerDiedError, match=r"killed by signal SIGKILL \(9\).*out-of-memory"):
        list(loader)
    assert time.monotonic() - start < 5


def test_externally_killed_worker_mid_epoch():
    loader = DataLoader(Squares(n=4000), batch_size=4, num_workers=2, persistent_workers=True)
    it = iter(loader)
    next(it)
    os.kill(loader.worker_pids[1], signal.SIGKILL)
    with pytest.raises(WorkerDiedError, match="worker 1"):
        for _ in it:
            pass
    loader.close()


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_stuck_worker_times_out(kind):
    loader = DataLoader(Squares(sleep_at=9), batch_size=4, num_workers=2, timeout=0.5, worker_type=kind)
    start = time.monotonic()
    with pytest.raises(WorkerTimeoutError, match="timed out after 0.5 s waiting for batch 2"):
        list(loader)
    assert time.monotonic() - start < 4


def test_unpicklable_dataset_is_named_before_workers_start():
    loader = DataLoader(Unpicklable(), batch_size=4, num_workers=2, multiprocessing_context="spawn")
    with pytest.raises(TypeError, match="the dataset \\(Unpicklable\\) cannot be sent to 'spawn' worker"):
        iter(loader)
    assert not children()


def test_spawn_and_fork_give_the_same_batches():
    reference = digest(DataLoader(Randomized(), batch_size=8, shuffle=True, seed=1))
    for method in ("fork", "spawn"):
        loader = DataLoader(
            Randomized(),
            batch_size=8,
            shuffle=True,
            seed=1,
            num_workers=2,
            multiprocessing_context=method,
        )
        assert digest(loader) == reference, method


def test_worker_init_fn_failure_is_reported():
    with pytest.raises(RuntimeError, match="init failed on purpose"):
        list(DataLoader(Squares(), batch_size=4, num_workers=2, worker_init_fn=record_init))


def test_get_worker_info():
    assert get_worker_info() is None
    rows = np.concatenate(list(DataLoader(WhoAmI(), batch_size=4, num_workers=2)))
    assert set(rows[:, 0].tolist()) <= {0, 1}
    assert set(rows[:, 1].tolist()) == {2}
    assert os.getpid() not in set(rows[:, 2].tolist())
    threads = np.concatenate(list(DataLoader(WhoAmI(), batch_size=4, num_workers=2, worker_type="thread")))
    assert set(threads[:, 2].tolist()) == {os.getpid()}


def test_kept_batches_stay_intact():
    loader = DataLoader(Squares(n=400), batch_size=4, num_workers=2)
    kept = list(loader)
    assert len(kept) == 100
    more = list(loader)  # a second epoch reuses no block that a kept batch views
    for k, (x, y) in enumerate(kept):
        np.testing.assert_array_equal(x[:, 0, 0], np.arange(4 * k, 4 * k + 4))
        np.testing.assert_array_equal(y, np.arange(4 * k, 4 * k + 4) ** 2)
    assert len(more) == 100


@pytest.mark.parametrize(("workers", "kind"), [(1, "process"), (2, "process"), (2, "thread")])
def test_batches_made_in_shared_memory_are_identical_and_kept_intact(workers, kind):
    # Batches of 64 CIFAR images: collation and the fused augmentation write straight into the
    # worker's shared-memory blocks; kept batches must survive the blocks being reused.
    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), ToFloat(), Normalize(0.5, 0.25)])
    kwargs = {"batch_size": 64, "shuffle": True, "seed": 4}
    for transform in (None, augment):
        reference = DataLoader(Images(), batch_transform=transform, **kwargs)
        expected = [list(reference), list(reference)]
        loader = DataLoader(
            Images(), batch_transform=transform, num_workers=workers, worker_type=kind, **kwargs
        )
        kept = [list(loader), list(loader)]  # the second epoch reuses blocks the first released
        for got_epoch, want_epoch in zip(kept, expected, strict=True):
            assert len(got_epoch) == len(want_epoch) == 10
            for (x, y), (want_x, want_y) in zip(got_epoch, want_epoch, strict=True):
                assert x.dtype == want_x.dtype
                np.testing.assert_array_equal(x, want_x)
                np.testing.assert_array_equal(y, want_y)


def test_persistent_workers_survive_epochs():
    loader = DataLoader(
        Randomized(), batch_size=6, shuffle=True, seed=2, num_workers=2, persistent_workers=True
    )
    first = digest(loader)
    pids = loader.worker_pids
    second = digest(loader)
    assert loader.worker_pids == pids
    fresh = DataLoader(Randomized(), batch_size=6, shuffle=True, seed=2, num_workers=2)
    assert [first, second] == [digest(fresh), digest(fresh)]
    loader.close()
    fresh.close()  # its last epoch's workers may still be exiting: close() collects them
    assert not children()


def test_persistent_workers_after_break_still_work():
    loader = DataLoader(Randomized(), batch_size=6, seed=2, num_workers=2, persistent_workers=True)
    for _ in loader:
        break
    loader.set_epoch(0)
    assert digest(loader) == digest(DataLoader(Randomized(), batch_size=6, seed=2))
    loader.close()


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_break_exception_and_del_release_everything(kind):
    for cycle in range(200 if kind == "process" else 50):
        loader = DataLoader(Squares(n=64), batch_size=4, num_workers=2, worker_type=kind)
        for k, _ in enumerate(loader):
            if k == cycle % 3:
                break
        del loader
    gc.collect()


def test_consumer_exception_stops_workers():
    loader = DataLoader(Squares(n=64), batch_size=4, num_workers=2)

    def consume():
        for _ in loader:
            raise ValueError("consumer failed")

    with pytest.raises(ValueError, match="consumer failed"):
        consume()
    gc.collect()
    assert not loader.worker_pids


def test_epoch_close_and_context_manager():
    with DataLoader(Squares(n=64), batch_size=4, num_workers=2, persistent_workers=True) as loader:
        epoch = iter(loader)
        next(epoch)
        epoch.close()
        assert list(epoch) == []
        assert loader.worker_pids
    assert not loader.worker_pids


def test_interpreter_exit_stops_workers(tmp_path):
    script = loader_script(
        tmp_path / "exit.py",
        "loader = DataLoader(Squares(n=400), batch_size=4, num_workers=2, persistent_workers=True)\n"
        "it = iter(loader); next(it)\n"
        "print(' '.join(map(str, loader.worker_pids)), flush=True)\n",
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2
    assert not wait_gone(pids, 0.2)


def test_ctrl_c_stops_the_loader_and_its_workers(tmp_path):
    """SIGINT to the process group (what Ctrl-C sends): the loading process gets
    KeyboardInterrupt, the workers ignore it and are stopped by the loader."""
    script = loader_script(
        tmp_path / "ctrlc.py",
        "loader = DataLoader(Squares(n=400000), batch_size=4, num_workers=2)\n"
        "try:\n"
        "    for i, batch in enumerate(loader):\n"
        "        if i == 5:\n"
        "            print(' '.join(map(str, loader.worker_pids)), flush=True)\n"
        "        time.sleep(0.01)\n"
        "except KeyboardInterrupt:\n"
        "    import gc, multiprocessing\n"
        "    gc.collect()\n"
        "    print('interrupted', len(multiprocessing.active_children()), flush=True)\n",
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert "interrupted 0" in out  # the loader stopped its workers before the script ended
    assert proc.returncode == 0
    assert not wait_gone(pids, 5)
