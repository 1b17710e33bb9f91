"""JPEG decoders side by side: images/s on one thread and on two, real CIFAR JPEGs and 500x375 ones.

The files are read into memory first (the disk is not measured). Each decoder turns JPEG bytes
into an RGB uint8 array (OpenCV's BGR is converted, as a user of it must); the rounds take turns
and the median is reported. "2 threads" runs the same decoder in a pool of two threads, which is
faster only when the decoder releases the GIL. "at 1/2 scale" decodes 500x375 to 250x188 by
libjpeg-turbo's DCT scaling (what ``decode_size`` asks for when the target is at most half the
image's size; finer factors such as 5/8, which simplejpeg and PyTurboJPEG also offer, measured
slower than a full decode here, so the library does not use them).

Run with the interpreter that has the candidates (benchmarks/bench_images.py --help says how):

    PYTHONPATH=src /work/venv-bench/bin/python benchmarks/image_decoders.py
    PYTHONPATH=src /tmp/venv-simd/bin/python benchmarks/image_decoders.py --only pillow  # Pillow-SIMD
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from common import in_turns, print_table

CIFAR = Path("/work/data/cifar-images/train")
Decoder = Callable[[bytes], Any]


def cifar_files(limit: int) -> list[bytes]:
    """``limit`` CIFAR JPEGs, the same number from each class folder, in sorted order."""
    classes = sorted(p for p in CIFAR.iterdir() if p.is_dir())
    per_class = -(-limit // len(classes))
    paths = [f for c in classes for f in sorted(c.iterdir())[:per_class]][:limit]
    return [p.read_bytes() for p in paths]


def large_jpegs(sources: list[bytes], size: tuple[int, int] = (500, 375), quality: int = 90) -> list[bytes]:
    """The CIFAR images upscaled to ``size`` (width, height) with Pillow's bicubic, JPEG quality 90."""
    from PIL import Image

    out = []
    for data in sources:
        image = Image.open(io.BytesIO(data)).convert("RGB").resize(size, Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out


def candidates(half: bool) -> dict[str, Decoder]:
    """Every decoder that imports here, as ``bytes -> RGB uint8`` (HWC, or CHW for torchvision).

    ``half``: decode at 1/2 scale by DCT scaling, the way each library offers it (what
    ``decode_size`` does for a request at most half the image's size).
    """
    found: dict[str, Decoder] = {}
    try:
        import PIL
        from PIL import Image

        def pillow(data: bytes) -> Any:
            image = Image.open(io.BytesIO(data))
            if half:
                image.draft("RGB", (image.size[0] // 2, image.size[1] // 2))
            return np.asarray(image.convert("RGB"))

        found[f"Pillow {PIL.__version__}"] = pillow
    except ImportError:
        pass
    try:
        import simplejpeg

        def simple(data: bytes) -> Any:
            if half:  # as the library does: the header, then the size the 1/2 scale gives
                height, width, _, _ = simplejpeg.decode_jpeg_header(data)
                return simplejpeg.decode_jpeg(
                    data, "RGB", min_height=-(-height // 2), min_width=-(-width // 2)
                )
            return simplejpeg.decode_jpeg(data, "RGB")

        found[f"simplejpeg {simplejpeg.__version__}"] = simple
    except ImportError:
        pass
    try:
        import turbojpeg

        tj = turbojpeg.TurboJPEG()

        def pyturbo(data: bytes) -> Any:
            factor = (1, 2) if half else None
            return tj.decode(data, pixel_format=turbojpeg.TJPF_RGB, scaling_factor=factor)

        found[f"PyTurboJPEG {turbojpeg.__version__}"] = pyturbo
    except (ImportError, RuntimeError, OSError):
        pass
    try:
        import cv2

        cv2.setNumThreads(1)
        flags = cv2.IMREAD_REDUCED_COLOR_2 if half else cv2.IMREAD_COLOR

        def opencv(data: bytes) -> Any:
            return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), flags), cv2.COLOR_BGR2RGB)

        found[f"OpenCV {cv2.__version__}"] = opencv
    except ImportError:
        pass
    if not half:  # torchvision.io has no scaled decode
        try:
            import torch
            import torchvision
            from torchvision.io import decode_jpeg

            torch.set_num_threads(1)

            def tv(data: bytes) -> Any:
                return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))

            found[f"torchvision.io {torchvision.__version__.split('+')[0]}"] = tv
        except ImportError:
            pass
    return found


def rate(decode: Decoder, files: list[bytes], pool: ThreadPoolExecutor | None) -> float:
    """Images per second decoding ``files`` once: a plain loop, or chunks of 32 files in ``pool``."""

    def chunk(part: list[bytes]) -> None:
        for data in part:
            decode(data)

    start = time.perf_counter()
    if pool is None:
        chunk(files)
    else:
        for _ in pool.map(chunk, [files[i : i + 32] for i in range(0, len(files), 32)]):
            pass
    return len(files) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=4000, help="CIFAR JPEGs (default 4000)")
    parser.add_argument("--large", type=int, default=300, help="500x375 JPEGs (default 300)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", help="decoders whose name starts with this (case-insensitive)")
    args = parser.parse_args()

    small = cifar_files(args.small)
    large = large_jpegs(small[: args.large])
    print(
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {len(small)} CIFAR JPEGs "
        f"(mean {statistics.mean(map(len, small)):,.0f} B), {len(large)} 500x375 quality-90 JPEGs "
        f"(mean {statistics.mean(map(len, large)):,.0f} B); median of {args.rounds} interleaved rounds"
    )
    rows = []
    for label, files, half in (("32x32", small, False), ("500x375", large, False), ("500x375", large, True)):
        decoders = {
            name: d
            for name, d in candidates(half).items()
            if not args.only or name.lower().startswith(args.only.lower())
        }
        with ThreadPoolExecutor(2) as pool:
            measures = {
                (name, threads): (lambda d=d, t=threads, f=files: rate(d, f, pool if t == 2 else None))
                for name, d in decoders.items()
                for threads in (1, 2)
            }
            rates = in_turns(measures, args.rounds)  # type: ignore[arg-type]
        for name in decoders:
            setting = label + (" at 1/2 scale" if half else "")
            one, two = rates[(name, 1)], rates[(name, 2)]  # type: ignore[index]
            rows.append((setting, name, f"{one:,.0f}", f"{two:,.0f}", f"{two / one:.2f}"))
    print_table(rows, ("images", "decoder", "1 thread /s", "2 threads /s", "2 / 1"))


if __name__ == "__main__":
    main()
