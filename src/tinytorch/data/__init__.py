"""tinytorch data: the public API of the data pipeline.

The subpackages follow the data flow, each importing only the stages before it::

    storage -> datasets -> sampling -> fetch -> transforms -> collate -> workers -> loader

``seeding`` (where randomness comes from) and ``validate`` (argument checks)
are shared by all stages. Importing this package starts nothing and reads no
environment.
"""

from tinytorch.data.collate.default import CollateError, default_collate, default_convert
from tinytorch.data.datasets.base import Dataset, IterableDataset
from tinytorch.data.datasets.combine import ConcatDataset, Subset, random_split
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.datasets.tensor import TensorDataset
from tinytorch.data.loader.dataloader import DataLoader
from tinytorch.data.sampling.batching import BatchSampler
from tinytorch.data.sampling.samplers import (
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from tinytorch.data.seeding import BatchContext, get_batch_context

__all__ = [
    "BatchContext",
    "BatchSampler",
    "CollateError",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "StackedSamples",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "default_collate",
    "default_convert",
    "get_batch_context",
    "random_split",
]
