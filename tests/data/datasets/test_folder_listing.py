"""torchvision's folder listing: classes, file order, selection and errors, golden from torchvision."""

from __future__ import annotations

import os

import pytest

from support.images import ORDER_FILES, TORCHVISION_ORDER
from tinytorch.data.datasets.folder_listing import find_classes, make_dataset


@pytest.fixture
def tree(tmp_path):
    for name in ORDER_FILES:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp_path


def test_the_order_is_torchvisions(tree):
    classes, class_to_idx = find_classes(tree)
    assert classes == ["C_upper", "a_class", "b_class"]
    samples = make_dataset(tree, class_to_idx, extensions=(".jpg", ".jpeg", ".png", ".bmp"))
    assert [(os.path.relpath(p, tree), t) for p, t in samples] == TORCHVISION_ORDER


def test_a_subset_of_classes_and_a_string_extension(tree):
    samples = make_dataset(tree, {"b_class": 5}, extensions=".png")
    assert [(os.path.relpath(p, tree), t) for p, t in samples] == [("b_class/sub/y.png", 5)]


def test_missing_class_folders_are_passed_over_and_empty_ones_refused(tree):
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes a_class, zz"):
        make_dataset(tree, {"a_class": 0, "zz": 1}, extensions=".gif")
    assert make_dataset(tree, {"zz": 0}, extensions=".gif", allow_empty=True) == []


def test_argument_errors_are_torchvisions(tree):
    with pytest.raises(ValueError, match="must have at least one entry"):
        make_dataset(tree, {}, extensions=".jpg")
    with pytest.raises(ValueError, match="Both extensions and is_valid_file"):
        make_dataset(tree, {"a_class": 0})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_classes(tree / "nowhere")
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder"):
        find_classes(tree / "a_class")
