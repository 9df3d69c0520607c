"""Benchmarks: one ``validate_<dataset>()`` per set (RAFT style), each with its exact protocol.

Papers disagree by 0.1-0.3 dB because each computes the scores differently, so every result
records the protocol it used (``BenchResult.protocol``): the reference script it follows, the
padding (centred replicate padding to a multiple, as those scripts' ``InputPadder`` does, before
the model sees the frames; the :class:`engine.Interpolator` then pads to the model's own alignment
at the chosen scale if that needs more), whether the prediction is rounded to 8 bits before
scoring, which SSIM (3-D ``ssim_matlab`` or standard 2-D), and the flow scale. Scores are averaged
per sample. ``ie`` is always the Middlebury interpolation error of the 8-bit prediction.

``tta`` is the flip test-time augmentation of the EMA-VFI / VFIMamba results: the prediction is
averaged with the one on inputs flipped in H and W (flipped back). It costs a second forward, and
the plain prediction comes for free, so both are reported (``summary["no_tta"]``).

The TimeTest (speed, parameters, memory) lives in :mod:`train.timetest`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from engine import metrics
from engine.errors import VfiError
from engine.interpolator import Interpolator
from train.data import benchmarks as B


@dataclass
class RunOptions:
    """What every benchmark run shares (the ``vfi bench`` flags)."""

    device: str = "auto"
    precision: str = "fp32"  # the reference numbers are fp32
    tta: bool = False
    scale: float | None = None  # None: the protocol's scale
    limit: int | None = None  # score only the first N samples
    save_dir: Path | None = None  # write each (primary) prediction as <save_dir>/<name>.png
    progress: Callable[[int, int | None], None] | None = None  # (done, total)
    model_label: str | None = None  # how the model is named in the result (the --model value)


@dataclass(frozen=True)
class Protocol:
    reference: str  # the script whose computation this reproduces
    rounding: str  # "8bit": prediction rounded to 0..255 before scoring | "none": float prediction
    ssim: str  # "ssim_matlab" (3-D) | "ssim" (2-D, skimage)
    pad: int  # centred replicate padding to this multiple (0: only the model's alignment)
    scale: float  # flow scale
    note: str = ""


@dataclass
class BenchResult:
    dataset: str
    protocol: dict
    summary: dict
    items: list[dict]

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "summary": self.summary,
            "items": self.items,
        }


# ----------------------------------------------------------------------------------------------
# Prediction: protocol padding, the Interpolator, flip TTA


def centre_pad(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Replicate-pad H, W to a multiple, split evenly (extra pixel at the end) as InputPadder does."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)  # (left, right, top, bottom)
    return (F.pad(x, pads, mode="replicate") if any(pads) else x), pads


def unpad(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


class Predictor:
    """Runs the model the way a protocol does: ``pad`` -> (TTA) inference -> unpad."""

    def __init__(self, interp: Interpolator, pad: int, tta: bool):
        self.interp, self.pad, self.tta = interp, pad, tta

    def padded(self, img0, img1):
        """Both frames on the device, padded as the protocol says; and the pads to undo."""
        a, b = img0.to(self.interp.device), img1.to(self.interp.device)
        if not self.pad:
            return a, b, (0, 0, 0, 0)
        a, pads = centre_pad(a, self.pad)
        return a, centre_pad(b, self.pad)[0], pads

    def infer(self, a, b, t, tta: bool) -> torch.Tensor:
        """One prediction on already padded frames (B, 3, H, W)."""
        out = self.interp(a, b, t)
        if tta:
            flipped = self.interp(a.flip(-2, -1), b.flip(-2, -1), t).flip(-2, -1)
            out = (out + flipped) / 2
        return out

    def __call__(self, img0, img1, t) -> dict[str, torch.Tensor]:
        """{"plain": prediction} (+ "tta") cropped back to the input size, on the device."""
        a, b, pads = self.padded(img0, img1)
        plain = self.interp(a, b, t)
        out = {"plain": unpad(plain, pads)}
        if self.tta:
            flipped = self.interp(a.flip(-2, -1), b.flip(-2, -1), t).flip(-2, -1)
            out["tta"] = unpad((plain + flipped) / 2, pads)
        return out


# ----------------------------------------------------------------------------------------------
# Scoring loop


def score(pred: torch.Tensor, gt: torch.Tensor, proto: Protocol) -> dict[str, float]:
    """PSNR / SSIM / IE of one (1, 3, H, W) prediction under ``proto``."""
    q = metrics.quantize(pred)
    p = q if proto.rounding == "8bit" else pred
    ssim_fn = metrics.ssim_matlab if proto.ssim == "ssim_matlab" else metrics.ssim
    return {
        "psnr": float(metrics.psnr(p, gt)[0]),
        "ssim": float(ssim_fn(p, gt)[0]),
        "ie": float(metrics.ie(q, gt)[0]),
    }


def _item_record(
    item: B.Item, preds: dict, gt: torch.Tensor, proto: Protocol, with_t: bool
) -> dict:
    primary = preds.get("tta", preds["plain"])
    rec = {"name": item.name, **score(primary, gt, proto)}
    if with_t:
        rec["t"] = item.t
    if "tta" in preds:
        rec["no_tta"] = score(preds["plain"], gt, proto)
    return rec


def _save(save_dir: Path | None, name: str, pred: torch.Tensor) -> None:
    if save_dir is None:
        return
    from train.data.triplets import write_image

    rel = Path(name + ".png")
    if rel.is_absolute() or ".." in rel.parts:
        raise VfiError(f"sample name {name!r} cannot be used as a file name under --save-dir")
    write_image(save_dir / rel, pred[0])


def summarise(items: list[dict]) -> dict:
    summary = {"n": len(items)}
    for k in ("psnr", "ssim", "ie"):
        summary[k] = metrics.mean(r[k] for r in items)
    if items and "no_tta" in items[0]:
        summary["no_tta"] = {
            k: metrics.mean(r["no_tta"][k] for r in items) for k in ("psnr", "ssim", "ie")
        }
    return summary


def _run(
    dataset,
    model,
    items: Iterable[B.Item],
    total,
    proto: Protocol,
    opts: RunOptions,
    extra=None,
    recursive=False,
):
    scale = proto.scale if opts.scale is None else float(opts.scale)
    interp = Interpolator(model, device=opts.device, precision=opts.precision, scale=scale)
    predictor = Predictor(interp, proto.pad, opts.tta)
    records: list[dict] = []
    with_t = dataset == "x4k"
    group_preds: dict = {}
    group_key = None
    for item in items:
        if recursive:
            if item.group != group_key:  # a new input pair: bisect once for all its frames
                group_key, group_preds = (
                    item.group,
                    _bisect_all(predictor, item.img0, item.img1, opts.tta),
                )
            preds = group_preds[item.t]
        else:
            preds = predictor(item.img0, item.img1, item.t)
        gt = item.gt.to(interp.device)
        records.append(_item_record(item, preds, gt, proto, with_t))
        _save(opts.save_dir, item.name, preds.get("tta", preds["plain"]))
        if opts.progress:
            opts.progress(len(records), total)
    if not records:
        raise VfiError(f"{dataset}: no samples to score")
    protocol = {
        **asdict(proto),
        "scale": scale,
        "tta": opts.tta,
        "precision": interp.precision,
        "device": str(interp.device),
        "model": opts.model_label or type(model).__name__,
        "limit": opts.limit,
        "averaging": "mean over samples",
        "ie": "mean |8-bit prediction - gt| on 0..255",
        **(extra or {}),
    }
    return BenchResult(dataset, protocol, summarise(records), records)


def _bisect_all(predictor: Predictor, img0, img1, tta: bool, depth: int = 3) -> dict:
    """Recursive halving (VFIMamba's X-TEST script): t = k / 2**depth, each frame predicted at
    t=0.5 between its two nearest known frames, in padded space. Returns {t: {"plain", "tta"}}."""
    a, b, pads = predictor.padded(img0, img1)
    chains = {"plain": False, **({"tta": True} if tta else {})}
    out: dict[float, dict] = {}
    for key, use_tta in chains.items():
        frames = {0.0: a, 1.0: b}
        for level in range(1, depth + 1):
            step = 1.0 / 2**level
            for k in range(1, 2**level, 2):
                t = k * step
                frames[t] = predictor.infer(frames[t - step], frames[t + step], 0.5, use_tta)
        for t, f in frames.items():
            if 0 < t < 1:
                out.setdefault(t, {})[key] = unpad(f, pads)
    return out


def _limited(samples: list, opts: RunOptions) -> list:
    return samples if opts.limit is None else samples[: opts.limit]


def _check_save_dir(opts: RunOptions, data_path: Path) -> None:
    """Predictions must never land among (or over) the input frames."""
    if opts.save_dir is None:
        return
    data, out = Path(data_path).resolve(), Path(opts.save_dir).resolve()
    if data.is_dir() and (out == data or data in out.parents):
        raise VfiError(
            f"--save-dir {opts.save_dir} is inside the dataset {data_path}; choose another folder"
        )


def _files(dataset, model, samples, proto, opts, prepare=None, extra=None, recursive=False):
    samples = _limited(samples, opts)
    items = B.iter_items(samples, prepare)
    return _run(dataset, model, items, len(samples), proto, opts, extra, recursive)


# ----------------------------------------------------------------------------------------------
# The benchmarks

REF = "EMA-VFI / VFIMamba benchmark/"


def validate_vimeo90k(model, path, opts: RunOptions | None = None) -> BenchResult:
    from train.data.vimeo90k import Vimeo90K

    opts = opts or RunOptions()
    _check_save_dir(opts, path)
    samples = [B.Sample(n, p0, p1, gt) for n, (p0, gt, p1) in Vimeo90K(path, "test").samples]
    proto = Protocol(
        REF + "Vimeo90K.py", "none", "ssim_matlab", 0, 1.0, "tri_testlist.txt; float PSNR"
    )
    return _files("vimeo90k", model, samples, proto, opts)


def validate_ucf101(model, path, opts: RunOptions | None = None) -> BenchResult:
    opts = opts or RunOptions()
    _check_save_dir(opts, path)
    proto = Protocol(REF + "UCF101.py", "8bit", "ssim_matlab", 0, 1.0, "DVF layout")
    return _files("ucf101", model, B.ucf101_samples(path), proto, opts)


def validate_triplets(model, path, opts: RunOptions | None = None) -> BenchResult:
    opts = opts or RunOptions()
    _check_save_dir(opts, path)
    proto = Protocol(REF + "UCF101.py (same scoring)", "8bit", "ssim_matlab", 0, 1.0, "DVF layout")
    return _files("triplets", model, B.triplet_samples(path), proto, opts)


def validate_snu_film(
    model, path, split: str = "hard", opts: RunOptions | None = None
) -> BenchResult:
    opts = opts or RunOptions()
    _check_save_dir(opts, path)
    proto = Protocol(REF + "SNU_FILM.py", "none", "ssim_matlab", 32, 0.5, f"test-{split}.txt")
    return _files(
        "snu-film", model, B.snu_film_samples(path, split), proto, opts, extra={"split": split}
    )


def validate_middlebury(model, path, opts: RunOptions | None = None) -> BenchResult:
    opts = opts or RunOptions()
    _check_save_dir(opts, path)
    proto = Protocol(
        "EMA-VFI benchmark/MiddleBury.py", "8bit", "ssim_matlab", 32, 1.0, "other set; IE"
    )
    return _files("middlebury", model, B.middlebury_samples(path), proto, opts)


def validate_xiph(
    model, path, res: str = "2k", opts: RunOptions | None = None, size=B.XIPH_SIZE
) -> BenchResult:
    opts = opts or RunOptions()
    _check_save_dir(opts, path)
    how = "resized (INTER_AREA) to" if res == "2k" else "centre crop of"
    proto = Protocol(REF + "Xiph.py", "8bit", "ssim", 16, 0.5, f"{res}: {how} {size[1]}x{size[0]}")
    prepare = B.xiph_prepare(res, size)
    return _files("xiph", model, B.xiph_samples(path), proto, opts, prepare, extra={"res": res})


def validate_x4k(
    model,
    path,
    res: str = "4k",
    opts: RunOptions | None = None,
    recursive: bool = False,
    size=B.XIPH_SIZE,
) -> BenchResult:
    opts = opts or RunOptions()
    _check_save_dir(opts, path)
    if recursive:
        how, ref = "recursive halving (t=0.5 thrice)", "VFIMamba benchmark/XTEST.py"
    else:
        how, ref = "direct arbitrary-t inference", "EMA-VFI benchmark/XTest_8X.py"
    scale = 0.5 if res == "2k" else 0.25
    proto = Protocol(
        ref, "8bit", "ssim_matlab", 32, scale, f"{res}; 8x from frames 0 and 32; {how}"
    )
    prepare = B.x4k_prepare(res, size)
    extra = {"res": res, "mode": "recursive" if recursive else "direct"}
    return _files("x4k", model, B.x4k_samples(path), proto, opts, prepare, extra, recursive)


def validate_sequence(model, path, opts: RunOptions | None = None) -> BenchResult:
    opts = opts or RunOptions()
    _check_save_dir(opts, path)
    note = "frames i, i+2 predict i+1 (the dev-set README protocol)"
    proto = Protocol(
        "vfi dev sets (shared/data/eval/README.md)", "8bit", "ssim_matlab", 0, 1.0, note
    )
    return _files("sequence", model, B.sequence_samples(path), proto, opts)


def validate_video(model, path, opts: RunOptions | None = None) -> BenchResult:
    opts = opts or RunOptions()
    total = B.video_pair_count(path)
    if total is not None and opts.limit is not None:
        total = min(total, opts.limit)
    note = "every other frame dropped and predicted from its neighbours; FFmpeg RGB conversion"
    proto = Protocol("vfi (user video)", "8bit", "ssim_matlab", 0, 1.0, note)
    return _run("video", model, B.video_items(path, opts.limit), total, proto, opts)


DATASETS = {
    "vimeo90k": validate_vimeo90k,
    "ucf101": validate_ucf101,
    "snu-film": validate_snu_film,
    "middlebury": validate_middlebury,
    "xiph": validate_xiph,
    "x4k": validate_x4k,
    "triplets": validate_triplets,
    "sequence": validate_sequence,
    "video": validate_video,
}
