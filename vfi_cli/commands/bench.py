"""`vfi bench`: score a model on a benchmark with its exact protocol, or time it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

DATASETS = (
    "vimeo90k",
    "ucf101",
    "snu-film",
    "middlebury",
    "xiph",
    "x4k",
    "triplets",
    "sequence",
    "video",
    "time",
)
# Options that only one kind of run uses: name -> the datasets that accept it.
ONLY_FOR = {
    "split": ("snu-film",),
    "res": ("xiph", "x4k"),
    "recursive": ("x4k",),
    "resolution": ("time",),
    "batch": ("time",),
    "compile": ("time",),
    "warmup": ("time",),
    "runs": ("time",),
}

EPILOG = """\b
Examples:
  vfi bench middlebury --path data/middlebury --model blend
  vfi bench sequence data/eval/sequences/crowd960 --model my.safetensors --json crowd.json
  vfi bench snu-film --path data/SNU-FILM --split extreme --tta
  vfi bench video clip.mp4 --limit 100 --save-dir preds/
  vfi bench time --resolution 1080p --precision bf16 --batch 2
"""


@click.command(name="bench", epilog=EPILOG)
@click.argument("dataset", type=click.Choice(DATASETS, case_sensitive=False))
@click.argument("target", required=False, type=click.Path(path_type=Path))
@click.option(
    "--path", "path", type=click.Path(path_type=Path), help="Dataset folder (video: file)."
)
@click.option(
    "--model", "model_name", default=None, help="Registry name or weights file [registry default]."
)
@click.option("--tta/--no-tta", default=False, help="Flip test-time augmentation (reports both).")
@click.option(
    "--scale",
    type=click.Choice(["1", "0.5", "0.25"]),
    default=None,
    help="Flow scale [protocol's].",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default=None,
    help="[fp32 for scores, as the references; auto for time].",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Score only the first N samples."
)
@click.option(
    "--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write results here."
)
@click.option(
    "--save-dir", type=click.Path(path_type=Path), default=None, help="Write <DIR>/<name>.png."
)
@click.option(
    "--split", type=click.Choice(["easy", "medium", "hard", "extreme"]), help="snu-film level."
)
@click.option("--res", type=click.Choice(["2k", "4k"]), help="xiph / x4k protocol resolution.")
@click.option("--recursive", is_flag=True, help="x4k: recursive halving instead of direct t.")
@click.option("--resolution", default=None, help="time: 720p, 1080p, 4k or WxH [1080p].")
@click.option(
    "--batch", type=click.IntRange(min=1), default=None, help="time: frame pairs per call [1]."
)
@click.option("--compile", "use_compile", is_flag=True, help="time: torch.compile the model.")
@click.option("--warmup", type=click.IntRange(min=0), default=None, help="time: warm-up runs.")
@click.option("--runs", type=click.IntRange(min=1), default=None, help="time: timed runs.")
def command(
    dataset,
    target,
    path,
    model_name,
    tta,
    scale,
    precision,
    device,
    limit,
    json_out,
    save_dir,
    **extra,
):
    """Score a model on DATASET with that benchmark's exact protocol (or `time` it).

    DATASET's files come from --path (or TARGET): a folder in the set's official layout, a folder of
    DVF triplets (`triplets`), of consecutive frames (`sequence`), or a video file (`video`).
    """
    from engine.errors import VfiError

    dataset = dataset.lower()
    for opt, allowed in ONLY_FOR.items():
        key = "use_compile" if opt == "compile" else opt
        if extra.get(key) not in (None, False) and dataset not in allowed:
            raise VfiError(f"--{opt} only applies to {', '.join(allowed)}")
    if target is not None and path is not None and Path(target) != Path(path):
        raise VfiError("give the dataset location once: as an argument or with --path")
    path = path if path is not None else target
    if dataset != "time" and path is None:
        raise VfiError(
            f"vfi bench {dataset} needs --path (the dataset's folder, or the video file)"
        )
    if dataset == "snu-film" and not extra["split"]:
        raise VfiError("snu-film needs --split easy|medium|hard|extreme")
    if dataset in ("xiph", "x4k") and not extra["res"]:
        raise VfiError(f"{dataset} needs --res 2k or 4k")
    if json_out is not None:  # checked now, not after the benchmark has run
        if json_out.is_dir():
            raise VfiError(f"--json {json_out} is a folder; give a file name")
        from engine.paths import check_creatable

        check_creatable(json_out.parent, "--json")

    import engine
    from engine.registry import VARIANTS, default_variant
    from train import bench, timetest

    model_name = model_name or default_variant().name
    # Speed does not depend on the weights: `time` measures a registry model that has no trained
    # weights yet on a random init (said in the result) instead of refusing.
    variant = VARIANTS.get(str(model_name))
    random_init = dataset == "time" and variant is not None and variant.kind == "model"
    random_init = random_init and variant.weights is None
    model = engine.load_model(model_name, pretrained=not random_init)
    label = f"{model_name} (random init)" if random_init else str(model_name)
    progress, finish = _progress(dataset)
    try:
        if dataset == "time":
            result = timetest.time_model(
                model,
                resolution=extra["resolution"] or "1080p",
                batch=extra["batch"] or 1,
                device=device,
                precision=precision or "auto",
                scale=float(scale or 1),
                tta=tta,
                compile=bool(extra["use_compile"]),
                warmup=extra["warmup"],
                runs=extra["runs"],
                progress=progress,
                model_label=label,
            )
        else:
            opts = bench.RunOptions(
                device=device,
                precision=precision or "fp32",
                tta=tta,
                scale=float(scale) if scale else None,
                limit=limit,
                save_dir=save_dir,
                progress=progress,
                model_label=str(model_name),
            )
            fn = bench.DATASETS[dataset]
            kwargs = {
                "snu-film": {"split": extra["split"]},
                "xiph": {"res": extra["res"]},
                "x4k": {"res": extra["res"], "recursive": extra["recursive"]},
            }.get(dataset, {})
            result = fn(model, path, opts=opts, **kwargs)
    finally:
        finish()
    if json_out is not None:
        _write_json(json_out, result.to_dict())
    _print_result(result)


def _progress(dataset: str):
    """A Rich progress bar on stderr when it is a terminal; (update, finish) callbacks."""
    import sys

    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from vfi_cli.ui import console

    bar = Progress(
        TextColumn(f"[bold]{dataset}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console(stderr=True),
        transient=True,
    )
    task = bar.add_task(dataset, total=None)
    bar.start()

    def update(done, total):
        bar.update(task, completed=done, total=total)

    return update, bar.stop


def _write_json(path: Path, data: dict) -> None:
    """Write atomically: a temporary file beside the target, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _print_result(result) -> None:
    from rich.table import Table

    from vfi_cli.ui import console

    s, p = result.summary, result.protocol
    out = console()
    if result.dataset == "time":
        table = Table(title=f"vfi bench time: {p['model']} at {p['resolution']} x{p['batch']}")
        for col in ("median ms", "mean ms", "min ms", "fps", "params", "peak MiB"):
            table.add_column(col, justify="right")
        table.add_row(
            f"{s['median_ms']:.2f}",
            f"{s['mean_ms']:.2f}",
            f"{s['min_ms']:.2f}",
            f"{s['fps']:.2f}",
            f"{s['params'] / 1e6:.3f} M",
            f"{s['peak_mem_mb']:.0f}",
        )
        out.print(table)
        keys = ("device", "precision", "compile", "tta", "timer", "warmup", "runs", "peak_memory")
    else:
        table = Table(title=f"vfi bench {result.dataset}: {p['model']}")
        for col in ("run", "n", "PSNR", "SSIM", "IE"):
            table.add_column(col, justify="right" if col != "run" else "left")

        def row(label, d):
            table.add_row(
                label, str(s["n"]), f"{d['psnr']:.2f}", f"{d['ssim']:.4f}", f"{d['ie']:.2f}"
            )

        row("flip TTA" if p["tta"] else "plain", s)
        if "no_tta" in s:
            row("plain", s["no_tta"])
        out.print(table)
        keys = ("reference", "rounding", "ssim", "pad", "scale", "precision", "device", "note")
        keys += tuple(k for k in ("split", "res", "mode", "limit") if p.get(k) is not None)
    out.print("protocol: " + "; ".join(f"{k}={p[k]}" for k in keys if k in p), style="dim")
