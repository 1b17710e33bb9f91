import os
import pickle

import numpy as np
import pytest

from support.cifar_files import py2_pickle
from tinytorch.data.storage import unpickle
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


@pytest.mark.parametrize(
    ("data", "cause"),
    [
        # a length field claiming 2**62 bytes (BINBYTES8): the unpickler runs out of memory
        (b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b"x.", MemoryError),
        # codecs.encode (allowed for Python 3's bytes) with a damaged encoding name
        (b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00latiY1\x86R.", LookupError),
    ],
)
def test_every_error_of_a_damaged_pickle_is_an_unpickling_error(data, cause):
    """Hostile-tester item 5: fuzzing gave raw LookupError, MemoryError and SystemError."""
    with pytest.raises(pickle.UnpicklingError, match=r"data_batch_1 is not a valid pickle") as info:
        safe_load(data, "data_batch_1")
    assert isinstance(info.value.__cause__, cause)
    assert not isinstance(info.value, ForbiddenPickleError)


def test_errors_from_inside_the_unpickler_are_wrapped_too(monkeypatch):
    def broken_load(self):
        raise SystemError("error return without exception set")  # what a fuzzed numpy state gave

    monkeypatch.setattr(unpickle._NumpyOnlyUnpickler, "load", broken_load)
    with pytest.raises(pickle.UnpicklingError, match="SystemError") as info:
        safe_load(b"\x80\x02N.", "f")
    assert isinstance(info.value.__cause__, SystemError)


class _DtypeWithDeprecatedAlign:
    def __reduce__(self):
        return (np.dtype, ("f8", 147, True))  # numpy 2.4 deprecates a non-bool align


def test_a_file_that_makes_numpy_warn_is_a_bad_file_not_a_warning(recwarn):
    """Found by the fuzz test: a damaged dtype record made numpy's deprecation warning reach the
    user's console while the file loaded."""
    with pytest.raises(pickle.UnpicklingError, match="data_batch_1 is not a valid pickle"):
        safe_load(pickle.dumps(_DtypeWithDeprecatedAlign(), protocol=2), "data_batch_1")
    assert not [w for w in recwarn if issubclass(w.category, Warning)]
