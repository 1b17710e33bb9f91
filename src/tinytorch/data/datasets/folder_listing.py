"""torchvision's folder listing: which files a ``root/<class>/**/<file>`` tree holds, in which order.

The rules (and the error messages) are torchvision's ``find_classes`` and ``make_dataset``
(torchvision/datasets/folder.py), so :class:`~tinytorch.data.datasets.image_folder.ImageFolder`
lists the same samples with the same indices as torchvision's: classes are the sorted
sub-folder names; within a class, ``os.walk`` (following links) with its tuples sorted, then
the file names sorted.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["find_classes", "make_dataset"]


def find_classes(directory: str | os.PathLike[str]) -> tuple[list[str], dict[str, int]]:
    """The class folders of ``directory``, sorted, and their indices (torchvision's rule).

    Raises:
        FileNotFoundError: ``directory`` does not exist or has no sub-folder.
    """
    try:
        classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{directory} does not exist; ImageFolder(root=...) takes a folder with one sub-folder per class"
        ) from None
    if not classes:
        raise FileNotFoundError(
            f"Couldn't find any class folder in {directory}. ImageFolder expects root/<class>/<image> "
            "(e.g. root/cat/001.jpg, root/dog/002.jpg)"
        )
    return classes, {name: i for i, name in enumerate(classes)}


def make_dataset(
    directory: str | os.PathLike[str],
    class_to_idx: dict[str, int],
    extensions: str | tuple[str, ...] | None = None,
    is_valid_file: Callable[[str], bool] | None = None,
    allow_empty: bool = False,
) -> list[tuple[str, int]]:
    """``(path, class_index)`` for every valid file, in torchvision's order.

    Classes in sorted order; within a class, ``os.walk`` (following links) with the
    ``(dirpath, dirnames, filenames)`` tuples sorted and the file names sorted; a file is valid
    when its lower-cased name ends with one of ``extensions`` or ``is_valid_file(path)`` says
    so (exactly one of the two must be given).

    Raises:
        ValueError: ``class_to_idx`` is empty, or not exactly one of ``extensions`` and
            ``is_valid_file`` is given.
        FileNotFoundError: a class has no valid file and ``allow_empty`` is False; the message
            names the classes ("Found no valid file for the classes ...", as torchvision's).
    """
    directory = os.path.expanduser(directory)
    if not class_to_idx:
        raise ValueError("'class_to_index' must have at least one entry to collect any samples.")
    if (extensions is None) == (is_valid_file is None):
        raise ValueError("Both extensions and is_valid_file cannot be None or not None at the same time")
    if extensions is not None:
        valid = _suffix_check(extensions if isinstance(extensions, str) else tuple(extensions))
    else:
        assert is_valid_file is not None
        valid = is_valid_file
    instances: list[tuple[str, int]] = []
    found: set[str] = set()
    for target_class in sorted(class_to_idx):
        class_index = class_to_idx[target_class]
        target_dir = os.path.join(directory, target_class)
        if not os.path.isdir(target_dir):
            continue
        for root, _, fnames in sorted(os.walk(target_dir, followlinks=True)):
            for fname in sorted(fnames):
                path = os.path.join(root, fname)
                if valid(path):
                    instances.append((path, class_index))
                    found.add(target_class)
    empty = set(class_to_idx) - found
    if empty and not allow_empty:
        message = f"Found no valid file for the classes {', '.join(sorted(empty))}. "
        if extensions is not None:
            shown = extensions if isinstance(extensions, str) else ", ".join(extensions)
            message += f"Supported extensions are: {shown}"
        message += (
            " (add image files to those folders, remove them, or pass allow_empty=True to keep "
            "them as classes without samples)"
        )
        raise FileNotFoundError(message)
    return instances


def _suffix_check(suffixes: str | tuple[str, ...]) -> Callable[[str], bool]:
    def valid(path: str) -> bool:
        return path.lower().endswith(suffixes)

    return valid
