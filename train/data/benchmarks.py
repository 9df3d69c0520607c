"""Benchmark datasets: where each set's files are and how its frames are prepared.

Each ``<set>_samples(root, ...)`` checks the layout (a missing or malformed set raises VfiError
with the expected layout and where to get it) and returns a list of :class:`Sample` (file paths,
no pixels). :func:`iter_items` then reads them as float (1, 3, H, W) tensors in [0, 1], applying a
set's frame preparation (Xiph's resize/crop, X4K's 2K resize). User videos are decoded on the fly by
:func:`video_items`. How predictions are scored (padding, rounding, SSIM kind) is the protocol's
business and lives in :mod:`train.bench`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.errors import VfiError
from train.data.triplets import DVF_LAYOUT, IMAGE_SUFFIXES, DVFTriplets, natural_key, read_image

URLS = {
    "ucf101": "https://github.com/liuziwei7/voxel-flow",
    "snu-film": "https://myungsub.github.io/CAIN/",
    "middlebury": "https://vision.middlebury.edu/flow/data/",
    "xiph": "https://media.xiph.org/video/derf/",
    "x4k": "https://github.com/JihyongOh/XVFI",
}

XIPH_SEQUENCES = (
    "BoxingPractice",
    "Crosswalk",
    "DrivingPOV",
    "FoodMarket",
    "FoodMarket2",
    "RitualDance",
    "SquareAndTimelapse",
    "Tango",
)
XIPH_SIZE = (1080, 2048)  # (H, W) of both the 2K (resized) and the "4K" (centre crop) protocol


@dataclass(frozen=True)
class Sample:
    """One scored frame: predict ``gt`` at time ``t`` between ``img0`` and ``img1``."""

    name: str
    img0: Path
    img1: Path
    gt: Path
    t: float = 0.5
    group: str = ""  # samples sharing an input pair (X4K: the 7 frames between two inputs)


@dataclass
class Item:
    """A loaded sample: float (1, 3, H, W) tensors in [0, 1] on the CPU."""

    name: str
    img0: torch.Tensor
    img1: torch.Tensor
    gt: torch.Tensor
    t: float = 0.5
    group: str = ""


def _missing(what: str, root: Path, layout: str, key: str, detail: str = "") -> VfiError:
    detail = f" ({detail})" if detail else ""
    return VfiError(
        f"{what} not found at {root}{detail}; expected {layout}; get it from {URLS[key]}"
    )


# ----------------------------------------------------------------------------------------------
# Triplet sets given as files


def ucf101_samples(root: str | Path) -> list[Sample]:
    """UCF101 test triplets in the DVF layout (379 at 256x256 in the full set)."""
    ds = DVFTriplets(root, what="UCF101 (DVF layout)", url=URLS["ucf101"])
    return _from_triplets(ds.samples)


def triplet_samples(root: str | Path) -> list[Sample]:
    """Any folder of triplets in the DVF layout."""
    return _from_triplets(DVFTriplets(root, what="triplet folder").samples)


def _from_triplets(samples) -> list[Sample]:
    return [Sample(name, p0, p2, gt) for name, (p0, gt, p2) in samples]


MIDDLEBURY_LAYOUT = (
    "other-data/<Seq>/frame10.png, frame11.png and other-gt-interp/<Seq>/frame10i11.png "
    "(the 'other' color data and interpolation ground truth)"
)


def middlebury_samples(root: str | Path) -> list[Sample]:
    """Middlebury "other" sequences that have interpolation ground truth (12 in the official set)."""
    root = Path(root)
    gt_dir, data_dir = root / "other-gt-interp", root / "other-data"
    if not gt_dir.is_dir() or not data_dir.is_dir():
        raise _missing("Middlebury", root, MIDDLEBURY_LAYOUT, "middlebury")
    samples = []
    for d in sorted((p for p in gt_dir.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        gt = d / "frame10i11.png"
        f0, f1 = data_dir / d.name / "frame10.png", data_dir / d.name / "frame11.png"
        if not gt.is_file():
            continue
        for p in (f0, f1):
            if not p.is_file():
                raise VfiError(
                    f"Middlebury sequence {d.name}: {p} is missing; expected {MIDDLEBURY_LAYOUT}"
                )
        samples.append(Sample(d.name, f0, f1, gt))
    if not samples:
        raise _missing("Middlebury", root, MIDDLEBURY_LAYOUT, "middlebury", "no sequences")
    return samples


SNU_SPLITS = ("easy", "medium", "hard", "extreme")
SNU_LAYOUT = (
    "test-easy.txt, test-medium.txt, test-hard.txt, test-extreme.txt, each line three frame paths "
    "(before, middle, after) relative to DIR, e.g. DIR/data/SNU-FILM/test/GOPRO_test/..."
)


def _resolve_listed(root: Path, listed: str) -> Path | None:
    """A path from a SNU-FILM list, relative to ``root``; leading folders that ``root`` already is
    (the lists say data/SNU-FILM/test/...) are dropped until the file exists."""
    parts = Path(listed).parts
    for k in range(len(parts)):
        p = root.joinpath(*parts[k:])
        if p.is_file():
            return p
    return None


def snu_film_samples(root: str | Path, split: str) -> list[Sample]:
    """SNU-FILM ``test-<split>.txt`` (310 triplets per split, up to 1280x720)."""
    root = Path(root)
    if split not in SNU_SPLITS:
        raise VfiError(f"unknown SNU-FILM split {split!r}; use one of {', '.join(SNU_SPLITS)}")
    list_file = root / f"test-{split}.txt"
    if not list_file.is_file():
        raise _missing("SNU-FILM", root, SNU_LAYOUT, "snu-film", f"no {list_file.name}")
    samples = []
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise VfiError(f"{list_file}:{n}: expected three frame paths, got {len(fields)}")
        paths = [_resolve_listed(root, f) for f in fields]
        for f, p in zip(fields, paths):
            if p is None:
                raise VfiError(f"{list_file}:{n}: frame {f} not found under {root}; {SNU_LAYOUT}")
        name = paths[1].relative_to(root).with_suffix("").as_posix()
        samples.append(Sample(name, paths[0], paths[2], paths[1]))
    if not samples:
        raise VfiError(f"{list_file} lists no triplets; {SNU_LAYOUT}")
    return samples


XIPH_LAYOUT = (
    "<Seq>-001.png ... <Seq>-099.png in one folder, for the 8 sequences "
    f"{', '.join(XIPH_SEQUENCES)} (the first 100 frames of each 4096x2160 Netflix clip, "
    "e.g. `ffmpeg -i <Seq>_4096x2160_60fps_10bit_420.y4m -vframes 100 <Seq>-%03d.png`)"
)


def xiph_samples(root: str | Path) -> list[Sample]:
    """Xiph 4K sequences: frames 2, 4, ..., 98 (1-based file numbers) from their neighbours."""
    root = Path(root)
    if not root.is_dir():
        raise _missing("Xiph", root, XIPH_LAYOUT, "xiph")
    samples = []
    for seq in XIPH_SEQUENCES:
        for i in range(2, 99, 2):
            p0, gt, p1 = (root / f"{seq}-{j:03d}.png" for j in (i - 1, i, i + 1))
            for p in (p0, gt, p1):
                if not p.is_file():
                    raise _missing("Xiph", root, XIPH_LAYOUT, "xiph", f"{p.name} is missing")
            samples.append(Sample(f"{seq}-{i:03d}", p0, p1, gt))
    return samples


X4K_LAYOUT = (
    "<Type>/<clip>/0000.png ... 0032.png (X-TEST: 3 types x 5 clips x 33 frames, 4096x2160)"
)


def x4k_samples(root: str | Path, multiple: int = 8, step: int = 32) -> list[Sample]:
    """X-TEST: inputs every ``step`` frames, the ``multiple - 1`` frames between them scored at
    t = k / multiple (every 4th frame for 8x between frames 0 and 32)."""
    root = Path(root)
    if not root.is_dir():
        raise _missing("X4K1000FPS X-TEST", root, X4K_LAYOUT, "x4k")
    samples = []
    for type_dir in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name):
        for clip in sorted((p for p in type_dir.iterdir() if p.is_dir()), key=lambda p: p.name):
            frames = sorted(clip.glob("*.png"))
            clip_name = f"{type_dir.name}/{clip.name}"
            if len(frames) < step + 1:
                raise VfiError(
                    f"X-TEST clip {clip} has {len(frames)} frames, needs {step + 1}; expected {X4K_LAYOUT}"
                )
            for idx in range(0, len(frames) - step, step):
                group = f"{clip_name}/{frames[idx].stem}"
                for k in range(1, multiple):
                    gt = frames[idx + (step // multiple) * k]
                    samples.append(
                        Sample(
                            f"{clip_name}/{gt.stem}",
                            frames[idx],
                            frames[idx + step],
                            gt,
                            k / multiple,
                            group,
                        )
                    )
    if not samples:
        raise _missing("X4K1000FPS X-TEST", root, X4K_LAYOUT, "x4k", "no clips")
    return samples


SEQUENCE_LAYOUT = "one folder of consecutive frames (000.png, 001.png, ... or .jpg), sorted by name"


def sequence_samples(root: str | Path) -> list[Sample]:
    """Consecutive frames of one video: frames i and i+2 predict i+1, for every i."""
    root = Path(root)
    if not root.is_dir():
        raise VfiError(f"frame sequence not found: {root}; expected {SEQUENCE_LAYOUT}")
    frames = sorted(
        (p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: natural_key(p.name),
    )
    if len(frames) < 3:
        sub = any(p.is_dir() for p in root.iterdir())
        hint = " (it holds folders: point --path at one sequence)" if sub else ""
        raise VfiError(
            f"{root} holds {len(frames)} frames{hint}; expected {SEQUENCE_LAYOUT}, at least 3"
        )
    return [
        Sample(frames[i + 1].stem, frames[i], frames[i + 2], frames[i + 1])
        for i in range(len(frames) - 2)
    ]


# ----------------------------------------------------------------------------------------------
# Frame preparation and reading


def area_downscale_uint8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 (3, H, W) image down to ``size`` like OpenCV's INTER_AREA on 8-bit images.

    For an exact 2x reduction (4096x2160 -> 2048x1080) this is the 2x2 mean rounded half up, which
    is OpenCV's integer path ((sum + 2) >> 2). Other factors fall back to an area average rounded
    to nearest (close to, not bit-exact with, OpenCV's fractional-area weights).
    """
    h, w = x.shape[-2:]
    if (h, w) == (2 * size[0], 2 * size[1]):
        s = x.view(3, size[0], 2, size[1], 2).sum((2, 4), dtype=torch.int32)
        return torch.div(s + 2, 4, rounding_mode="floor").to(torch.uint8)
    y = F.interpolate(x[None].float(), size=size, mode="area")[0]
    return y.round().clamp(0, 255).to(torch.uint8)


