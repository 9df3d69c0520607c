"""Our own training corpus: an index of usable video triplets plus packs of the original files.

``prepare_corpus(src, out)`` reads a folder of video files and photos (e.g. ``shared/data/train``),
decodes every clip once at thumbnail size, and writes

    out/index.json            everything: thresholds, every clip's triplets, the pack plan, a summary
    out/pack-00/pack.json     the part of the index that pack-00 needs (self-contained)
    out/pack-00/videos/...    original video files, byte-identical (no re-encoding)
    out/pack-00/photos/...    original photos
    ...

Each pack is at most ``pack_mb`` MiB, so a pack plus the code fits one device call (64 MiB), and the
packs are balanced for source, resolution and size. See docs/data.md for why the cache holds the
original H.264 files rather than decoded crops.

Triplets are (a, m, b) = (keep[s], keep[s+g], keep[s+2g]) where ``keep`` lists a clip's *distinct*
frames (runs of repeated frames collapsed to their first frame) and g is the gap (1, 2, 3). A
triplet is skipped when it straddles a scene cut, when its end frames are near-identical (static),
or when the duplicate collapse made its two halves unequal in time and its motion says so. Each kept
triplet carries a rough motion score (pixels at full resolution between the end frames) that the
loader uses to weight sampling toward motion.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import VfiError
from engine.paths import check_creatable

INDEX_VERSION = 1
VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".ts", ".flv"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
LAYOUT_HINT = (
    "expected a folder holding video files (.mp4, .mkv, .avi, .mov, .webm, ...) and/or photos "
    "(.jpg, .png, ...), directly or in subfolders such as videos/ and photos/"
)

# Analysis runs on grey thumbnails whose long side is THUMB_SIDE px (area-resampled by swscale):
# small enough to decode-and-compare 45k frames in about a minute, large enough that a moving
# object of ~3% of the frame width still covers the 0.1% of pixels that DUP_LEVEL looks at.
THUMB_SIDE = 160

# Thresholds, chosen by looking at all 139 clips of shared/data/train (the 99.9th percentile of
# |frame difference| on the thumbnails, 0-255 scale, is bimodal in clips with repeated frames):
# - repeats sit below 5: 132_videollama2 (60 fps, every frame shown twice) has its repeat mode at
#   2-5 and its motion mode at 15-40; 124_ask-anything and the VILA clips (frames shown 2-4 times)
#   repeat below 3, while real small motion (005 mouse in an open field, 110 distant football
#   players) sits above 5 for (almost) every pair.
DUP_LEVEL = 5.0
# - a cut is a jump of the mean difference well above the clip's local level: mean |diff| above
#   CUT_MAD and CUT_RATIO times the median of its 8 neighbours with the grey histogram changing
#   (half-L1 distance of 32-bin histograms above CUT_HIST), or CUT_RATIO_STRONG times the
#   neighbours whatever the histogram, or any histogram change above CUT_HIST_ALONE (flashes, fades).
#   Checked by eye on contact sheets: this keeps fast camera moves (057 cockatoo, 092 walkers,
#   098 fingers; ratio 3-4 with histogram change < 0.12) and catches the cuts in 001, 003, 045, 047,
#   054, 092, 113, 133 (ratio 5-50).
CUT_MAD = 12.0
CUT_RATIO = 3.0
CUT_HIST = 0.15
CUT_RATIO_STRONG = 6.0
CUT_HIST_ALONE = 0.5
# - where collapsing repeats made a triplet's halves unequal in frame count, its content may not be
#   evenly spaced in time: skip it when one half's mean difference exceeds the other's this much.
ASYM_RATIO = 2.5


@dataclass
class CorpusSummary:
    """What ``prepare_corpus`` did; ``lines()`` renders it for the terminal."""

    out: str
    videos: int = 0
    photos: int = 0
    frames: int = 0
    repeated_frames: int = 0  # frames dropped as repeats of the previous frame
    cuts: int = 0
    triplets: dict[int, int] = field(default_factory=dict)  # gap -> usable triplets
    candidates: dict[int, int] = field(default_factory=dict)  # gap -> triplets considered
    skipped_cut: dict[int, int] = field(default_factory=dict)
    skipped_static: dict[int, int] = field(default_factory=dict)
    skipped_uneven: dict[int, int] = field(default_factory=dict)
    packs: list[dict] = field(default_factory=list)  # name, bytes, videos, photos
    unreadable: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [
            f"corpus written to {self.out} in {self.seconds:.0f} s",
            f"{self.videos} videos ({self.frames} frames, {self.repeated_frames} repeated frames "
            f"dropped, {self.cuts} scene cuts), {self.photos} photos",
        ]
        for g in sorted(self.triplets):
            out.append(
                f"gap {g}: {self.triplets[g]} triplets of {self.candidates[g]} "
                f"(skipped: {self.skipped_static[g]} static, {self.skipped_cut[g]} scene cut, "
                f"{self.skipped_uneven[g]} uneven)"
            )
        for p in self.packs:
            out.append(
                f"{p['name']}: {p['bytes'] / 2**20:.1f} MiB, {p['videos']} videos, "
                f"{p['photos']} photos"
            )
        if self.unreadable:
            out.append(f"skipped {len(self.unreadable)} unreadable: {', '.join(self.unreadable)}")
        return out


def prepare_corpus(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    pack_mb: float = 48,
    gaps: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> CorpusSummary:
    """Index the triplets of every video under ``src`` and pack the files into ``out``.

    ``progress(stage, done, total)`` is called as clips are analysed and files packed. The output
    is built in a temporary folder beside ``out`` and moved into place at the end, so an
    interrupted run leaves no half-written corpus; ``src`` is only read.
    """
    start = time.time()
    src, out = Path(src), Path(out)
    gaps = tuple(sorted({int(g) for g in gaps}))
    if not gaps or gaps[0] < 1:
        raise VfiError(f"gaps must be positive integers, got {gaps}")
    if not pack_mb > 0:
        raise VfiError(f"--pack-mb must be a positive number of MiB, got {pack_mb}")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise VfiError(f"the corpus output {out} must not be inside the source folder {src}")
    check_creatable(out, "the corpus")  # before minutes of analysis; also refuses a file at OUT
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise VfiError(f"{out} already exists and is not empty; pass overwrite to replace it")
    videos, photos = scan_source(src)
    sources = _read_sources_csv(src)
    workers = workers or min(8, os.cpu_count() or 1)
    summary = CorpusSummary(out=str(out), videos=len(videos), photos=len(photos))

    # 1. analyse every clip (thumbnail decode + pure numpy), in a thread pool
    clips: dict[str, dict] = {}
    done = 0
    with ThreadPoolExecutor(workers) as pool:
        for rel, entry in pool.map(lambda p: (p, _index_clip(src / p, gaps)), videos):
            done += 1
            if progress:
                progress("analyse", done, len(videos))
            if entry is None:
                summary.unreadable.append(rel)
                continue
            entry["group"] = sources.get(rel) or _name_group(rel)
            clips[rel] = entry
    summary.videos = len(clips)

    # 2. hashes and sizes, then the pack plan
    files = {rel: _file_info(src / rel) for rel in [*clips, *photos]}
    items = [
        (rel, files[rel]["bytes"], c["group"], _res_bucket(c["width"], c["height"]))
        for rel, c in clips.items()
    ]
    items += [(rel, files[rel]["bytes"], "photo", "photo") for rel in photos]
    pack_bytes = int(pack_mb * 2**20)
    plan = plan_packs(items, pack_bytes - min(PACK_JSON_RESERVE, pack_bytes // 8), seed=seed)

    # 3. write everything into a temporary folder, then move it into place
    thresholds = {k: globals()[k] for k in _THRESHOLDS.split()}
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        packs_meta = []
        n_files, copied = sum(len(p) for p in plan), 0
        for k, members in enumerate(plan):
            name = f"pack-{k:02d}"
            pack_clips = {rel: {**clips[rel], **files[rel]} for rel in members if rel in clips}
            pack_photos = {rel: files[rel] for rel in members if rel not in clips}
            for rel in members:
                (tmp / name / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / rel, tmp / name / rel)
                copied += 1
                if progress:
                    progress("pack", copied, n_files)
            meta = {"version": INDEX_VERSION, "pack": name, "gaps": list(gaps)}
            meta |= {"thresholds": thresholds, "clips": pack_clips, "photos": pack_photos}
            _write_json(tmp / name / "pack.json", meta)
            size = sum(f.stat().st_size for f in (tmp / name).rglob("*") if f.is_file())
            if size > pack_mb * 2**20:
                raise RuntimeError(f"{name} is {size} bytes, over the {pack_mb} MiB limit")
            packs_meta.append(
                {"name": name, "bytes": size, "videos": len(pack_clips), "photos": len(pack_photos)}
            )
        summary.packs = packs_meta
        _fill_counts(summary, clips, gaps)
        summary.seconds = time.time() - start
        index = {"version": INDEX_VERSION, "source": str(src), "gaps": list(gaps), "seed": seed}
        index |= {"pack_mb": pack_mb, "thresholds": thresholds, "packs": packs_meta}
        index |= {"pack_of": {rel: f"pack-{k:02d}" for k, m in enumerate(plan) for rel in m}}
        index |= {"clips": clips, "photos": {rel: files[rel] for rel in photos}}
        index |= {"summary": summary.to_dict()}
        _write_json(tmp / "index.json", index)
        _swap_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


# ---------------------------------------------------------------------------------------------
# source discovery


def scan_source(src: Path) -> tuple[list[str], list[str]]:
    """Relative paths of the videos and photos under ``src`` (sorted), or a VfiError."""
    if not src.exists():
        raise VfiError(f"training data folder {src} does not exist; {LAYOUT_HINT}")
    if not src.is_dir():
        raise VfiError(f"training data path {src} is not a folder; {LAYOUT_HINT}")
    videos, photos = [], []
    for path in sorted(src.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(src).parts):
            continue
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            videos.append(path.relative_to(src).as_posix())
        elif suffix in IMAGE_SUFFIXES:
            photos.append(path.relative_to(src).as_posix())
    if not videos and not photos:
        raise VfiError(f"no video files or photos found in {src}; {LAYOUT_HINT}")
    return videos, photos


def _read_sources_csv(src: Path) -> dict[str, str]:
    """file -> source repository from an optional ``videos.csv`` (groups clips for balancing)."""
    path = src / "videos.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["file"]: r["source"].split("@")[0] for r in rows if r.get("file") and r.get("source")}


def _name_group(rel: str) -> str:
    """A source group from a file name like ``028_sadtalker-wda-x.mp4`` -> ``sadtalker``."""
    stem = Path(rel).stem
    stem = stem.split("_", 1)[1] if "_" in stem and stem.split("_", 1)[0].isdigit() else stem
    return stem.split("-")[0]


def _res_bucket(width: int, height: int) -> str:
    short = min(width, height)
    return (
        "<480" if short < 480 else "480p" if short < 720 else "720p" if short < 1080 else "1080p+"
    )


def _file_info(path: Path) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


# ---------------------------------------------------------------------------------------------
# clip analysis


def decode_thumbnails(path: Path) -> tuple[dict, np.ndarray]:
    """Decode every frame of a video into grey thumbnails: (info, uint8 (N, h, w))."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        w, h = stream.codec_context.width, stream.codec_context.height
        s = THUMB_SIDE / max(w, h)
        tw, th = max(16, round(w * s / 2) * 2), max(16, round(h * s / 2) * 2)
        thumbs = [
            f.reformat(width=tw, height=th, format="gray", interpolation="AREA").to_ndarray()
            for f in container.decode(stream)
        ]
        fps = float(stream.average_rate) if stream.average_rate else 0.0
    if not thumbs:
        raise ValueError("no frames")
    info = {"width": w, "height": h, "fps": round(fps, 3), "frames": len(thumbs)}
    return info, np.stack(thumbs)


