"""The plan of a run: everything decided before the first frame (what probe / --dry-run print).

:func:`make_plan` inspects the input (headers, the first frame, every packet's time), resolves the
output path and kind, the exact timing (:mod:`engine.timing`), the encoder and pixel format
(:mod:`engine.video.writer`), what happens to each audio/subtitle stream (:mod:`engine.video.streams`),
device, precision, flow scale and the tile plan with its memory estimate (:mod:`engine.tiling`).
:class:`Options` holds every setting of ``vfi interpolate``. The decisions about the source itself
(deinterlacing, ``--duration``, frame naming, warnings, timecode) are in :mod:`engine.source_plan`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from engine.errors import VfiError
from engine.source_plan import (
    carry_timecode,
    frame_naming,
    gif_rate,
    limit_duration,
    resolve_deinterlace,
    source_notes,
)
from engine.timing import Timing, make_timing

VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".nut", ".gif")
# GPU memory one forward may use by default (weights, pipeline buffers and the CUDA allocator's
# slack come on top): whole 4K frames of vfi-s fit, and the whole run stays within 8 GiB. More does
# not make it faster: a batch of several 1080p frames already fits, a 4K frame alone fills the GPU.
DEFAULT_GPU_BUDGET_GIB = 6.0


@dataclass
class Options:
    """Every setting of ``vfi interpolate`` (the CLI fills it; library users may too)."""

    factor: Fraction | None = None
    fps: Fraction | None = None
    slowmo: bool = False
    scene_detect: bool = True
    scene_threshold: float = 0.12
    dedup: bool = False
    dup_threshold: float = 0.02
    # "auto" (when the video says it is interlaced) | "on" | "off" | "ivtc" (telecined film)
    deinterlace: str = "auto"
    no_audio: bool = False
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    encoder_options: dict[str, str] = field(default_factory=dict)
    model: str | None = None  # registry name or weights path (None: registry default)
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False  # torch.compile the forward (engine.Interpolator)
    scale: str | float = "auto"
    tile: str | int | None = "auto"  # "auto", a side in pixels, or None/0 for whole frames
    batch: int = 4  # most output frames per forward (fewer where the memory budget says so)
    memory_gib: float | None = None  # GPU memory for one forward (None: DEFAULT_GPU_BUDGET_GIB)
    input_fps: Fraction | None = None  # frame directories / image pairs
    duration: Fraction | None = None  # seconds of the source to use, from its start (a preview)
    overwrite: bool = False
    resume: bool = False
    queue_size: int = 8
    encoders: int | None = None  # segments encoded at once (None: engine.encode.default_workers)
    segment_frames: int | None = None  # output frames per encoded segment (default ~4 s)


@dataclass
class Plan:
    """What a run will do, decided before the first frame (printed by probe / --dry-run)."""

    source: object  # engine.video.source.SourceInfo
    output: Path
    output_kind: str  # "video" | "frames" | "image"
    timing: Timing
    frames_out: int
    encode: object | None  # EncodePlan for video output
    streams: list  # StreamAction
    model: str
    device: str
    precision: str
    scale: float
    tile: int | None
    tiles_per_frame: int
    memory_estimate: int  # bytes, one forward
    memory_budget: int | None
    pair_times: list[Fraction] = field(default_factory=list)  # image pairs: the t's written
    inputs: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    batch: int = 1  # output frames per forward (the largest up to Options.batch within the budget)
    compile: bool = False  # torch.compile the forward
    deinterlace: str = ""  # "", "bwdif" or "ivtc", before the model (engine.video.fields)
    # ivtc: the telecined stream's own rate and frame count (``source`` describes the film frames)
    telecined: tuple[Fraction, int] | None = None
    timecode: str = ""  # the output's first timecode label (engine.timecode.carry), if carried
    # Quarter turns counterclockwise (np.rot90) given to each output frame's pixels: the source's
    # display rotation, for outputs with no rotation flag of their own (PNG frames, GIF).
    turns: int = 0
    # --duration: the source time at which the run stops (None: the whole source)
    limit: Fraction | None = None
    # Frame output: file k is frame_pattern.format(frame_first + k) ("{:08d}.png" from 0, or the
    # source folder's own naming, e.g. "shot.{:04d}.png" from 1001)
    frame_pattern: str = "{:08d}.png"
    frame_first: int = 0
    frame_step: int = 1  # the source's numbering step, kept when the rate is (a filled render)

    def frame_name(self, k: int) -> str:
        return self.frame_pattern.format(self.frame_first + k * self.frame_step)

    @property
    def out_duration(self) -> Fraction:
        return Fraction(self.frames_out) / self.timing.out_rate

    def to_dict(self) -> dict:
        s, t = self.source, self.timing
        return {
            "input": str(s.path),
            "input_kind": s.kind,
            "size": [s.width, s.height],
            "input_rate": _q(s.rate),
            "vfr": s.vfr,
            "input_duration": _q(s.duration),
            "frames_in": s.frame_count,
            "pix_fmt": s.pix_fmt,
            "bit_depth": s.depth,
            "color": s.color.describe(),
            "rotation": s.rotation,
            "interlaced": s.interlaced,
            "hdr10": s.hdr10.describe() if s.hdr10 else "",
            "transparent": s.transparent,
            "sar": f"{s.sar.numerator}:{s.sar.denominator}" if s.sar else "",
            "timecode": s.timecode,
            "output_timecode": self.timecode,
            "upright_turns": self.turns,
            "missing_frames": list(s.missing),
            "pulldown": s.pulldown,
            "limit": _q(self.limit) if self.limit is not None else None,
            "duration": _q(self.limit - s.start) if self.limit is not None else None,
            "first_frame_name": self.frame_name(0) if self.output_kind == "frames" else "",
            "deinterlace": self.deinterlace,
            "telecined": (
                {"rate": _q(self.telecined[0]), "frames": self.telecined[1]}
                if self.telecined
                else None
            ),
            "output": str(self.output),
            "output_kind": self.output_kind,
            "output_rate": _q(t.out_rate),
            "frames_out": self.frames_out,
            "output_duration": _q(self.out_duration),
            "slowmo": _q(t.slowmo),
            "encode": self.encode.describe() if self.encode else None,
            "streams": [a.describe() for a in self.streams],
            "model": self.model,
            "device": self.device,
            "precision": self.precision,
            "scale": self.scale,
            "tile": self.tile,
            "tiles_per_frame": self.tiles_per_frame,
            "batch": self.batch,
            "compile": self.compile,
            "memory_estimate_bytes": self.memory_estimate,
            "memory_budget_bytes": self.memory_budget,
            "warnings": list(self.warnings),
        }


def _q(x: Fraction) -> dict:
    return {"exact": str(x), "value": float(x)}


# --------------------------------------------------------------------------------------------------
# Planning


def default_output(inputs: list[Path], options: Options) -> Path:
    """``<stem>_x<factor>.<ext>`` (``_<fps>fps`` with --fps) beside the input."""
    first = inputs[0]
    if options.fps is not None:
        tag = f"_{_num(options.fps)}fps"
    else:
        tag = f"_x{_num(options.factor or 2)}" + ("_slowmo" if options.slowmo else "")
    if len(inputs) == 2:
        n_out = int(options.factor or 2) - 1
        ext = first.suffix if n_out == 1 else ""
        return first.with_name(first.stem + tag + ext)
    if first.is_dir():
        return first.with_name(first.name + tag)
    ext = first.suffix.lower() if first.suffix.lower() in VIDEO_EXTS else ".mp4"
    return first.with_name(first.stem + tag + _holding_ext(ext, options.codec))


def _holding_ext(ext: str, codec: str | None) -> str:
    """``ext``, or where its container cannot hold ``codec`` the codec's own (codecs.holding_ext)."""
    from engine.video.codecs import CONTAINERS, container_holds, find_encoder, holding_ext

    encoder = find_encoder(codec) if codec else None
    if encoder is None:
        return ext  # no codec asked for, or plan_encoding says what is wrong with it
    return ext if container_holds(CONTAINERS[ext], encoder.name) else holding_ext(encoder.name)


