import numpy as np

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import StageTimes
from tinytorch.data.workers import channel as channel_module
from tinytorch.data.workers.channel import WorkerChannel
from tinytorch.data.workers.messages import Job


class RecordingConn:
    def __init__(self, events):
        self.events = events

    def send(self, message):
        self.events.append(("send", message.index, message.times.private_bytes))

    def close(self):
        pass


def test_private_memory_is_measured_after_a_batch_is_sent_and_travels_with_the_next(monkeypatch):
    # reading /proc/self/smaps_rollup takes 2-4 ms in a worker with torch imported: measured
    # between making the first batch and sending it, it delayed every loader's first batch
    events = []
    sizes = iter([100, 200, 300])

    def measure():
        events.append(("measure",))
        return next(sizes)

    monkeypatch.setattr(channel_module, "private_memory", measure)
    channel = WorkerChannel(RecordingConn(events), worker_id=0)
    channel.writer.close()  # small batches travel in the message; no block is needed
    try:
        for generation, index in ((0, 0), (0, 1), (1, 0)):
            job = Job(generation, BatchTask(epoch=generation, index=index, indices=np.arange(2)))
            channel.send(channel.package(job, [1, 2], StageTimes()))
    finally:
        channel.close()
    assert events == [
        ("send", 0, 0),  # the first batch goes out before anything is measured
        ("measure",),
        ("send", 1, 100),  # not due again within PROBE_SECONDS
        ("send", 0, 100),
        ("measure",),  # a new epoch measures again, after its first batch
    ]
