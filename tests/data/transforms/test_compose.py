import ast
from pathlib import Path

import numpy as np
import pytest

from tinytorch.data.transforms import base
from tinytorch.data.transforms.compose import FUSION_RULES, Compose, FusionRule, fuse
from tinytorch.data.transforms.fused import CropFlipNormalize
from tinytorch.data.transforms.image import CropThenFlip, RandomCrop, RandomHorizontalFlip
from tinytorch.data.transforms.normalize import Normalize, ToFloat, ToFloatNormalize
from tinytorch.data.transforms.resize import RandomResizedCrop, ResizedCropThenFlip


def test_compose_flattens_and_refuses_non_callables():
    inner = Compose([ToFloat()])
    assert len(Compose([inner, RandomHorizontalFlip()]).transforms) == 2
    with pytest.raises(TypeError, match="Compose takes callables"):
        Compose([3])
    with pytest.raises(TypeError, match=r"Compose takes a list of transforms, got RandomHorizontalFlip"):
        Compose(RandomHorizontalFlip())
    assert Compose([lambda x: x + 1])(np.zeros((3, 2, 2))).sum() == 12


def test_the_base_module_imports_no_concrete_transform():
    # Anywhere in the module, functions included (the old lazy import inside _fuse was a cycle).
    tree = ast.parse(Path(base.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in imported if m and m.startswith("tinytorch.data.transforms")]


def test_standard_augmentation_fuses_into_one_step():
    steps = [RandomCrop(32, padding=4), RandomHorizontalFlip(), ToFloat(), Normalize(0.5, 0.25)]
    (only,) = Compose(steps).steps
    assert type(only) is CropFlipNormalize
    assert type(only.normalize) is ToFloatNormalize
    assert type(only.crop_flip) is CropThenFlip


@pytest.mark.parametrize(
    ("steps", "kinds"),
    [
        ([ToFloat(), Normalize(0, 1)], [ToFloatNormalize]),
        ([ToFloat(), ToFloat(), Normalize(0, 1)], [ToFloat, ToFloatNormalize]),
        (
            [RandomCrop(4), RandomHorizontalFlip(), RandomHorizontalFlip()],
            [CropThenFlip, RandomHorizontalFlip],
        ),
        ([RandomHorizontalFlip(), RandomCrop(4)], [RandomHorizontalFlip, RandomCrop]),
        ([RandomCrop(4), RandomHorizontalFlip(), Normalize(0, 1)], [CropFlipNormalize]),
        ([RandomCrop(4), ToFloat(), Normalize(0, 1)], [RandomCrop, ToFloatNormalize]),
        ([RandomResizedCrop(4), RandomHorizontalFlip(), ToFloat()], [ResizedCropThenFlip, ToFloat]),
    ],
)
def test_fusion_follows_the_rules(steps, kinds):
    assert [type(s) for s in fuse(steps)] == kinds


def test_subclasses_are_not_fused_by_rules_that_do_not_name_them():
    class MyCrop(RandomCrop):
        def apply(self, batch, params):
            return super().apply(batch, params) * 0

    steps = fuse([MyCrop(4), RandomHorizontalFlip()])
    assert [type(s) for s in steps] == [MyCrop, RandomHorizontalFlip]


def test_rules_are_data():
    assert all(isinstance(r, FusionRule) for r in FUSION_RULES)
    seen = []
    swap = FusionRule((RandomHorizontalFlip,), (RandomCrop,), lambda a, b: seen.append((a, b)) or b)
    flip, crop = RandomHorizontalFlip(), RandomCrop(4)
    assert fuse([flip, crop], rules=[swap]) == [crop]
    assert seen == [(flip, crop)]
