"""The training loop: one function, read top to bottom.

    train(cfg) -> setup (DDP if launched by torchrun) -> data -> model -> losses -> optimizer
               -> resume (same experiment) or start a phase (--resume EXP) -> epochs:
                  [curriculum, backbone freeze, batches: forward, loss, backward, (every
                  grad_accum batches) clip, lr, step, EMA, log, periodic checkpoint]
                  -> evaluate every eval_interval epochs -> checkpoints (latest, best)

Under torchrun each process trains on its slice of every global batch (see
:mod:`train.data.mixed`); gradients are averaged by DistributedDataParallel (NCCL on GPUs, gloo on
the CPU); only rank 0 writes logs and checkpoints. On CUDA the forward runs under bf16 autocast
(``--amp``; the model keeps its SSM scan in fp32, the losses run in fp32); bf16 needs no loss
scaling. The CPU trains in fp32. Everything a user can get wrong (paths, checkpoints, flags) is
checked before the first file is written.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from engine.config import ModelConfig
from engine.errors import VfiError
from engine.loading import build_model
from engine.paths import check_creatable
from train import checkpoint, ddp
from train.config import TrainConfig
from train.data.degrade import degrade_inputs
from train.data.mixed import build_train_data, build_val_data, set_curriculum
from train.ema import Ema
from train.losses import loss_total
from train.runlog import RunLog

FROZEN_IN_PHASE_2 = ("encoder", "backbone")  # top-level modules frozen for --freeze_backbone


class TrainStep(nn.Module):
    """``forward`` = the model's ``forward_train``, so DistributedDataParallel can wrap it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, img0, img1, t, scale: float = 1.0) -> dict:
        return self.model.forward_train(img0, img1, t, scale=scale)