def _index_clip(path: Path, gaps: Sequence[int]) -> dict | None:
    import av

    try:
        info, thumbs = decode_thumbnails(path)
    except (av.error.FFmpegError, ValueError, IndexError, OSError):
        return None  # unreadable or no video stream: reported in the summary, not fatal
    return info | analyse_clip(thumbs, info["width"], gaps)


def analyse_clip(thumbs: np.ndarray, width: int, gaps: Sequence[int] = (1, 2, 3)) -> dict:
    """Repeats, cuts and usable triplets of one clip from its grey thumbnails (N, h, w) uint8.

    Returns ``keep`` (distinct frame indices), ``cuts`` (positions p in keep with a cut between
    keep[p] and keep[p+1]), ``triplets`` {gap: {"start": [s...], "motion": [px...]}} and
    ``skipped`` {gap: {"cut": n, "static": n, "uneven": n, "candidates": n}}.
    """
    x = thumbs.reshape(len(thumbs), -1).astype(np.int16)  # (N, P)
    # repeats: a frame (near-)identical to the one before it shows no new moment; drop it
    repeat = _p999(x[1:], x[:-1]) < DUP_LEVEL  # (N-1,)
    keep = np.concatenate([[0], 1 + np.flatnonzero(~repeat)])
    kx = x[keep]  # (K, P)
    kn = len(keep)
    mad = _pair_stat(kx, 1, lambda d: d.mean(1))  # (K-1,)
    hist = np.stack([np.bincount(f >> 3, minlength=32) for f in kx]).astype(np.float64)
    hist /= hist[0].sum()
    hdist = np.abs(hist[1:] - hist[:-1]).sum(1) / 2  # (K-1,) in [0, 1]
    cuts = []
    for p in range(kn - 1):
        nb = np.concatenate([mad[max(0, p - 4) : p], mad[p + 1 : p + 5]])
        ratio = mad[p] / (np.median(nb) + 1.0) if len(nb) else 0.0
        if (
            (mad[p] > CUT_MAD and ratio > CUT_RATIO and hdist[p] > CUT_HIST)
            or (mad[p] > CUT_MAD and ratio > CUT_RATIO_STRONG)
            or hdist[p] > CUT_HIST_ALONE
        ):
            cuts.append(p)
    cut_before = np.zeros(kn, dtype=np.int64)  # cut_before[p] = number of cuts between 0 and p
    for p in cuts:
        cut_before[p + 1 :] += 1
    grad = _grad_energy(thumbs[keep])  # (K,) mean squared gradient per thumbnail
    scale = width / thumbs.shape[2]  # thumbnail px -> full-resolution px
    triplets, skipped = {}, {}
    for g in gaps:
        n = max(0, kn - 2 * g)
        s = np.arange(n)
        half = _pair_stat(kx, g, lambda d: d.mean(1))  # (K-g,) mean |diff| over g steps
        ends_p999 = _pair_stat(kx, 2 * g, lambda d: _p999_rows(d))  # (K-2g,)
        ends_ms = _pair_stat(kx, 2 * g, lambda d: (d.astype(np.float32) ** 2).mean(1))
        is_cut = cut_before[s + 2 * g] != cut_before[s]
        static = ~is_cut & (ends_p999 < DUP_LEVEL)
        d0, d1 = half[s], half[s + g]
        unequal = (keep[s + g] - keep[s]) != (keep[s + 2 * g] - keep[s + g])
        uneven = (
            ~is_cut & ~static & unequal & (np.maximum(d0, d1) > ASYM_RATIO * np.minimum(d0, d1))
        )
        ok = ~(is_cut | static | uneven)
        # RMS normal flow |I_t| / |grad I| (brightness constancy: I_t = -grad I . v): grows with
        # the displacement and saturates near the texture scale; enough to rank triplets
        rms_grad = 0.5 * (grad[s] + grad[s + 2 * g]) + 1.0
        motion = np.sqrt(ends_ms / rms_grad) * scale if n else np.zeros(0)
        triplets[str(g)] = {
            "start": s[ok].tolist(),
            "motion": np.round(motion[ok], 1).tolist(),
        }
        skipped[str(g)] = {
            "cut": int(is_cut.sum()),
            "static": int(static.sum()),
            "uneven": int(uneven.sum()),
            "candidates": n,
        }
    return {"keep": keep.tolist(), "cuts": cuts, "triplets": triplets, "skipped": skipped}