def _num(x) -> str:
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}-{x.denominator}"


def output_kind(output: Path, n_inputs: int) -> str:
    from engine.video.images import is_image_file

    if output.is_dir():
        return "frames"
    if output.suffix.lower() in VIDEO_EXTS:
        if n_inputs == 2:
            raise VfiError("two images make image output: give a .png file or a directory")
        return "video"
    if is_image_file(output):
        if output.suffix.lower() != ".png":
            raise VfiError("frames are written as PNG: name the output .png or give a directory")
        if n_inputs != 2:
            raise VfiError(
                f"{output.name}: a video makes many frames; give a directory or a video file"
            )
        return "image"
    if output.suffix:
        from engine.video.codecs import container_for

        container_for(output)  # raises a clear error for an unknown extension
    return "frames"


def make_plans(
    inputs, output=None, options: Options | None = None, *, model_config=None, check_output=True
) -> list[Plan]:
    """One plan per output file: several videos are a batch, anything else is one :func:`make_plan`.

    A batch is planned whole before anything runs: every input that cannot be interpolated (or
    whose output is in the way) is one line of a :class:`VfiErrors`, and nothing is written. The
    outputs go beside their inputs, or into the directory ``output``.
    """
    from engine.errors import VfiErrors
    from engine.video.reader import looks_like_video

    inputs = [Path(p) for p in inputs]
    options = options or Options()
    if len(inputs) < 2 or not all(looks_like_video(p) for p in inputs):
        plan = make_plan(
            inputs, output, options, model_config=model_config, check_output=check_output
        )
        return [plan]
    seen: dict[Path, Path] = {}
    for p in inputs:
        if p.resolve() in seen:
            raise VfiError(f"{p} is given twice: each video once")
        seen[p.resolve()] = p
    outdir = Path(output) if output is not None else None
    if outdir is not None and not outdir.is_dir():
        raise VfiError(
            f"{len(inputs)} videos make {len(inputs)} files: give -o an existing directory "
            f"({outdir} is not one), or no -o to write each beside its input"
        )
    plans, errors, targets = [], [], {}
    for p in inputs:
        out = outdir / default_output([p], options).name if outdir is not None else None
        try:
            plan = make_plan(
                [p], out, options, model_config=model_config, check_output=check_output
            )
        except VfiError as e:
            errors.append(str(e) if p.name in str(e) else f"{p.name}: {e}")
            continue
        key = Path(plan.output).resolve()
        if key in targets:
            errors.append(f"{targets[key]} and {p} would both write {plan.output}")
            continue
        targets[key] = p
        plans.append(plan)
    if errors:
        raise VfiErrors(errors)
    return plans


