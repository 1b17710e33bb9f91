"""Print the torchvision golden values pinned in test_resize.py (not a test; run it by hand).

torchvision is not a test dependency, so its outputs on the images below were computed once
with this script in an environment that has it (torch 2.14.1, torchvision 0.29.1, Pillow
13.0.0, the project's /work/venv-bench):

    /work/venv-bench/bin/python tests/data/transforms/torchvision_goldens.py

Arrays are printed as base64 of their uint8 bytes, float32 ones as lists.
"""

from __future__ import annotations

import base64
import math

import numpy as np
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as F
from PIL import Image


def photo(c: int, h: int, w: int) -> np.ndarray:
    """A deterministic uint8 image with edges and gradients (no random generator involved)."""
    z, y, x = np.mgrid[0:c, 0:h, 0:w]
    return ((x * x * 7 + y * 13 + z * 71 + (x * y) % 5 * 40) % 256).astype(np.uint8)


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode()


def pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), "RGB")


def from_pil(image: Image.Image) -> np.ndarray:
    return np.asarray(image).transpose(2, 0, 1)


def main() -> None:
    # CenterCrop: a 2-channel 7 x 10 image whose values name their position.
    small = (np.arange(2 * 7 * 10).reshape(2, 7, 10) % 251 + 1).astype(np.uint8)
    print("CENTER_CROP = {")
    for size in [(4, 5), (3, 3), (7, 10), (8, 9), (9, 13), (5, 12), (6, 7)]:
        out = F.center_crop(torch.from_numpy(small), list(size)).numpy()
        print(f"    {size}: {b64(out)!r},")
    print("}")

    image = photo(3, 12, 16)
    interp = {
        "bilinear": T.InterpolationMode.BILINEAR,
        "bicubic": T.InterpolationMode.BICUBIC,
        "nearest": T.InterpolationMode.NEAREST,
    }
    print("RESIZE_PIL = {")
    for size, mode in [
        ((5, 7), "bilinear"),
        (8, "bilinear"),
        ((14, 19), "bilinear"),
        ((5, 7), "bicubic"),
        ((5, 7), "nearest"),
        ((9, 4), "bicubic"),
    ]:
        out = from_pil(T.Resize(size, interpolation=interp[mode])(pil(image)))
        print(f"    ({size!r}, {mode!r}): ({out.shape!r}, {b64(out)!r}),")
    print("}")
    print("RESIZE_TENSOR = {")
    for size, mode in [
        ((5, 7), "bilinear"),
        (8, "bilinear"),
        ((14, 19), "bilinear"),
        ((5, 7), "bicubic"),
        ((9, 4), "bicubic"),
    ]:
        out = T.Resize(size, interpolation=interp[mode], antialias=True)(torch.from_numpy(image)).numpy()
        print(f"    ({size!r}, {mode!r}): ({out.shape!r}, {b64(out)!r}),")
    print("}")
    plane = image[:1].astype(np.float32) / 255
    out = T.Resize((5, 7), antialias=True)(torch.from_numpy(plane)).numpy()
    print(f"RESIZE_FLOAT_TENSOR = {out[0].round(6).tolist()!r}")
    out = np.asarray(T.Resize((5, 7))(Image.fromarray(plane[0], "F")))
    print(f"RESIZE_FLOAT_PIL = {out.round(6).tolist()!r}")
    sizes = {}
    for (h, w), size, max_size in [
        ((12, 16), 8, 9),
        ((16, 12), 8, 9),
        ((12, 16), None, 10),
        ((375, 500), 256, None),
        ((500, 333), 224, None),
        ((333, 500), 224, 300),
        ((7, 7), 3, None),
    ]:
        sizes[(h, w, size, max_size)] = tuple(
            F.resize(torch.zeros(1, h, w), None if size is None else [size], max_size=max_size).shape[1:]
        )
    print(f"RESIZE_SIZES = {sizes!r}")

    out = from_pil(F.resized_crop(pil(image), 2, 3, 7, 9, [5, 6]))
    print(f"RESIZED_CROP_PIL = {b64(out)!r}")
    out = F.resized_crop(torch.from_numpy(image), 2, 3, 7, 9, [5, 6], antialias=True).numpy()
    print(f"RESIZED_CROP_TENSOR = {b64(out)!r}")

    # RandomResizedCrop's box rule: the boxes torchvision chose, with the draws it made.
    print("RRC_BOXES = [")
    for (h, w), scale, ratio, seed in [
        ((375, 500), (0.08, 1.0), (3 / 4, 4 / 3), 0),
        ((375, 500), (0.08, 1.0), (3 / 4, 4 / 3), 1),
        ((32, 32), (0.5, 1.0), (0.5, 2.0), 2),
        ((100, 60), (0.9, 1.0), (1.0, 1.5), 3),
        ((10, 200), (0.9, 1.0), (3 / 4, 4 / 3), 4),  # fallback: too wide
        ((200, 10), (0.9, 1.0), (3 / 4, 4 / 3), 5),  # fallback: too tall
        ((50, 60), (1.5, 2.0), (3 / 4, 4 / 3), 6),
    ]:  # fallback: whole image
        t = T.RandomResizedCrop(8, scale=scale, ratio=ratio)
        torch.manual_seed(seed)
        params = t.make_params([torch.zeros(1, h, w)])
        # Replay the same draws to record them.
        torch.manual_seed(seed)
        log_ratio = torch.log(torch.tensor(ratio))
        attempts, position = [], None
        for _ in range(10):
            fraction = torch.empty(1).uniform_(scale[0], scale[1]).item()
            aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
            attempts.append((fraction, aspect))
            bw = round(math.sqrt(h * w * fraction * aspect))
            bh = round(math.sqrt(h * w * fraction / aspect))
            if 0 < bw <= w and 0 < bh <= h:
                position = (
                    torch.randint(0, h - bh + 1, (1,)).item(),
                    torch.randint(0, w - bw + 1, (1,)).item(),
                )
                break
        box = (params["top"], params["left"], params["height"], params["width"])
        assert position is None or position == box[:2], (position, box)
        print(f"    ({(h, w)!r}, {scale!r}, {ratio!r}, {attempts!r}, {position!r}, {box!r}),")
    print("]")


if __name__ == "__main__":
    main()
