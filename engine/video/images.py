"""Still images as a source: a directory of numbered frames (a render), or an image pair.

Frames are read with FFmpeg's image decoders (PNG, JPEG, TIFF, DPX, ...) as sRGB; a frame
numbered ``n`` in a directory is at ``(n - first) / step / rate`` seconds, so frames missing from
a render leave gaps in time. Scene-linear float images (EXR, HDR, PFM) are refused.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from engine.errors import VfiError, short_reason
from engine.video.color import ColorInfo, bit_depth, rgb_format
from engine.video.probing import is_transparent
from engine.video.source import Source, SourceFrame, SourceInfo, open_container, thumbnail

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".tga", ".ppm", ".dpx")
# Scene-linear floating-point images (VFX renders): no display transform is known for them, and
# storing their linear values as 8/16-bit picture would show them dark and clip the highlights.
FLOAT_IMAGE_EXTS = (".exr", ".hdr", ".pfm")
FLOAT_REFUSAL = (
    "is a floating-point (scene-linear) image, which vfi does not interpolate yet; export the "
    "frames through your view transform as 16-bit PNG or TIFF"
)
DEFAULT_FRAMES_FPS = Fraction(24)


def is_float(pix_fmt: str) -> bool:
    """Floating-point samples (gbrpf32le, rgbaf16le, grayf32le ...)."""
    return bool(re.search(r"f(16|32)(le|be)?$", pix_fmt))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def list_frames(directory: Path) -> list[Path]:
    """Image files of a directory in frame order (by the last number in the name, then name)."""
    files = [p for p in directory.iterdir() if p.is_file() and is_image_file(p)]
    if not files:
        floats = sorted(p for p in directory.iterdir() if p.suffix.lower() in FLOAT_IMAGE_EXTS)
        if floats:
            raise VfiError(f"{floats[0]} {FLOAT_REFUSAL}")
        raise VfiError(f"{directory} holds no image frames ({', '.join(IMAGE_EXTS[:4])}, ...)")

    return sorted(files, key=lambda p: (-1 if (n := frame_number(p)) is None else n, p.name))


def frame_number(path: Path) -> int | None:
    """The frame number in a file name: its last run of digits (``shot_v2.1047.exr`` -> 1047)."""
    digits = frame_digits(path)
    return int(digits.group()) if digits else None


def frame_digits(path: Path) -> re.Match | None:
    """Where the frame number is in ``path.stem``: its last run of digits."""
    found = list(re.finditer(r"\d+", path.stem))
    return found[-1] if found else None


def numbered_slots(files: list[Path]) -> tuple[list[int], int] | None:
    """(each frame's slot, the numbering's step) when the numbers say where frames are missing.

    The step is the numbers' common divisor (renders numbered 10, 20, 30 are consecutive); a slot
    is (number - first) / step. None when a file has no number or numbers repeat: consecutive.
    """
    numbers = [frame_number(p) for p in files]
    if any(n is None for n in numbers) or any(b <= a for a, b in itertools.pairwise(numbers)):
        return None
    step = math.gcd(*(b - a for a, b in itertools.pairwise(numbers))) or 1
    return [(n - numbers[0]) // step for n in numbers], step


class ImageSequence(Source):
    """Still images as frames: a pair, or a directory of numbered frames.

    In a directory, frame ``i`` is at ``slot_i / rate`` where ``slot_i`` is its number minus the
    first frame's: a frame missing from a render (``0046``, ``0048``) leaves a gap in time that the
    interpolation fills like any other. Files without such numbers are consecutive.
    """

    def __init__(self, path: Path, files: list[Path], kind: str, rate: Fraction):
        self.path = path
        self.files = files
        self.errors = 0
        self.dropped = 0
        numbered = numbered_slots(files) if kind == "frames" else None
        # step: the numbering's (None when the files are taken as consecutive, unnumbered)
        self.slots, self.step = numbered or (list(range(len(files))), None)
        step = self.step or 1
        base = frame_number(files[0]) or 0
        missing = sorted(set(range(self.slots[-1] + 1)) - set(self.slots))
        first = read_image(files[0])
        h, w = first.height, first.width
        pix_fmt = first.format.name
        if is_float(pix_fmt):
            raise VfiError(f"{files[0]} {FLOAT_REFUSAL}")
        depth = bit_depth(pix_fmt) if pix_fmt != "pal8" else 8
        self.info = SourceInfo(
            path=path,
            kind=kind,
            width=w,
            height=h,
            rate=rate,
            start=Fraction(0),
            end=Fraction(self.slots[-1] + 1) / rate,
            last_time=Fraction(self.slots[-1]) / rate,
            frame_count=len(files),
            vfr=False,
            codec=first_codec(files[0]),
            pix_fmt=pix_fmt,
            depth=depth,
            color=ColorInfo(matrix=1, range=2, primaries=1, trc=13),  # images: sRGB
            tick=1 / rate,
            transparent=is_transparent(first),
            rotation=int(getattr(first, "rotation", 0) or 0),  # a photo's EXIF orientation
            missing=tuple(base + step * m for m in missing),
        )

    def frames(
        self, thumb_width: int | None = None, deinterlace: str = ""
    ) -> Iterator[SourceFrame]:
        import torch

        fmt = rgb_format(self.info.depth)
        for i, p in enumerate(self.files):
            frame = read_image(p)
            if (frame.width, frame.height) != (self.info.width, self.info.height):
                raise VfiError(
                    f"{p.name} is {frame.width}x{frame.height} but the first frame is "
                    f"{self.info.width}x{self.info.height}; all frames must have one size"
                )
            arr = frame.to_ndarray(format=fmt)
            thumb = thumbnail(frame, {"format": fmt}, self.info.depth, thumb_width)
            time = Fraction(self.slots[i]) / self.info.rate
            yield SourceFrame(i, time, torch.from_numpy(arr), thumb)


def first_codec(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def read_image(path: Path):
    import av

    container = open_container(path)
    try:
        for frame in container.decode(video=0):
            return frame
    except (av.error.FFmpegError, IndexError) as e:
        raise VfiError(f"{path} is not a readable image ({short_reason(e)})") from None
    finally:
        container.close()
    raise VfiError(f"{path} is not a readable image")
