import time

import numpy as np
import pytest

from tinytorch import DataLoader, Dataset, PackedSequence, TensorDataset
from tinytorch.data.loader.stats import LoaderStats, WorkerStats


def loader(**kwargs):
    x = np.zeros((100, 3, 8, 8), dtype=np.uint8)
    return DataLoader(TensorDataset(x, np.arange(100)), batch_size=10, **kwargs)


@pytest.mark.parametrize("workers", [0, 2])
def test_statistics_add_up(workers):
    ld = loader(num_workers=workers, worker_type="thread")
    start = time.perf_counter()
    for _ in ld:
        time.sleep(0.001)
    wall = time.perf_counter() - start
    s = ld.stats()
    assert s.finished
    assert s.batches == len(ld) == 10
    assert s.samples == 100
    assert s.nbytes == 100 * 3 * 64 + 100 * 8
    assert s.wait_seconds + s.consumer_seconds <= wall
    assert s.wall_seconds <= wall
    assert sum(w.batches for w in s.per_worker.values()) == 10
    if workers == 0:
        assert sum(s.stage_seconds.values()) <= s.wait_seconds
    assert s.consumer_seconds >= 0.009
    assert "waiting for data" in str(s)


def test_current_and_last_epoch():
    ld = loader()
    assert ld.stats() is None
    list(ld)
    it = iter(ld)
    next(it)
    assert not ld.stats().finished
    assert ld.stats().batches == 1
    assert ld.stats("last").batches == 10
    assert ld.stats("last").epoch == 0
    with pytest.raises(ValueError, match="'current' or 'last'"):
        ld.stats("previous")


def test_process_workers_report_per_worker_and_transport():
    ld = loader(num_workers=2)
    list(ld)
    s = ld.stats()
    assert set(s.per_worker) == {0, 1}
    assert s.stage_seconds["transport"] >= 0


def test_off_switch():
    ld = loader(stats=False)
    list(ld)
    assert ld.stats() is None


def test_utilization_is_each_workers_busy_share_of_the_epoch():
    from tinytorch.data.loader.stats import LoaderStats, WorkerStats

    s = LoaderStats(0, 2, "process", batches=4, wall_seconds=2.0)
    s.per_worker = {0: WorkerStats(2, 1.5), 1: WorkerStats(2, 0.5)}
    assert s.utilization == {0: 0.75, 1: 0.25}
    assert s.mean_utilization == 0.5
    text = str(s)
    assert "worker 0" in text
    assert "75% of the epoch" in text
    assert "25% of the epoch" in text
    assert LoaderStats(0, 0, "in-process").utilization == {}
    assert LoaderStats(0, 0, "in-process", wall_seconds=1.0).mean_utilization is None


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_a_loader_reports_its_workers_utilization(kind):
    ld = loader(num_workers=2, worker_type=kind)
    list(ld)
    shares = ld.stats().utilization
    assert set(shares) == {0, 1}
    assert all(0 < share <= 1 for share in shares.values())
    assert "% of the epoch" in str(ld.stats())


class Words(Dataset):
    """Issue 13 item 13: a dataset holding Python objects (a list of str, or PackedSequence)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return len(self.items[i])


def test_process_workers_report_their_private_memory_and_python_objects_show_up():
    words = [f"sample-{i:07d}-" + "x" * 80 for i in range(200_000)]
    private = {}
    for name, items in (("list", words), ("packed", PackedSequence(words))):
        loader = DataLoader(
            Words(items), batch_size=2048, shuffle=True, seed=0, num_workers=2, persistent_workers=True
        )
        list(loader)
        list(loader)  # its first batches report what the first epoch copied
        private[name] = max(w.private_bytes for w in loader.stats().per_worker.values())
        assert "MB private" in str(loader.stats())
        loader.close()
    # a forked worker copies every str it reads (reference counts are writes): ~30 MB here
    assert private["list"] > private["packed"] + (15 << 20), private


def test_diagnose_points_to_packed_storage_when_workers_hold_much_private_memory():
    from tinytorch.analysis.diagnose import PRIVATE_MEMORY_NOTE, diagnose

    stats = LoaderStats(0, 2, "process")
    stats.batches, stats.wait_seconds, stats.consumer_seconds = 10, 1.0, 0.01
    stats.per_worker = {
        0: WorkerStats(5, 0.5, PRIVATE_MEMORY_NOTE + (1 << 20)),
        1: WorkerStats(5, 0.5, 1 << 20),
    }
    text = str(diagnose(stats, cores=2))
    assert "each process worker holds up to 33 MB of its own" in text
    assert "PackedSequence" in text
    stats.per_worker[0].private_bytes = 1 << 20
    assert "Memory:" not in str(diagnose(stats, cores=2))


def test_skipped_samples_are_summed_and_shown_only_when_there_are_some():
    from tinytorch.data.fetch.timing import Made, StageTimes
    from tinytorch.data.loader.stats import LoaderStats, StatsRecorder

    stats = LoaderStats(epoch=0, num_workers=0, worker_type="thread")
    recorder = StatsRecorder(stats)
    for skipped in (2, 0, 1):
        times = StageTimes(read=0.001, skipped=skipped).with_transport(0.0)  # travels with the times
        recorder.delivered(recorder.before_next(), Made(np.zeros((4, 3)), times))
    assert stats.skipped == 3
    assert "skipped samples: 3" in str(stats)
    assert "skipped" not in str(LoaderStats(epoch=0, num_workers=0, worker_type="thread"))


def test_without_smaps_rollup_process_workers_report_no_private_memory_and_nothing_breaks(monkeypatch):
    """A system without /proc/self/smaps_rollup: 0 (not measured), left out of str() and diagnose."""
    import builtins

    from tinytorch.analysis.diagnose import diagnose

    real = builtins.open

    def open_(path, *args, **kwargs):
        if str(path).endswith("smaps_rollup"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)  # forked workers inherit it
    loader = DataLoader(TensorDataset(np.zeros((64, 4))), batch_size=4, num_workers=2, seed=0)
    assert len(list(loader)) == 16
    stats = loader.stats()
    assert {w: s.private_bytes for w, s in stats.per_worker.items()} == {0: 0, 1: 0}
    assert "private" not in str(stats)
    assert "Memory:" not in str(diagnose(stats, cores=2))
