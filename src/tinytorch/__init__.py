"""tinytorch: a deterministic, resumable, vectorized data pipeline on numpy.

``from tinytorch import DataLoader, Dataset`` exposes every public name of
:mod:`tinytorch.data`; importing starts nothing and reads no environment.
"""

from tinytorch.data import *  # noqa: F403
from tinytorch.data import __all__ as __all__

__version__ = "0.1.0"