def batches(loader: DataLoader):
    """The loader's batches. A user error raised inside a worker process comes back from the
    DataLoader wrapped in the worker's traceback; it is re-raised here as its own one line."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except VfiError as e:
            if "VfiError: " not in str(e):
                raise
            raise VfiError(str(e).rsplit("VfiError: ", 1)[1]) from None
        yield batch


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Linear warm-up, then cosine from cfg.lr to cfg.lr * cfg.lr_floor at the last step."""
    warmup = min(cfg.warmup_steps, total_steps // 10)  # short runs still reach the peak
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = cfg.lr * cfg.lr_floor
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def time_is_up(d: ddp.Dist, elapsed_s: float, max_minutes: float, step: int, every: int) -> bool:
    """Has ``--max_minutes`` run out after this optimizer step?

    Under DDP every rank must leave the loop at the same step: a rank that stops alone sends its
    evaluation and checkpoint collectives to partners still in a gradient all-reduce, and the run
    hangs (it did, on 2 x 2 H200s: the stop was never saved). So rank 0's clock decides, read only
    every ``every`` steps (the log points, where the ranks already synchronise), and broadcast.
    One process reads its own clock at every step.
    """
    if not max_minutes:
        return False
    late = elapsed_s > 60 * max_minutes
    if not d.enabled:
        return late
    if step % every:
        return False
    return ddp.broadcast_flag(d, late)


def stopped_note(cfg: TrainConfig, state: dict) -> str:
    """The log line of a run stopped by ``--max_minutes`` (epoch counted from 1)."""
    return (
        f"stopped after --max_minutes {cfg.max_minutes} at step {state['step']} (epoch "
        f"{state['epoch'] + 1}, batch {state['batch']}); re-run the same command to continue"
    )


def run_root(cfg: TrainConfig) -> Path:
    """Where log/ and ckpt/ go: the workdir, or its dry_run/ folder (dry runs never touch a run)."""
    return Path(cfg.workdir) / "dry_run" if cfg.dry_run else Path(cfg.workdir)


def resume_source(cfg: TrainConfig) -> str:
    """What ``--resume`` names, in the form :func:`train.checkpoint.read_start` reads: a weights
    file (a ``vfi train`` checkpoint or a ``.safetensors`` export), an experiment's best
    checkpoint, or a registered model with weights (``vfi-s``: fine-tune the bundled model)."""
    from engine.registry import VARIANTS
    from engine.weights import WEIGHT_SUFFIXES

    if Path(cfg.resume).suffix in WEIGHT_SUFFIXES and Path(cfg.resume).is_file():
        return cfg.resume
    dirs = [run_root(cfg) / "ckpt", Path(cfg.workdir) / "ckpt"]
    for d in dict.fromkeys(dirs):
        p = checkpoint.paths_for(d, cfg.resume).best
        if p.is_file():
            return str(p)
    if cfg.resume in VARIANTS:
        return cfg.resume
    raise VfiError(
        f"--resume {cfg.resume}: no best checkpoint {dirs[-1] / (cfg.resume + '_best.pkl')}, "
        "no such weights file and no such model; give the --exp_name of a finished earlier run, "
        "a weights file (.pkl or .safetensors) or a model name (see `vfi models`)"
    )


def model_config_from_arg(name: str) -> ModelConfig:
    """--model: a registry name, or a .json file with a ModelConfig dict (or {"model": {...}})."""
    if name.endswith(".json"):
        try:
            data = json.loads(Path(name).read_text())
        except (OSError, ValueError) as e:
            raise VfiError(f"--model {name}: cannot read the model config ({e})") from None
        return ModelConfig.from_dict(data.get("model", data))
    from engine.registry import get_variant

    variant = get_variant(name)
    if variant.config is None:
        raise VfiError(f"{name} is a baseline without learned weights: nothing to train")
    return variant.config


def resolve_model_config(
    cfg, paths, resuming: bool, override: ModelConfig | None, start: tuple | None = None
) -> ModelConfig:
    """The architecture: injected > --model > the run being resumed > --resume's > vfi-s.
    ``start``: --resume's weights when already read (:func:`train.checkpoint.read_start`)."""
    if override is not None:
        base = override
    elif cfg.model:
        base = model_config_from_arg(cfg.model)
    elif resuming and paths.latest.is_file():
        base = checkpoint.peek_config(paths)
    elif cfg.resume:
        base = (start or checkpoint.read_start(resume_source(cfg)))[1]
    else:
        base = model_config_from_arg("vfi-s")
    changes = {"feature_warp": cfg.feature_warp, "texture_path": cfg.texture_path}
    if cfg.backbone_mode is not None:
        changes["backbone_mode"] = cfg.backbone_mode
    if cfg.use_mhc is not None:
        changes["use_mhc"] = cfg.use_mhc
    if cfg.flow_corr is not None:
        changes["flow_corr"] = cfg.flow_corr
    return base.replace(**changes)


def set_frozen(model: nn.Module, frozen: bool) -> None:
    for name, p in model.named_parameters():
        if name.split(".")[0] in FROZEN_IN_PHASE_2:
            p.requires_grad_(not frozen)


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device):
    # Weight decay on matrices and kernels only: decaying norms and biases only hurts.
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), fused=device.type == "cuda")


@torch.no_grad()
def evaluate(model, val_set, d: ddp.Dist, autocast, num_workers: int = 0) -> tuple[float, float]:
    """Mean PSNR / SSIM (ssim_matlab) over the validation triplets, on 8-bit-rounded predictions
    as `vfi bench` scores them; each process takes every world-th triplet, sums are all-reduced."""
    from engine.interpolator import pad_to
    from engine.metrics import psnr, quantize, ssim_matlab

    was_training = model.training
    model.eval()
    mine = Subset(val_set, range(d.rank, len(val_set), d.world))
    loader = DataLoader(mine, batch_size=1, num_workers=min(num_workers, 4))
    sums = torch.zeros(3, dtype=torch.float64, device=d.device)  # psnr, ssim, count
    one = torch.ones((), dtype=torch.float64, device=d.device)
    for frames, _ in batches(loader):
        frames = frames.to(d.device).float()  # (1, 3, 3, H, W) in [0, 1]
        img0, gt, img1 = frames.unbind(1)
        a, (h, w) = pad_to(img0, model.alignment)
        b, _ = pad_to(img1, model.alignment)
        with autocast():
            pred = model(a, b, 0.5)
        pred = quantize(pred[..., :h, :w].float())
        sums += torch.stack([psnr(pred, gt).sum(), ssim_matlab(pred, gt).double().sum(), one])
    ddp.all_reduce_sum(d, sums)
    model.train(was_training)
    n = max(sums[2].item(), 1.0)
    return sums[0].item() / n, sums[1].item() / n


