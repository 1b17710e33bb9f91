import traceback

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.workers.errors import WorkerError
from tinytorch.data.workers.messages import Failed, rebuild_exception


def failed(error):
    try:
        raise error
    except Exception as e:
        tb = traceback.format_exc()
        return Failed.of(
            e,
            generation=1,
            task=BatchTask(3, 17, None),
            worker_id=1,
            pid=4242,
            kind="process",
            traceback=tb,
        )


def test_original_type_with_where_and_traceback():
    error = rebuild_exception(failed(KeyError("missing")))
    assert isinstance(error, KeyError)
    message = str(error)
    assert "process worker 1 (pid 4242)" in message
    assert "batch 17 of epoch 3" in message
    assert "raise error" in message
    assert isinstance(error.__cause__, KeyError)


class Odd(Exception):
    def __init__(self, a, b):
        super().__init__(a, b)


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("nope")


def test_types_that_cannot_be_rebuilt_become_worker_errors():
    assert isinstance(rebuild_exception(failed(Odd(1, 2))), WorkerError)
    error = rebuild_exception(failed(Unpicklable("x")))
    assert isinstance(error, WorkerError)
    assert "Unpicklable" in str(error)
