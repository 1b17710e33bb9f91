"""Every benchmark script imports: a module it uses that moved is found here, not in a later
measuring run. Scripts whose optional peers (torchvision, grain, ...) are not installed are
skipped; a missing tinytorch module is a failure."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py"))


def test_the_benchmarks_are_found():
    assert {"bench_loader", "bench_workers", "timeline"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_imports(name, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] == "tinytorch":
            raise
        pytest.skip(f"{name} needs {e.name}")
