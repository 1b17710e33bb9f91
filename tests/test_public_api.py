"""The public facades, import hygiene, and the stage layering of the package tree."""

import ast
import pathlib
import subprocess
import sys

import tinytorch
import tinytorch.core.dataloader as seed_path
import tinytorch.data as data

STAGES = ["storage", "datasets", "sampling", "fetch", "transforms", "collate", "workers", "loader"]
PACKAGE = pathlib.Path(data.__file__).parent


def test_seed_imports_work():
    from tinytorch import DataLoader, Dataset  # noqa: F401
    from tinytorch.core.dataloader import DataLoader as D2  # noqa: F401
    from tinytorch.core.dataloader import Dataset as D3  # noqa: F401


def test_every_public_name_is_the_same_object_on_every_path():
    assert sorted(data.__all__) == sorted(tinytorch.__all__) == sorted(seed_path.__all__)
    for name in data.__all__:
        assert getattr(tinytorch, name) is getattr(data, name) is getattr(seed_path, name), name


def test_public_names_have_docstrings():
    for name in data.__all__:
        assert getattr(data, name).__doc__, name


def test_import_starts_nothing_and_reads_no_environment():
    code = r"""
import os, threading, numpy
reads = []
class Watched(type(os.environ)):
    def __getitem__(self, key):
        reads.append(key)
        return super().__getitem__(key)
os.environ.__class__ = Watched
import tinytorch, tinytorch.core.dataloader
import multiprocessing
assert not reads, reads
assert threading.active_count() == 1, threading.enumerate()
assert not multiprocessing.active_children()
print("clean")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "clean", out.stderr


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_stages_never_import_later_stages():
    violations = []
    for rank, stage in enumerate(STAGES):
        for path in (PACKAGE / stage).rglob("*.py"):
            for module in imported_modules(path):
                parts = module.split(".")
                later = (
                    parts[:2] == ["tinytorch", "data"]
                    and len(parts) > 2
                    and parts[2] in STAGES
                    and STAGES.index(parts[2]) > rank
                )
                if later:
                    violations.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not violations, violations


def test_layering_check_can_fail():
    # The check above must see real imports: the loader does import earlier stages.
    loader_imports = {m for path in (PACKAGE / "loader").rglob("*.py") for m in imported_modules(path)}
    assert "tinytorch.data.sampling.batching" in loader_imports
