"""The seed's import path for the data pipeline (TinyTorch module 08).

``from tinytorch.core.dataloader import DataLoader, Dataset`` works, as does
every other public name of :mod:`tinytorch.data`; this module holds no logic.
"""

from tinytorch.data import *  # noqa: F403
from tinytorch.data import __all__ as __all__