def _pair_stat(x: np.ndarray, step: int, stat: Callable, chunk: int = 256) -> np.ndarray:
    """stat(|x[i + step] - x[i]|) for every i, in chunks of rows to bound memory: (len - step,)."""
    n = max(0, len(x) - step)
    out = [
        stat(np.abs(x[i + step : min(i + chunk, n) + step] - x[i : min(i + chunk, n)]))
        for i in range(0, n, chunk)
    ]
    return np.concatenate(out) if out else np.zeros(0)


def _p999_rows(d: np.ndarray) -> np.ndarray:
    """99.9th percentile of each row of |diff| (N, P): a change covering 0.1% of the frame."""
    k = max(0, int(d.shape[1] * 0.999) - 1)
    return np.partition(d, k, axis=1)[:, k].astype(np.float32)


def _p999(a: np.ndarray, b: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Row-wise 99.9th percentile of |a - b| for (N, P) frame stacks, in chunks: (N,)."""
    out = [_p999_rows(np.abs(a[i : i + chunk] - b[i : i + chunk])) for i in range(0, len(a), chunk)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _grad_energy(t: np.ndarray) -> np.ndarray:
    x = t.astype(np.float32)  # (K, h, w)
    return (np.diff(x, axis=2) ** 2).mean((1, 2)) + (np.diff(x, axis=1) ** 2).mean((1, 2))


# ---------------------------------------------------------------------------------------------
# packing

# bytes kept free in each pack for its pack.json (~0.5 MiB for a 48 MiB pack of real clips);
# at most an eighth of the pack, so tiny test packs work too
PACK_JSON_RESERVE = 2 * 2**20
# recorded in the index, so a corpus says how it was built
_THRESHOLDS = (
    "THUMB_SIDE DUP_LEVEL CUT_MAD CUT_RATIO CUT_HIST CUT_RATIO_STRONG CUT_HIST_ALONE ASYM_RATIO"
)


def plan_packs(
    items: Sequence[tuple[str, int, str, str]], limit: int, *, seed: int = 0
) -> list[list[str]]:
    """Assign (name, bytes, group, bucket) items to packs of at most ``limit`` bytes.

    Uses as few packs as the total size needs (plus more only if an item fits nowhere), and spreads
    each source group and resolution bucket evenly over them: each item, largest first, goes to the
    pack holding the fewest of its group, then of its bucket, then the fewest bytes.
    """
    too_big = [name for name, size, _, _ in items if size > limit]
    if too_big:
        raise VfiError(
            f"{len(too_big)} file(s) are larger than one pack ({limit / 2**20:.1f} MiB usable), "
            f"e.g. {too_big[0]}; raise --pack-mb"
        )
    rng = np.random.default_rng(seed)
    order = [items[i] for i in rng.permutation(len(items))]
    order.sort(key=lambda it: -it[1])  # stable: equal sizes keep the seeded order
    total = sum(it[1] for it in items)
    n = max(1, math.ceil(total / (0.97 * limit)))
    packs: list[dict] = [_empty_pack() for _ in range(n)]
    for name, size, group, bucket in order:
        fits = [p for p in packs if p["bytes"] + size <= limit]
        if not fits:
            packs.append(_empty_pack())
            fits = [packs[-1]]
        best = min(
            fits, key=lambda p: (p["groups"].get(group, 0), p["buckets"].get(bucket, 0), p["bytes"])
        )
        best["names"].append(name)
        best["bytes"] += size
        best["groups"][group] = best["groups"].get(group, 0) + 1
        best["buckets"][bucket] = best["buckets"].get(bucket, 0) + 1
    return [sorted(p["names"]) for p in packs if p["names"]]


def _empty_pack() -> dict:
    return {"names": [], "bytes": 0, "groups": {}, "buckets": {}}


# ---------------------------------------------------------------------------------------------
# output


def _fill_counts(summary: CorpusSummary, clips: dict[str, dict], gaps: Sequence[int]) -> None:
    for g in gaps:
        key = str(g)
        summary.triplets[g] = sum(len(c["triplets"][key]["start"]) for c in clips.values())
        for name, target in (
            ("candidates", summary.candidates),
            ("cut", summary.skipped_cut),
            ("static", summary.skipped_static),
            ("uneven", summary.skipped_uneven),
        ):
            target[g] = sum(c["skipped"][key][name] for c in clips.values())
    summary.frames = sum(c["frames"] for c in clips.values())
    summary.repeated_frames = sum(c["frames"] - len(c["keep"]) for c in clips.values())
    summary.cuts = sum(len(c["cuts"]) for c in clips.values())


def _write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def _swap_into_place(tmp: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def load_index(path: str | os.PathLike) -> dict:
    """Read ``index.json`` (a corpus folder) or ``pack.json`` (a pack folder), or a VfiError."""
    path = Path(path)
    file = path if path.is_file() else path / "pack.json"
    if path.is_dir() and not file.exists():
        file = path / "index.json"
    if not file.is_file():
        raise VfiError(
            f"{path} is not a prepared corpus (no index.json or pack.json); "
            "build one with `vfi train prepare SRC OUT`"
        )
    try:
        with open(file) as f:
            index = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise VfiError(f"cannot read {file}: {e}; rebuild it with `vfi train prepare`") from None
    if index.get("version") != INDEX_VERSION:
        raise VfiError(
            f"{file} has format version {index.get('version')}, this vfi reads {INDEX_VERSION}; "
            "rebuild it with `vfi train prepare`"
        )
    return index
