"""Process pool specifics: staggered start under fork, its bounded hand-over, CPU helpers."""

import multiprocessing as mp
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from support.processes import loader_script, wait_gone
from support.worker_datasets import Squares
from tinytorch import DataLoader
from tinytorch.data.workers import process
from tinytorch.data.workers.errors import WorkerDiedError, WorkerTimeoutError


def batches(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def same(a, b):
    return len(a) == len(b) and all(
        np.array_equal(x1, x2) and np.array_equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )


def test_fork_starts_worker_zero_at_once_and_the_others_at_the_first_wait():
    loader = DataLoader(Squares(n=200), batch_size=4, num_workers=3, multiprocessing_context="fork")
    epoch = iter(loader)
    assert len(loader.worker_pids) == 1  # only worker 0 so far: it already has its jobs
    first = next(epoch)
    assert len(loader.worker_pids) == 3
    rest = [(x.copy(), y.copy()) for x, y in epoch]
    assert same(
        [(first[0].copy(), first[1].copy()), *rest], batches(DataLoader(Squares(n=200), batch_size=4))
    )


def test_spawn_starts_every_worker_at_once():
    loader = DataLoader(Squares(n=16), batch_size=4, num_workers=2, multiprocessing_context="spawn")
    epoch = iter(loader)
    assert len(loader.worker_pids) == 2
    assert len(list(epoch)) == 4


def _never_announce(conn, announce):
    if announce:
        time.sleep(3600)
    return True


def _die_before_announcing(conn, announce):
    if announce:
        os._exit(7)
    return True


def test_a_worker_that_never_announces_itself_times_out(monkeypatch):
    monkeypatch.setattr(process, "announce_start", _never_announce)
    loader = DataLoader(Squares(n=64), batch_size=4, num_workers=2, timeout=1.0)
    began = time.monotonic()
    with pytest.raises(WorkerTimeoutError, match="batch 1 from process worker 1"):
        list(loader)
    assert time.monotonic() - began < 10


def test_a_worker_that_dies_before_announcing_itself_is_reported(monkeypatch):
    monkeypatch.setattr(process, "announce_start", _die_before_announcing)
    loader = DataLoader(Squares(n=64), batch_size=4, num_workers=2)
    with pytest.raises(WorkerDiedError, match=r"process worker 1 \(pid \d+\) exited with code 7"):
        list(loader)


def test_no_worker_stays_pinned_after_announcing_itself():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("needs Linux CPU affinity")
    with DataLoader(Squares(n=64), batch_size=4, num_workers=3, persistent_workers=True) as loader:
        assert len(list(loader)) == 16  # every worker has announced itself by the end
        for pid in loader.worker_pids:
            assert os.sched_getaffinity(pid) == os.sched_getaffinity(0)


def test_pin_to_cpu_and_unpin():
    if not hasattr(os, "sched_getaffinity") or process.current_cpu() is None:
        pytest.skip("needs Linux CPU affinity and sched_getcpu")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        allowed = os.sched_getaffinity(child.pid)
        cpu = max(allowed)
        assert process.pin_to_cpu(child.pid, cpu) == allowed
        assert os.sched_getaffinity(child.pid) == {cpu}
        process.unpin(child.pid, allowed)
        assert os.sched_getaffinity(child.pid) == allowed
        assert process.pin_to_cpu(child.pid, 10**6) is None  # not an allowed CPU: untouched
        assert process.pin_to_cpu(child.pid, None) is None
        assert os.sched_getaffinity(child.pid) == allowed
    finally:
        child.kill()
        child.wait()
    assert process.pin_to_cpu(child.pid, cpu) is None  # gone


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_exit_when_the_loading_process_is_killed(tmp_path, method):
    """SIGKILL of the loading process (the OOM killer's way) must not leave workers behind:
    each worker closes the loader's ends of the pipes it inherited, so its own sees EOF."""
    script = loader_script(
        tmp_path / "killed.py",
        "if __name__ == '__main__':\n"
        "    loader = DataLoader(Squares(n=4000), batch_size=4, num_workers=3, persistent_workers=True,\n"
        f"                        multiprocessing_context={method!r})\n"
        "    it = iter(loader)\n"
        "    next(it)\n"
        "    print(' '.join(map(str, loader.worker_pids)), flush=True)\n"
        "    time.sleep(120)\n",
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 3
    proc.kill()
    proc.wait()
    left = wait_gone(pids, 10)
    for pid in left:
        os.kill(pid, 9)
    assert not left, f"workers {left} outlived the killed loading process"


def test_workers_of_a_finished_epoch_stop_in_the_background_and_close_waits_for_them():
    loader = DataLoader(Squares(n=64), batch_size=4, num_workers=2)
    epoch = iter(loader)
    next(epoch)
    pids = loader.worker_pids
    assert len(pids) == 2
    assert len(list(epoch)) == 15  # ran to its end: its workers are told to stop, not awaited
    assert loader.worker_pids == []
    assert not wait_gone(pids, 5)  # they exit by themselves

    for _ in range(3):  # close() waits for any still exiting
        assert len(list(loader)) == 16
        loader.close()
        assert not mp.active_children()


def test_a_spawn_worker_that_fails_to_start_names_the_main_module_guard(tmp_path):
    script = loader_script(
        tmp_path / "unguarded.py",
        "from tinytorch.data.workers.errors import WorkerDiedError\n"
        "loader = DataLoader(Squares(n=16), batch_size=4, num_workers=1, multiprocessing_context='spawn')\n"
        "try:\n"
        "    list(loader)\n"
        "except WorkerDiedError as e:\n"
        "    print('ERROR', e)\n",
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert "ERROR DataLoader process worker 0" in out.stdout, out.stderr[-2000:]
    assert "exited with code 1" in out.stdout
    assert "if __name__ == '__main__':" in out.stdout
