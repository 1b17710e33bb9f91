import os
import pickle

import numpy as np
import pytest

from support.cifar_files import py2_pickle
from tinytorch.data.storage.unpickle import ForbiddenPickleError, safe_load


def test_python2_pickle_loads_with_byte_keys():
    obj = safe_load(py2_pickle({b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), b"labels": [1, 2]}), "f")
    assert obj[b"labels"] == [1, 2]
    assert obj[b"data"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_python3_pickle_of_arrays_loads():
    obj = safe_load(pickle.dumps({"data": np.ones(3, np.uint8), "name": b"x"}, protocol=2), "f")
    assert obj["name"] == b"x"


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/tinytorch-pwned",))


def test_a_pickle_that_runs_code_is_refused_naming_the_global():
    payload = pickle.dumps({b"data": Exploit()}, protocol=2)
    with pytest.raises(ForbiddenPickleError, match=r"data_batch_1 references the global posix.system"):
        safe_load(payload, "data_batch_1")
    assert not os.path.exists("/tmp/tinytorch-pwned")


def test_truncated_pickle_fails():
    data = py2_pickle({b"data": np.zeros(100, np.uint8)})
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        safe_load(data[:50], "f")