def train(cfg: TrainConfig, model_config: ModelConfig | None = None) -> dict:
    """Run (or resume) the training described by ``cfg``; returns a summary dict.

    ``model_config`` replaces ``cfg.model`` (tests inject a tiny architecture this way).
    """
    # --max_minutes is a wall-clock budget for the whole command: decoding a large corpus into
    # RAM took minutes on a 4-GPU host (22nd round), and a clock started after it overran the
    # caller's limit by that much, so the clock starts here, before any setup.
    t_start = time.perf_counter()
    d = ddp.setup(cfg.device)
    try:
        with contextlib.ExitStack() as closing:  # the log closes (and the bar stops) on any exit
            return _train(cfg, d, model_config, closing, t_start)
    finally:
        ddp.cleanup(d)


def _train(
    cfg: TrainConfig, d: ddp.Dist, model_config, closing: contextlib.ExitStack, t_start: float
) -> dict:
    root = run_root(cfg)
    if d.is_main:
        # Before the data load (minutes on a large corpus), so a bad --workdir costs nothing.
        for folder in (root / "log" / cfg.exp_name, root / "ckpt"):
            check_creatable(folder, "the run's logs and checkpoints (--workdir)")
    paths = checkpoint.paths_for(root / "ckpt", cfg.exp_name)
    resuming = not cfg.dry_run and checkpoint.exists(paths)
    # A new run's start weights (--resume), read once: their config decides the architecture,
    # their tensors go into the model once it is built.
    start_src = resume_source(cfg) if cfg.resume and not resuming else None
    start = checkpoint.read_start(start_src) if start_src else None
    config = resolve_model_config(cfg, paths, resuming, model_config, start)

    # ---- data (a missing or malformed dataset fails here, before anything is written)
    dataset, sampler, sources = build_train_data(cfg, d.rank, d.world)
    val_set = build_val_data(cfg)
    batches_per_epoch = (len(sampler) // cfg.grad_accum) * cfg.grad_accum
    if batches_per_epoch == 0:
        raise VfiError(
            f"one epoch has {len(sampler)} batches, fewer than --grad_accum {cfg.grad_accum}"
        )
    total_steps = batches_per_epoch // cfg.grad_accum * cfg.epochs

    # ---- model, losses, optimizer
    torch.manual_seed(cfg.seed)  # the same init on every rank (DDP also broadcasts rank 0's)
    model = build_model(config).to(d.device)
    from train.vgg import load_vgg19

    vgg, vgg_note = load_vgg19() if cfg.w_vgg > 0 else (None, "w_vgg is 0")
    if vgg is not None:
        vgg.to(d.device)
    teacher = None
    if cfg.teacher:
        from train.teacher import RifeTeacher

        teacher = RifeTeacher.load(None if cfg.teacher == "auto" else cfg.teacher).to(d.device)
    optimizer = make_optimizer(model, cfg, d.device)
    ema = Ema(model, cfg.ema) if cfg.ema else None
    state = {"epoch": 0, "batch": 0, "step": 0, "best_psnr": -math.inf, "best_epoch": -1}

    # ---- resume this experiment, or start a phase from another one's best weights
    start_note = f"starting {cfg.exp_name} (phase {cfg.phase}) from scratch"
    if resuming:
        resumed = checkpoint.load_resume(paths, model, optimizer, ema, config)
        saved_total = (resumed.pop("schedule", None) or {}).get("total_steps")
        state.update(resumed)
        start_note = (
            f"resuming {cfg.exp_name} from {paths.latest}: epoch {state['epoch'] + 1}, "
            f"batch {state['batch']}, step {state['step']}"
        )
        if saved_total is not None and saved_total != total_steps:
            # The span is epochs x batches per epoch; a smaller dataset (e.g. another corpus pack
            # below --max_iters_per_epoch) or a new --epochs changes it, and with it the lr now.
            start_note += (
                f"; note: the learning-rate schedule now spans {total_steps} steps "
                f"({cfg.epochs} epochs of {batches_per_epoch} batches), not {saved_total} as "
                f"saved: the cosine continues at {lr_at(state['step'], cfg, total_steps):.3g}, "
                f"not {lr_at(state['step'], cfg, saved_total):.3g}"
            )
    elif start is not None:
        new = checkpoint.load_phase_start(start, start_src, model, config)
        if ema is not None:
            ema.reset(model)
        start_note = f"starting {cfg.exp_name} (phase {cfg.phase}) from {start_src}" + (
            f"; new zero-initialised modules: {', '.join(new)}" if new else ""
        )
    if d.rank > 0:  # distinct augmentation per process, reproducible from (seed, rank, step)
        torch.manual_seed(cfg.seed + 7919 * d.rank + state["step"])

    log = closing.enter_context(RunLog(root / "log", cfg.exp_name, enabled=d.is_main))
    log.info(start_note)
    log.info(
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; {d.world} "
        f"process(es) on {d.device}; {batches_per_epoch} batches/epoch, {total_steps} steps"
    )
    log.note("loss_vgg", "loss_vgg: enabled" if vgg else f"loss_vgg: disabled ({vgg_note})")
    if teacher is not None:
        log.info(
            f"flow distillation from RIFE HDv3 (w_distill {cfg.w_distill}, margin "
            f"{cfg.distill_margin}, window {cfg.distill_window}"
            f"{', texture-weighted' if cfg.distill_texture else ''})"
        )
    corpus = [p for _, ds, _ in sources for p in getattr(ds, "datasets", [ds])]
    for part in corpus:  # what of --train_data fits this machine's RAM budget (--ram_gb)
        if getattr(part, "triplets_indexed", None) is not None:
            budget = "none" if part.ram_gb is None else f"{part.ram_gb:.1f} GiB"
            log.info(
                f"corpus: {len(part.table)} of {part.triplets_indexed} triplets decoded "
                f"({part.bytes / 2**30:.1f} GiB per process; budget {budget})"
            )
    if cfg.triplet_margins:
        dropped = sum(getattr(p, "dropped_by_teacher", 0) for p in corpus)
        log.info(
            f"teacher-checked triplets ({cfg.triplet_margins}): {dropped} dropped with a margin "
            f"below {cfg.min_teacher_margin} dB over the blend"
        )
    if d.is_main:
        (root / "log" / cfg.exp_name / "config.json").write_text(
            json.dumps({"train": cfg.to_dict(), "model": config.to_dict()}, indent=1)
        )

    use_amp = cfg.amp and d.device.type == "cuda"

    def autocast():
        if use_amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def check_finite(loss_value: float | None = None) -> None:
        """Stop before a non-finite loss reaches a checkpoint (read per log interval, not per batch)."""
        if loss_value is None and "loss_total" in running:  # every rank holds the same keys
            loss_value = float(ddp.all_reduce_sum(d, running["loss_total"].reshape(1).clone()))
        if loss_value is not None and not math.isfinite(loss_value):
            raise VfiError(
                f"the loss became {loss_value} before step {state['step']}: lower --lr "
                "(the checkpoints are intact)"
            )

    def save(evaluated: tuple[float, float] | None = None) -> None:
        """Latest weights + optimizer state; the best weights if this evaluation beat them."""
        check_finite()  # on every rank, before the rank-0 return: all must join the all-reduce
        if not d.is_main:
            return
        meta = {k: state[k] for k in ("epoch", "batch", "step")}
        meta.update(exp_name=cfg.exp_name, phase=cfg.phase, ema=ema is not None)
        if evaluated is not None and evaluated[0] > state["best_psnr"]:
            state["best_psnr"], state["best_epoch"] = evaluated[0], state["epoch"]
            eval_weights = ema.weights_for(model) if ema else model.state_dict()
            best_meta = {**meta, "psnr": evaluated[0], "ssim": evaluated[1]}
            best_meta["ema_weights"] = ema is not None  # as <exp>_ema.pkl's record says it
            checkpoint.save_best(paths, eval_weights, config, best_meta)
        ema_state = ema.state_dict() if ema else None
        optim = {
            "optimizer": optimizer.state_dict(),
            "train_state": dict(state),
            "rng": checkpoint.rng_state(),
            "schedule": {"total_steps": total_steps, "lr": cfg.lr, "lr_floor": cfg.lr_floor},
            "train_config": cfg.to_dict(),
        }
        if cfg.compact_state:
            optim["optimizer"] = checkpoint.compact(optim["optimizer"])
            ema_state = checkpoint.compact(ema_state, torch.float16)
        scores = {"psnr": evaluated[0], "ssim": evaluated[1]} if evaluated is not None else None
        checkpoint.save_latest(paths, model.state_dict(), config, meta, optim, ema_state, scores)

    loss_keys = ("w_lap", "w_ter", "w_vgg", "w_inter", "w_moving", "moving_halo")
    loss_args = {k: getattr(cfg, k) for k in loss_keys}
    step_module = TrainStep(model)
    net, frozen = step_module, None
    history = []  # (step, loss_total) at every log point
    running: dict[str, float] = {}
    n_running = 0
    pin = d.device.type == "cuda"

    def run_eval() -> tuple[float, float]:
        """PSNR/SSIM on the validation set, with the EMA weights when there are some."""
        eval_model = model
        if ema is not None:
            eval_model = copy.deepcopy(model)
            eval_model.load_state_dict(ema.weights_for(model))
        evaluated = evaluate(eval_model, val_set, d, autocast, cfg.num_workers)
        log.scalars(state["step"], {"psnr": evaluated[0], "ssim": evaluated[1]})
        log.info(
            f"step {state['step']}: PSNR {evaluated[0]:.3f} dB, SSIM {evaluated[1]:.4f} "
            f"on {len(val_set)} triplets"
        )
        return evaluated

    out_of_time = False
    for epoch in range(state["epoch"], cfg.epochs):
        curriculum = set_curriculum(sources, cfg, epoch)
        freeze = epoch < cfg.freeze_backbone
        if freeze != frozen:
            set_frozen(model, freeze)
            net = ddp.wrap(step_module, d)  # DDP tracks the parameters that require grad now
            frozen = freeze
            if freeze:
                log.info(
                    f"backbone frozen ({', '.join(FROZEN_IN_PHASE_2)}) for the first "
                    f"{cfg.freeze_backbone} epochs"
                )
        sampler.set_epoch(epoch, start=state["batch"])
        loader = DataLoader(
            dataset, batch_sampler=sampler, num_workers=cfg.num_workers, pin_memory=pin
        )
        log.info(f"epoch {epoch + 1}/{cfg.epochs}" + (f" ({curriculum})" if curriculum else ""))
        log.start_epoch(epoch, cfg.epochs, batches_per_epoch, done=state["batch"])
        t_epoch, first_batch, samples = time.perf_counter(), state["batch"], 0
        model.train()
        for batch in batches(loader):
            if state["batch"] >= batches_per_epoch:
                break
            frames = batch["frames"].to(d.device, non_blocking=True)  # (B, 3, 3, H, W) uint8
            frames = frames.float().div_(255) if frames.dtype == torch.uint8 else frames.float()
            img0, gt, img1 = frames.unbind(1)
            clean = (img0, img1)  # the loss's moving-pixel mask and the teacher see these
            if cfg.degrade_prob:
                img0, img1 = degrade_inputs(img0, img1, cfg.degrade_prob, cfg.degrade_quality)
            t = batch["t"].to(d.device, torch.float32)  # (B,)
            scale = float(batch["scale"][0])  # batches are homogeneous (one source each)
            sync = (state["batch"] + 1) % cfg.grad_accum == 0
            no_sync = net.no_sync() if d.enabled and not sync else contextlib.nullcontext()
            with no_sync:
                with autocast():
                    out = net(img0, img1, t, scale)
                loss, parts = loss_total(out, gt, vgg=vgg, inputs=clean, **loss_args)
                if teacher is not None:
                    from train.teacher import distill_loss

                    with torch.no_grad(), autocast():
                        taught = teacher(*clean, scale=scale)
                    extra, extra_parts = distill_loss(
                        out,
                        taught,
                        gt,
                        t=t,
                        w_flow=cfg.w_distill,
                        margin=cfg.distill_margin,
                        window=cfg.distill_window,
                        texture=cfg.distill_texture,
                    )
                    loss = loss + extra
                    parts = {**parts, **extra_parts, "loss_total": loss.detach()}
                (loss / cfg.grad_accum).backward()
            state["batch"] += 1
            samples += img0.shape[0] * d.world
            # Sums stay on the GPU: reading a value every batch would sync the host with the GPU
            # and stall the launch queue; they are read once per log interval.
            for k, v in parts.items():
                running[k] = running.get(k, 0.0) + v.detach().float()
            n_running += 1
            if not sync:
                continue

            # ---- one optimizer step
            lr = lr_at(state["step"], cfg, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.grad is not None], cfg.grad_clip
                )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model, state["step"])
            state["step"] += 1

            if state["step"] % cfg.log_interval == 0:
                keys = sorted(running)
                avg = torch.stack([running[k] for k in keys]).to(d.device) / n_running
                avg = ddp.all_reduce_sum(d, avg) / d.world
                means = dict(zip(keys, avg.tolist()))
                check_finite(means["loss_total"])
                history.append((state["step"], means["loss_total"]))
                log.scalars(state["step"], {**means, "lr": lr})
                # The text log gets them too (not the console): a remote run's text log is often
                # all that comes back, its TensorBoard folder left behind.
                losses = ", ".join(f"{k} {v:.4f}" for k, v in means.items())
                log.info(f"step {state['step']}: {losses}, lr {lr:.3g}", echo=False)
                log.advance(state["batch"], means["loss_total"])
                running, n_running = {}, 0
            else:
                log.advance(state["batch"])
            if state["step"] % cfg.save_interval == 0:
                save()
            elapsed = time.perf_counter() - t_start  # since the command started
            if time_is_up(d, elapsed, cfg.max_minutes, state["step"], cfg.log_interval):
                out_of_time = True
                break
        log.end_epoch()
        # Out of time on an epoch's last batch is an epoch end, not a mid-epoch stop: saving
        # (epoch, batch = its length) would make the next call log an empty epoch and re-validate.
        if out_of_time and state["batch"] < batches_per_epoch:  # evaluate, save (position kept)
            save(run_eval())
            log.info(stopped_note(cfg, state))
            break
        seconds = time.perf_counter() - t_epoch
        log.info(
            f"epoch {epoch + 1}: {state['batch'] - first_batch} batches in {seconds:.0f} s, "
            f"{samples / max(seconds, 1e-9):.1f} samples/s"
        )
        state["epoch"], state["batch"] = epoch + 1, 0

        evaluated = None
        if (epoch + 1) % cfg.eval_interval == 0 or epoch + 1 == cfg.epochs or out_of_time:
            evaluated = run_eval()
        save(evaluated)
        ddp.barrier(d)
        if out_of_time and epoch + 1 < cfg.epochs:
            log.info(stopped_note(cfg, state))
            break

        if cfg.dry_run and epoch == 0:  # the resume path, on the checkpoint just written
            saved = checkpoint.load_resume(paths, model, optimizer, ema, config)
            if saved["step"] != state["step"]:
                raise RuntimeError(f"dry run: resumed step {saved['step']} != {state['step']}")
            log.info(f"dry run: checkpoint saved and resumed at step {saved['step']}")

    log.info(
        f"done: step {state['step']}, best PSNR {state['best_psnr']:.3f} dB "
        f"(after epoch {state['best_epoch']}); best weights: {paths.best}"
    )
    return {
        "step": state["step"],
        "epoch": state["epoch"],
        "best_psnr": state["best_psnr"],
        "history": history,
        "paths": paths,
        "vgg": vgg is not None,
        # Only rank 0 evaluates: another rank's best_psnr is the one it resumed with, stale.
        "main": d.is_main,
    }
