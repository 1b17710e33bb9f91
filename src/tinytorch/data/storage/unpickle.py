"""Loading pickled data files without running code from them.

The official CIFAR files are Python 2 pickles of dicts holding numpy arrays,
lists, ints and byte strings. :func:`safe_load` unpickles such files with an
unpickler that resolves only numpy's array-reconstruction globals (and
``codecs.encode``) and refuses
every other global, so a malicious archive cannot execute anything.
"""

from __future__ import annotations

import codecs
import io
import pickle
import warnings
from typing import Any

import numpy as np

__all__ = ["ForbiddenPickleError", "safe_load"]


class ForbiddenPickleError(pickle.UnpicklingError):
    """The pickle references a global outside the allowed numpy reconstruction functions."""


def _allowed() -> dict[tuple[str, str], Any]:
    # numpy's array and scalar reconstruction, and codecs.encode, which Python 3's
    # protocol-2 pickler emits for bytes (it only converts text to bytes).
    multiarray = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    multiarray = multiarray.multiarray
    reconstruct = multiarray._reconstruct
    scalar = multiarray.scalar
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    allowed[("_codecs", "encode")] = codecs.encode
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source
        self._allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise ForbiddenPickleError(
                f"{self._source} references the global {module}.{name}, which a data file has no "
                "reason to contain; refusing to load it (it could run code). Delete the file and "
                "download the dataset from a source you trust"
            ) from None


def safe_load(data: bytes, source: str) -> Any:
    """Unpickle ``data`` (Python 2 strings load as ``bytes``), allowing only numpy arrays.

    Every other exception the unpickler raises for the data (damaged bytes give
    ``EOFError``, ``ValueError``, ``LookupError`` for an unknown string encoding,
    ``SystemError`` and ``MemoryError`` from a length field that claims too much, ...) becomes
    one ``pickle.UnpicklingError`` naming ``source``, the original as its ``__cause__``.
    ``MemoryError`` included: what the unpickler allocates is decided by the bytes (a length
    field), and the data itself is already in memory. Not ``KeyboardInterrupt``.

    Args:
        data: the pickle's bytes.
        source: the file name, for error messages.

    Raises:
        ForbiddenPickleError: the pickle references any other global.
        pickle.UnpicklingError: the data is not a valid pickle (e.g. truncated).
    """
    try:
        with warnings.catch_warnings():
            # A damaged or crafted file can make numpy warn while it rebuilds a dtype (a
            # deprecated argument value): that is a bad file, reported as one, not a warning.
            warnings.simplefilter("error")
            return _NumpyOnlyUnpickler(io.BytesIO(data), source).load()
    except ForbiddenPickleError:
        raise
    except Exception as e:  # MemoryError and RecursionError are Exceptions too
        raise pickle.UnpicklingError(f"{source} is not a valid pickle ({type(e).__name__}: {e})") from e
