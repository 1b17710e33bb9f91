"""tinytorch data: the public API of the data pipeline.

The subpackages follow the data flow, each importing only the stages before it::

    storage -> datasets -> sampling -> fetch -> transforms -> collate -> workers -> loader

``seeding`` (where randomness comes from), ``worker_info`` (which worker runs the code) and
``validate`` (argument checks) are shared by all stages. Importing this package starts nothing and reads no
environment.
"""

from tinytorch.data.collate.default import CollateError, default_collate, default_convert
from tinytorch.data.datasets.base import Dataset, IterableDataset
from tinytorch.data.datasets.chain import ChainDataset
from tinytorch.data.datasets.cifar import CIFAR10Dataset, CIFAR100Dataset
from tinytorch.data.datasets.combine import ConcatDataset, Subset, random_split
from tinytorch.data.datasets.image_folder import ImageFolder, SkippedImageWarning
from tinytorch.data.datasets.image_shards import ImageShards, write_image_shards
from tinytorch.data.datasets.packed import PackedSequence
from tinytorch.data.datasets.sharded import ShardedDataset, write_shards
from tinytorch.data.datasets.stack import StackDataset
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.datasets.tensor import TensorDataset
from tinytorch.data.loader.dataloader import DataLoader
from tinytorch.data.sampling.batching import BatchSampler
from tinytorch.data.sampling.distributed import DistributedEvalSampler, DistributedSampler
from tinytorch.data.sampling.index_shuffle import IndexShuffleSampler
from tinytorch.data.sampling.samplers import (
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from tinytorch.data.sampling.streams import split_stream
from tinytorch.data.sampling.windowed import WindowedShuffleSampler, windowed_order
from tinytorch.data.seeding import BatchContext, get_batch_context
from tinytorch.data.storage.cifar_format import CorruptDatasetError
from tinytorch.data.storage.decode import ImageDecodeError, ImageTooLargeError, decode_image, read_image
from tinytorch.data.storage.download import ChecksumError, DownloadError
from tinytorch.data.storage.extract import UnsafeArchiveError
from tinytorch.data.storage.shards import CorruptShardError, ShardError
from tinytorch.data.storage.unpickle import ForbiddenPickleError
from tinytorch.data.transforms.base import Transform
from tinytorch.data.transforms.compose import Compose
from tinytorch.data.transforms.image import Cutout, RandomCrop, RandomErasing, RandomHorizontalFlip
from tinytorch.data.transforms.normalize import Normalize, ToFloat
from tinytorch.data.transforms.normalizer import Normalizer
from tinytorch.data.transforms.resize import CenterCrop, RandomResizedCrop, Resize
from tinytorch.data.worker_info import WorkerInfo, get_worker_info
from tinytorch.data.workers.capacity import InsufficientSharedMemoryError
from tinytorch.data.workers.errors import (
    WorkerDiedError,
    WorkerError,
    WorkerStartError,
    WorkerTimeoutError,
)

__all__ = [
    "BatchContext",
    "BatchSampler",
    "CIFAR10Dataset",
    "CIFAR100Dataset",
    "CenterCrop",
    "ChainDataset",
    "ChecksumError",
    "CollateError",
    "Compose",
    "ConcatDataset",
    "CorruptDatasetError",
    "CorruptShardError",
    "Cutout",
    "DataLoader",
    "Dataset",
    "DistributedEvalSampler",
    "DistributedSampler",
    "DownloadError",
    "ForbiddenPickleError",
    "ImageDecodeError",
    "ImageFolder",
    "ImageShards",
    "ImageTooLargeError",
    "IndexShuffleSampler",
    "InsufficientSharedMemoryError",
    "IterableDataset",
    "Normalize",
    "Normalizer",
    "PackedSequence",
    "RandomCrop",
    "RandomErasing",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomSampler",
    "Resize",
    "Sampler",
    "SequentialSampler",
    "ShardError",
    "ShardedDataset",
    "SkippedImageWarning",
    "StackDataset",
    "StackedSamples",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "ToFloat",
    "Transform",
    "UnsafeArchiveError",
    "WeightedRandomSampler",
    "WindowedShuffleSampler",
    "WorkerDiedError",
    "WorkerError",
    "WorkerInfo",
    "WorkerStartError",
    "WorkerTimeoutError",
    "decode_image",
    "default_collate",
    "default_convert",
    "get_batch_context",
    "get_worker_info",
    "random_split",
    "read_image",
    "split_stream",
    "windowed_order",
    "write_image_shards",
    "write_shards",
]
