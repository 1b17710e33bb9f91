"""A verified, memory-mappable cache of named numpy arrays in one directory.

Layout: ``<dir>/<name>.npy`` for each array and ``<dir>/manifest.json``,
written last. A cache is written into a temporary directory and renamed into
place, so it is either complete or absent. :func:`load_arrays` trusts a cache
only when its manifest's format version and *fingerprint* (a description of
the source files it was built from) match, and every array has the recorded
shape, dtype and file size; otherwise it returns ``None`` and the caller
rebuilds it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["fingerprint", "load_arrays", "save_arrays"]

FORMAT_VERSION = 1


def fingerprint(paths: list[Path]) -> dict[str, list[int]]:
    """Size and modification time (ns) of each source file: changes when a file is replaced."""
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in paths}


def save_arrays(
    directory: Path,
    arrays: dict[str, np.ndarray[Any, Any]],
    source: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``arrays`` (and JSON-serializable ``meta``) to ``directory`` atomically.

    Replaces any previous cache there.

    Raises:
        OSError: the directory cannot be written (callers may go on without a cache).
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        entries = {}
        for name, array in arrays.items():
            path = staging / f"{name}.npy"
            np.save(path, np.ascontiguousarray(array), allow_pickle=False)
            entries[name] = {
                "shape": list(array.shape),
                "dtype": array.dtype.str,
                "bytes": path.stat().st_size,
            }
        manifest = {
            "version": FORMAT_VERSION,
            "source": source,
            "arrays": entries,
            "meta": meta or {},
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_arrays(
    directory: Path, source: dict[str, Any]
) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, Any]] | None:
    """Memory-map the cached arrays; ``(arrays, meta)``, or ``None`` if absent or unverified.

    The arrays are read-only views of the files: the OS page cache holds them,
    shared by every process that maps them.
    """
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("version") != FORMAT_VERSION or manifest.get("source") != source:
        return None
    arrays = {}
    for name, entry in manifest.get("arrays", {}).items():
        path = directory / f"{name}.npy"
        try:
            if path.stat().st_size != entry["bytes"]:
                return None
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, KeyError):
            return None
        if list(array.shape) != entry["shape"] or array.dtype.str != entry["dtype"]:
            return None
        arrays[name] = np.asarray(array)
    return arrays, manifest.get("meta", {})
