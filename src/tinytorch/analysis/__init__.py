"""Analysis tools on top of the pipeline: diagnosis of loader statistics, benchmarks, profiles."""

from tinytorch.analysis.diagnose import Diagnosis, diagnose

__all__ = ["Diagnosis", "diagnose"]
