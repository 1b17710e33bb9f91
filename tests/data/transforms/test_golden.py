"""Golden bytes of every transform path: a refactoring must not change one output byte.

The digests were computed with the code of commit ed1838a (before fusion moved out of the base
module); a deliberate change of a random stream or a formula updates them and says why.
"""

import hashlib

import numpy as np
import pytest

from tinytorch.data.transforms.compose import Compose
from tinytorch.data.transforms.image import Cutout, RandomCrop, RandomErasing, RandomHorizontalFlip
from tinytorch.data.transforms.normalize import Normalize, ToFloat

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def images(n=6, c=3, h=12, w=16, seed=11):
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


PIPELINES = {
    "crop_flip_tofloat_normalize": lambda: Compose(
        [RandomCrop((12, 16), padding=4), RandomHorizontalFlip(), ToFloat(), Normalize(MEAN, STD)]
    ),
    "crop_flip_normalize": lambda: Compose(
        [
            RandomCrop((12, 16), padding=3, fill=9),
            RandomHorizontalFlip(),
            Normalize([120, 110, 100], [60, 61, 62]),
        ]
    ),
    "smaller_crop_flip_normalize": lambda: Compose(
        [RandomCrop(8, padding=2), RandomHorizontalFlip(0.7), ToFloat(), Normalize(MEAN, STD)]
    ),
    "crop_then_flip_reflect": lambda: Compose(
        [RandomCrop((10, 12), padding=2, pad_mode="reflect"), RandomHorizontalFlip()]
    ),
    "crop_alone_edge": lambda: RandomCrop(9, padding=1, pad_mode="edge"),
    "flip_alone": lambda: RandomHorizontalFlip(0.4),
    "tofloat_normalize": lambda: Compose([ToFloat(), Normalize(MEAN, STD)]),
    "normalize_alone": lambda: Normalize([120, 110, 100], [60, 61, 62]),
    "tofloat_alone": lambda: ToFloat(),
    "erasing": lambda: RandomErasing(p=0.8, value=3),
    "cutout": lambda: Cutout(5, p=0.9),
    "flip_then_crop_unfused": lambda: Compose([RandomHorizontalFlip(), RandomCrop(10, padding=1)]),
}

DIGESTS = {
    "crop_alone_edge": "873f7a7aa82825b9",
    "crop_flip_normalize": "daa77f8334256799",
    "crop_flip_tofloat_normalize": "551badc92758fd02",
    "crop_then_flip_reflect": "0de734bff5be036b",
    "cutout": "b971a418a30ce59c",
    "erasing": "4822d6fff1f3555b",
    "flip_alone": "6fe86ffdab8745a9",
    "flip_then_crop_unfused": "c91c3f6f841cd203",
    "normalize_alone": "3f06061cd86188fb",
    "smaller_crop_flip_normalize": "bdf8d3ed3f581223",
    "tofloat_alone": "897e605b9647baa1",
    "tofloat_normalize": "031f80d0147911b0",
}


def digest(out):
    return hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_golden_bytes(name):
    out = PIPELINES[name]()(images(), np.random.default_rng(2024))
    assert digest(out) == DIGESTS[name]
