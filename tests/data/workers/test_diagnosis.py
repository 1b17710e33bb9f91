"""From a worker's exit status to the error the user reads (pure functions)."""

import signal

import pytest

from tinytorch.data.workers.diagnosis import death_error, mapped_file_problem
from tinytorch.data.workers.errors import WorkerDiedError


def test_sigkill_points_at_the_out_of_memory_killer():
    error = death_error(1, 123, -signal.SIGKILL, start_method="fork", batch=(2, 7))
    assert isinstance(error, WorkerDiedError)
    assert isinstance(error, RuntimeError)
    assert str(error).startswith(
        "DataLoader process worker 1 (pid 123) was killed by signal SIGKILL (9) unexpectedly while "
        "making batch 7 of epoch 2."
    )
    assert "out-of-memory killer: lower batch_size" in str(error)


def test_sigbus_names_the_file_the_dataset_found_changed():
    error = death_error(0, 5, -signal.SIGBUS, start_method="fork", file_problem="shard-00001.bin shrank")
    assert "signal SIGBUS" in str(error)
    assert str(error).endswith("shard-00001.bin shrank")
    generic = death_error(0, 5, -signal.SIGBUS, start_method="fork")
    assert "memory-mapped file that was truncated or replaced" in str(generic)


@pytest.mark.parametrize(("method", "guard"), [("fork", False), ("spawn", True), ("forkserver", True)])
def test_an_exit_code_points_at_the_traceback_and_under_spawn_at_the_main_guard(method, guard):
    message = str(death_error(0, 9, 1, start_method=method))
    assert "exited with code 1 unexpectedly. Its traceback, if it printed one, is above." in message
    assert ("if __name__ == '__main__':" in message) is guard


def test_mapped_file_problem_asks_the_dataset():
    class Shrunk:
        def check_mapped_files(self):
            raise ValueError("part-1.bin is 10 bytes, was 4096")

    class Fine:
        def check_mapped_files(self):
            pass

    assert mapped_file_problem(Shrunk()) == "ValueError: part-1.bin is 10 bytes, was 4096"
    assert mapped_file_problem(Fine()) is None
    assert mapped_file_problem(object()) is None