def make_plan(
    inputs, output=None, options: Options | None = None, *, model_config=None, check_output=True
) -> Plan:
    """Inspect the input and decide everything (no frame is decoded beyond the first).

    ``check_output=False`` (vfi probe): do not refuse an existing output; nothing is written anyway.
    """
    from engine.interpolator import resolve_device, resolve_precision
    from engine.tiling import estimate_memory, plan_tiles
    from engine.video.reader import open_pair, open_source
    from engine.video.streams import plan_streams
    from engine.video.writer import plan_encoding

    options = options or Options()
    inputs = [Path(p) for p in inputs]
    if len(inputs) == 2:
        source = open_pair(*inputs, input_fps=options.input_fps)
    elif len(inputs) == 1:
        source = open_source(inputs[0], input_fps=options.input_fps)
    else:
        raise VfiError(
            f"{len(inputs)} inputs: give videos (each makes its own output), one frame "
            "directory, or two images"
        )
    info = source.info
    if info.frame_count < 2:
        raise VfiError(
            f"{info.path} has only {info.frame_count} video frame: nothing to interpolate"
        )
    output = Path(output) if output is not None else default_output(inputs, options)
    if check_output:
        _check_output(output, inputs, options)
    kind = output_kind(output, len(inputs))
    warnings: list[str] = []
    if info.damaged_packets:
        warnings.append(
            f"the input is damaged ({info.damaged_packets} unreadable packets): "
            "what can be decoded is used"
        )

    deinterlace = resolve_deinterlace(options.deinterlace, info, warnings)
    telecined = None
    if deinterlace == "ivtc":
        from engine.video.fields import film_info

        telecined = (info.rate, info.frame_count)
        info = film_info(info)  # the rate, count and times the model will see
    warnings += source_notes(info)
    info, limit = limit_duration(info, options.duration)

    pair_times: list[Fraction] = []
    if info.kind == "pair":
        if options.fps is not None or options.slowmo:
            raise VfiError(
                "two images take --factor N (N - 1 frames between them), not --fps/--slowmo"
            )
        factor = Fraction(options.factor or 2)
        if factor.denominator != 1 or factor < 2:
            raise VfiError(f"two images need a whole --factor of 2 or more, got {factor}")
        if kind == "image" and factor != 2:
            raise VfiError(f"--factor {factor} makes {factor - 1} frames: give a directory")
        pair_times = [Fraction(j, int(factor)) for j in range(1, int(factor))]
    fps = options.fps
    if output.suffix.lower() == ".gif" and kind == "video":
        fps = gif_rate(options, info.rate, warnings)
    timing = make_timing(
        info.rate, info.start, factor=options.factor, fps=fps, slowmo=options.slowmo
    )
    frames_out = len(pair_times) if pair_times else timing.count(info.end)

    encode = None
    streams = []
    # Video files keep a phone's rotation as a flag; PNG and GIF have none: their pixels are turned,
    # as are those of photos (EXIF orientation), whose flag no video muxer takes over.
    baked = kind in ("frames", "image") or output.suffix.lower() == ".gif" or info.kind != "video"
    turns = round(info.rotation / 90) % 4 if baked else 0
    if kind == "video":
        encode = plan_encoding(
            output,
            width=info.height if turns % 2 else info.width,
            height=info.width if turns % 2 else info.height,
            rate=timing.out_rate,
            color=info.color,
            source_pix_fmt=info.pix_fmt,
            source_depth=info.depth,
            codec=options.codec,
            crf=options.crf,
            preset=options.preset,
            pix_fmt=options.pix_fmt,
            options=options.encoder_options,
            hdr10=info.hdr10,
            sar=info.sar,
            source_format=(info.codec, info.fourcc, info.profile),
        )
        if options.segment_frames:
            encode.segment_frames = max(1, int(options.segment_frames))
        warnings += encode.warnings
        container = encode.container
    else:
        container = None
        if options.codec or options.crf is not None or options.pix_fmt or options.preset:
            warnings.append("--codec/--crf/--preset/--pix-fmt apply to video output only: ignored")
    # A telecined source's labels count its 29.97 frames, not the film frames ivtc gives back.
    tc_rate = telecined[0] if telecined else info.rate
    timecode = carry_timecode(info, tc_rate, timing.out_rate, kind, encode, warnings)
    if info.sar and (kind != "video" or encode.codec == "gif"):
        warnings.append(
            f"the source's pixels are not square (SAR {info.sar.numerator}:{info.sar.denominator})"
            f" and {'GIF' if kind == 'video' else 'PNG'} output cannot say so: it shows narrower "
            "or wider than the source unless scaled afterwards"
        )
    streams = plan_streams(
        info.streams, container, no_audio=options.no_audio, slowmo=options.slowmo
    )
    warnings += [a.describe() for a in streams if a.warn]

    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    scale = _resolve_scale(options.scale, info.width, info.height)
    align = int(-(-16 // scale)) if model_config is not None else 1
    budget = memory_budget(device, options.memory_gib)
    est_kwargs = dict(config=model_config, precision=precision)
    tile, batch = _resolve_tile(
        options.tile, info.width, info.height, budget, align, est_kwargs, options.batch
    )
    if tile:
        tiles = len(plan_tiles(info.height, info.width, tile, align))
        mem = estimate_memory(
            min(tile, info.height), min(tile, info.width), batch=batch, **est_kwargs
        )
    else:
        tiles, mem = 1, estimate_memory(info.height, info.width, batch=batch, **est_kwargs)
    return Plan(
        source=info,
        output=output,
        output_kind=kind,
        timing=timing,
        frames_out=frames_out,
        encode=encode,
        streams=streams,
        model=str(options.model) if options.model else "",
        device=str(device),
        precision=precision,
        scale=scale,
        tile=tile,
        tiles_per_frame=tiles,
        memory_estimate=mem,
        memory_budget=budget,
        pair_times=pair_times,
        inputs=inputs,
        warnings=warnings,
        deinterlace=deinterlace,
        telecined=telecined,
        timecode=timecode,
        turns=turns,
        limit=limit,
        **(frame_naming(source, timing) if kind == "frames" else {}),
        batch=batch,
        compile=options.compile,
    )


def _check_output(output: Path, inputs: list[Path], options: Options) -> None:
    for p in inputs:
        if output.resolve() == p.resolve():
            raise VfiError(f"the output {output} is the input: choose another output path")
    if output.exists() and not output.is_dir() and not options.overwrite:
        raise VfiError(f"{output} exists: pass -y/--overwrite to replace it")
    if output.is_dir() and any(output.iterdir()) and not options.overwrite:
        raise VfiError(f"directory {output} is not empty: pass -y/--overwrite to write into it")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise VfiError(f"output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise VfiError(f"cannot write to {parent} (permission denied)")


def _resolve_scale(scale, width: int, height: int) -> float:
    if scale in (None, "auto"):
        px = width * height
        return 1.0 if px <= 2_300_000 else 0.5 if px <= 9_000_000 else 0.25
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise VfiError(f"--scale must be auto, 1, 0.5 or 0.25, got {scale!r}") from None
    if value not in (1.0, 0.5, 0.25):
        raise VfiError(f"--scale must be auto, 1, 0.5 or 0.25, got {scale!r}")
    return value


def memory_budget(device, gib: float | None = None) -> int | None:
    """Bytes one forward may use.

    CUDA: ``gib`` (default :data:`DEFAULT_GPU_BUDGET_GIB`), at most 85% of the free memory. CPU:
    ``gib`` if given, else half the RAM (capped at 32 GiB).
    """
    import torch

    if gib is not None and gib <= 0:
        raise VfiError(f"the memory budget must be positive, got {gib} GiB")
    cap = None if gib is None else int(gib * 1024**3)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return min(int(free * 0.85), cap or int(DEFAULT_GPU_BUDGET_GIB * 1024**3))
    if cap is not None:
        return cap
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return int(min(ram // 2, 32 * 1024**3))


def _resolve_tile(tile, width, height, budget, align, est_kwargs, max_batch) -> tuple:
    """(tile or None, output frames per forward)."""
    from engine.tiling import fit_to_budget, tile_geometry

    max_batch = max(1, int(max_batch))
    if tile in (None, 0, "0", "off", "none"):
        return None, max_batch
    if tile == "auto":
        return fit_to_budget(height, width, budget, max_batch=max_batch, align=align, **est_kwargs)
    try:
        side = int(tile)
    except (TypeError, ValueError):
        raise VfiError(f"--tile must be auto, off or a size in pixels, got {tile!r}") from None
    if side < 32:
        raise VfiError(f"--tile {side} is too small; use 128 or more")
    side = tile_geometry(side, align)[0]
    return (side, 1) if side < max(width, height) else (None, max_batch)


def model_config_for(name) -> object | None:
    """The ModelConfig of a registry name or weights file, without loading weights (None: baseline)."""
    import json

    from engine.config import ModelConfig
    from engine.registry import default_variant, get_variant

    if not name:
        return default_variant().config
    path = Path(str(name))
    if path.suffix == ".safetensors" and path.with_suffix(".json").is_file():
        data = json.loads(path.with_suffix(".json").read_text())
        return ModelConfig.from_dict(data.get("model", data))
    if path.exists():
        return None  # a training checkpoint: its config is read when it is loaded
    return get_variant(str(name)).config