def area_downscale_float(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """INTER_AREA on float images (X4K's 2K protocol resizes float frames, no rounding)."""
    return F.interpolate(x[None], size=size, mode="area")[0]


def centre_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The centre ``size`` crop; for 4096x2160 -> 2048x1080 this is the reference [540:-540, 1024:-1024]."""
    h, w = x.shape[-2:]
    if h < size[0] or w < size[1]:
        raise VfiError(f"frame of {w}x{h} is smaller than the {size[1]}x{size[0]} crop")
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]


def xiph_prepare(
    res: str, size: tuple[int, int] = XIPH_SIZE
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Xiph: "2k" resizes the 8-bit frame (INTER_AREA), "4k" takes the centre crop; float out."""
    if res == "2k":
        return lambda u8: area_downscale_uint8(u8, size).float() / 255.0
    if res == "4k":
        return lambda u8: centre_crop(u8, size).float() / 255.0
    raise VfiError(f"unknown Xiph resolution {res!r}; use 2k or 4k")


def x4k_prepare(
    res: str, size: tuple[int, int] = XIPH_SIZE
) -> Callable[[torch.Tensor], torch.Tensor]:
    """X-TEST: "4k" as stored; "2k" = the float frame resized (INTER_AREA) to 2048x1080."""
    if res == "4k":
        return lambda u8: u8.float() / 255.0
    if res == "2k":
        return lambda u8: area_downscale_float(u8.float() / 255.0, size)
    raise VfiError(f"unknown X4K resolution {res!r}; use 2k or 4k")


def _to_float(u8: torch.Tensor) -> torch.Tensor:
    return u8.float() / 255.0


def iter_items(samples: list[Sample], prepare: Callable | None = None) -> Iterator[Item]:
    """Read samples in order; files shared with the previous sample are not decoded again
    (X4K's 7 frames per input pair, a sequence's overlapping triplets)."""
    prepare = prepare or _to_float
    cache: dict[Path, torch.Tensor] = {}
    for s in samples:
        frames = {}
        for p in (s.img0, s.img1, s.gt):
            frames[p] = cache[p] if p in cache else prepare(read_image(p))
        cache = frames
        img0, img1, gt = frames[s.img0], frames[s.img1], frames[s.gt]
        if not (img0.shape == img1.shape == gt.shape):
            raise VfiError(f"sample {s.name}: frames differ in size ({s.img0}, {s.gt}, {s.img1})")
        yield Item(s.name, img0[None], img1[None], gt[None], s.t, s.group)


# ----------------------------------------------------------------------------------------------
# User video


def video_items(path: str | Path, limit: int | None = None) -> Iterator[Item]:
    """Decode a video; every odd frame (0-based) is dropped and scored from its even neighbours.

    Frames are converted to 8-bit RGB by FFmpeg (PyAV), exactly as ``vfi interpolate`` reads them.
    Items are named ``frame_<index>`` after the dropped frame's decode index.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise VfiError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise VfiError(f"cannot open video {path}: {e}") from None
    with container:
        if not container.streams.video:
            raise VfiError(f"{path} has no video stream")
        stream = container.streams.video[0]
        window: list[torch.Tensor] = []  # the last even frame, then the odd one after it
        index, made = 0, 0
        try:
            for frame in container.decode(stream):
                x = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
                x = x.float()[None] / 255.0  # (1, 3, H, W)
                window.append(x)
                if len(window) == 3:
                    yield Item(f"frame_{index - 1:06d}", window[0], window[2], window[1])
                    made += 1
                    window = [window[2]]
                    if limit is not None and made >= limit:
                        return
                index += 1
        except av.error.FFmpegError as e:
            raise VfiError(f"cannot decode {path}: {e}") from None
    if made == 0:
        raise VfiError(f"{path} has {index} frame(s); scoring needs at least 3")


def video_pair_count(path: str | Path) -> int | None:
    """How many pairs :func:`video_items` will score, where the container says (else None)."""
    import av

    try:
        with av.open(str(path)) as c:
            n = c.streams.video[0].frames if c.streams.video else 0
    except (av.error.FFmpegError, OSError):
        return None
    return (n - 1) // 2 if n >= 3 else None


__all__ = [
    "DVF_LAYOUT",
    "URLS",
    "Item",
    "Sample",
    "iter_items",
    "middlebury_samples",
    "sequence_samples",
    "snu_film_samples",
    "triplet_samples",
    "ucf101_samples",
    "video_items",
    "x4k_samples",
    "xiph_samples",
]
