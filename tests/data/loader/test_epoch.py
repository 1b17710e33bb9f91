import gc

import numpy as np
import pytest

from tinytorch.data.collate.default import default_collate
from tinytorch.data.fetch.fetcher import StreamFetcher
from tinytorch.data.fetch.timing import Made, StageTimes
from tinytorch.data.loader.epoch import Epoch, plan_tasks, stream_batches
from tinytorch.data.loader.stats import LoaderStats, StatsRecorder
from tinytorch.data.sampling.batching import BatchSampler


def test_plan_tasks_numbers_batches_in_order():
    tasks = list(plan_tasks(BatchSampler(range(10), 4, False), 3, batched=True, dataset_length=10))
    assert [t.index for t in tasks] == [0, 1, 2]
    assert {t.epoch for t in tasks} == {3}
    assert [t.indices.tolist() for t in tasks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    unbatched = list(plan_tasks(range(3), 0, batched=False, dataset_length=3))
    assert [t.indices.tolist() for t in unbatched] == [[0], [1], [2]]


def test_out_of_range_index_names_the_sampler_batch_and_epoch():
    tasks = plan_tasks([[0, 1], [2, 12]], 0, batched=True, dataset_length=10)
    next(tasks)
    with pytest.raises(
        IndexError,
        match=r"the list produced index 12 in batch 1 of epoch 0, but the dataset has 10",
    ):
        next(tasks)


def made(values):
    for v in values:
        yield Made(v, StageTimes(read=0.001))


def test_finish_runs_once_on_exhaustion_and_says_so():
    calls = []
    epoch = Epoch(made([1, 2]), 0, length=2, finish=calls.append)
    assert len(epoch) == 2
    assert list(epoch) == [1, 2]
    epoch.close()
    del epoch
    gc.collect()
    assert calls == [True]  # ran to its end: workers may stop in the background


def test_finish_runs_on_error_close_and_garbage_collection():
    calls = []

    def failing():
        yield Made(1, StageTimes())
        raise ValueError("boom")

    epoch = Epoch(failing(), 0, length=None, finish=lambda exhausted: calls.append(("error", exhausted)))
    next(epoch)
    with pytest.raises(ValueError, match="boom"):
        next(epoch)
    dropped = Epoch(made([1, 2]), 0, length=None, finish=lambda exhausted: calls.append(("gc", exhausted)))
    next(dropped)
    del dropped
    gc.collect()
    with Epoch(made([1]), 0, length=None, finish=lambda exhausted: calls.append(("with", exhausted))) as e:
        pass
    assert calls == [("error", False), ("gc", False), ("with", False)]
    assert list(e) == []
    with pytest.raises(TypeError, match="unknown"):
        len(e)


def test_deliver_is_applied_in_the_consumer():
    assert list(Epoch(made([1, 2]), 0, length=None, deliver=lambda b: b * 10)) == [10, 20]


def test_stream_batches_until_the_stream_ends_and_from_a_resume_point():
    fetcher = StreamFetcher(range(5), default_collate, batch_size=2, drop_last=False, seed=0)
    assert [m.batch.tolist() for m in stream_batches(fetcher, 0)] == [[0, 1], [2, 3], [4]]
    assert [m.batch.tolist() for m in stream_batches(fetcher, 0, start=1)] == [[2, 3], [4]]
    assert list(stream_batches(fetcher, 0, start=9)) == []


def test_recorder_counts_batches_and_stage_times():
    stats = LoaderStats(0, 0, "in-process")
    epoch = Epoch(made([np.zeros((4, 2)), np.zeros((3, 2))]), 0, length=2, recorder=StatsRecorder(stats))
    list(epoch)
    assert stats.batches == 2
    assert stats.samples == 7
    assert stats.nbytes == 7 * 2 * 8
    assert stats.finished
    assert stats.stage_seconds["read"] == pytest.approx(0.002)
    assert stats.per_worker[-1].batches == 2
