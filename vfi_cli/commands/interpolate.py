"""`vfi interpolate`: a video, a frame directory or two images in; a smoother or slower one out."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from vfi_cli.params import DEINTERLACE_OPTION, FRAME_RATE, KEY_VALUE, RATIONAL, TILE

# Without a terminal there is no bar to redraw: a progress line this often keeps logs short.
PLAIN_PROGRESS_SECONDS = 10.0

EPILOG = """\b
Examples:
  vfi interpolate clip.mp4                      # 2x frame rate -> clip_x2.mp4
  vfi interpolate clip.mp4 --fps 60000/1001     # exactly 59.94 fps
  vfi interpolate clip.mp4 --factor 4 --slowmo  # 4x slower at the input rate (audio dropped)
  vfi interpolate a.png b.png -o mid.png        # the frame halfway between two images
  vfi interpolate *.mov -o out/                 # each video in turn, one model load
  vfi interpolate film.mkv -t 10 -o test.mp4    # the first 10 s: try the settings first
"""


@click.command("interpolate", epilog=EPILOG)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Video file (container from the extension), .png, or a directory for frames.",
)
@click.option("--factor", type=RATIONAL, help="Frame-rate multiplier: 2, 4, 5/2 (default 2).")
@click.option(
    "--fps", type=FRAME_RATE, help="Output frame rate instead: 60, 60000/1001 (or 59.94)."
)
@click.option(
    "--slowmo",
    is_flag=True,
    help="Keep the input rate and every new frame: duration x factor (audio dropped).",
)
@click.option(
    "--scene-threshold",
    type=float,
    default=0.12,
    show_default=True,
    help="Scene-cut sensitivity (0-1, lower finds more cuts).",
)
@click.option("--no-scene-detect", is_flag=True, help="Interpolate across scene cuts too.")
@click.option(
    "--dedup",
    is_flag=True,
    help="Drop duplicate frames (anime on twos, pulldown) and interpolate by timestamp.",
)
@click.option(
    "--dedup-threshold",
    type=float,
    default=0.02,
    show_default=True,
    help="Largest thumbnail difference still counted as a duplicate.",
)
@DEINTERLACE_OPTION
@click.option("--no-audio", is_flag=True, help="Leave audio out.")
@click.option(
    "--codec",
    help="Encoder: libx264 (default; libx265 for 10-bit sources), libvpx-vp9, libsvtav1, "
    "ffv1, prores (.mov), dnxhr (.mov), ... or a format: h264, hevc, av1.",
)
@click.option("--crf", type=int, help="Constant quality (lower is better).")
@click.option(
    "--preset",
    help="Encoder speed preset (libx264: ultrafast ... veryslow; default veryfast); for ProRes "
    "and DNxHR the profile (proxy, lt, standard, hq, 4444, 4444xq; dnxhr_lb ... dnxhr_444).",
)
@click.option("--pix-fmt", help="Pixel format (default: the source's, bit depth kept).")
@click.option(
    "-e",
    "--encoder-option",
    "encoder_options",
    type=KEY_VALUE,
    multiple=True,
    help="Any encoder option as key=value (repeatable).",
)
@click.option("--model", default=None, help="Registry name or weights file (default: registry).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option(
    "--precision",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
)
@click.option(
    "--compile",
    "compile_model",
    is_flag=True,
    help="torch.compile the model first (minutes, once per run; pays on long clips).",
)
@click.option(
    "--scale",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "1", "0.5", "0.25"]),
    help="Flow resolution (auto: 0.5 for 4K, 0.25 above).",
)
@click.option(
    "--tile",
    type=TILE,
    default="auto",
    show_default=True,
    help="Tile side in pixels for frames beyond the memory budget (auto, off, N).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Output frames per forward.",
)
@click.option(
    "--memory",
    type=click.FloatRange(0.25, 1024),
    metavar="GIB",
    help="GPU memory one forward may use; larger frames are tiled (default 6).",
)
@click.option(
    "--encoders",
    type=click.IntRange(1, 32),
    help="Video segments encoded at once (default: by CPU count).",
)
@click.option("--input-fps", type=FRAME_RATE, help="Rate of a frame directory or image pair (24).")
@click.option(
    "-t",
    "--duration",
    type=RATIONAL,
    metavar="SECONDS",
    help="Only the first SECONDS of the input (a preview of the settings on a long clip).",
)
@click.option("--json", "json_events", is_flag=True, help="Progress as JSON lines on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and warnings.")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace an existing output.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run of the same command (and keep its work if stopped).",
)
def command(inputs, output, factor, fps, slowmo, scene_threshold, no_scene_detect, dedup,
            dedup_threshold, deinterlace, no_audio, codec, crf, preset, pix_fmt, encoder_options,
            model, device, precision, compile_model, scale, tile, batch, memory, encoders,
            input_fps, duration, json_events, quiet, dry_run, overwrite, resume):  # fmt: skip
    """Interpolate INPUTS (a video, a frame directory, two images, or several videos) to a higher
    frame rate. Several videos are planned first (any problem with any of them stops the batch
    before it starts), then run one after another with one model load."""
    from engine.errors import VfiError
    from engine.plan import Options, make_plans, model_config_for
    from engine.registry import default_variant

    if factor is not None and fps is not None:
        raise VfiError("give either --factor or --fps, not both")
    model = model or default_variant().name
    options = Options(
        factor=factor,
        fps=fps,
        slowmo=slowmo,
        scene_detect=not no_scene_detect,
        scene_threshold=scene_threshold,
        dedup=dedup,
        dup_threshold=dedup_threshold,
        deinterlace=deinterlace,
        no_audio=no_audio,
        codec=codec,
        crf=crf,
        preset=preset,
        pix_fmt=pix_fmt,
        encoder_options=dict(encoder_options),
        model=model,
        device=device,
        precision=precision,
        compile=compile_model,
        scale=scale,
        tile=tile,
        batch=batch,
        memory_gib=memory,
        encoders=encoders,
        input_fps=input_fps,
        duration=duration,
        overwrite=overwrite,
        resume=resume,
    )
    out = _Output(json_events, quiet)
    plans = make_plans(inputs, output, options, model_config=model_config_for(model))
    if dry_run:
        from vfi_cli.commands.probe import render_plans

        if json_events:
            for plan in plans:
                out.event({"event": "plan", **plan.to_dict()})
        else:
            render_plans(plans)
        return
    import engine

    net = engine.load_model(model)
    failed: list[str] = []
    for i, plan in enumerate(plans):
        if len(plans) > 1 and not json_events and not quiet:
            click.echo(f"[{i + 1}/{len(plans)}] {plan.source.path} -> {plan.output}", err=True)
        try:
            _run_one(plan, net, options, out, json_events or quiet)
        except VfiError as e:
            if len(plans) == 1:
                raise
            from vfi_cli.ui import print_error

            print_error(str(e))  # the run cleaned up after itself; the batch goes on
            failed.append(str(plan.source.path))
        except KeyboardInterrupt:
            kept = " (its work is kept: rerun with --resume)" if resume else ""
            done = f"; {i} of {len(plans)} videos finished" if len(plans) > 1 else ""
            click.echo(f"interrupted: nothing written to {plan.output}{kept}{done}", err=True)
            raise click.exceptions.Exit(130) from None
    if failed:
        raise VfiError(f"{len(failed)} of {len(plans)} videos failed: {', '.join(failed)}")


def _run_one(plan, net, options, out: _Output, silent: bool) -> None:
    from engine.pipeline import run

    out.event({"event": "plan", **plan.to_dict()})
    try:
        result = run(plan, net, options, on_event=out.event)
    finally:
        out.close()
    if not silent:
        cuts = f", {len(result.cuts)} scene cut(s)" if result.cuts else ""
        dups = f", {result.duplicates} duplicate(s) dropped" if result.duplicates else ""
        click.echo(
            f"wrote {result.output}: {result.frames_out} frames "
            f"({result.synthesized} synthesized{cuts}{dups}) in {result.seconds:.1f} s",
            err=True,
        )


class _Output:
    """Renders pipeline events: JSON lines, a Rich progress bar (on a terminal), or plain lines."""

    def __init__(self, json_events: bool, quiet: bool):
        self.json, self.quiet = json_events, quiet
        self.progress = None
        self.task = None
        self.last_line: float | None = None  # when the last plain progress line was written

    def event(self, e: dict) -> None:
        from vfi_cli.ui import print_notice, print_warning

        kind = e["event"]
        if self.json:
            click.echo(json.dumps(e, default=str))
            return
        if kind == "warning":
            print_warning(e["message"])
        elif kind == "plan":
            for w in e.get("warnings", []):
                print_warning(w)
        elif self.quiet:
            return
        elif kind == "notice":
            print_notice(e["message"])
        elif kind == "scene_cut":
            self._line(f"scene cut at {e['seconds']:.3f} s: frames across it repeat the nearer one")
        elif kind == "progress":
            self._bar(e)

    def _line(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text)
        else:
            sys.stderr.write(text + "\n")

    def _bar(self, e: dict) -> None:
        if not sys.stderr.isatty():
            self._plain_progress(e)
            return
        if self.progress is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            from vfi_cli.ui import console

            self.progress = Progress(
                TextColumn("[bold]interpolating"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} frames"),
                TextColumn("{task.fields[fps]} fps"),
                TimeRemainingColumn(),
                TextColumn("[dim]{task.fields[rates]}"),
                console=console(stderr=True),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("run", total=e["total"], fps="-", rates="")
        r = e["rates"]
        rates = (
            f"decode {r['decode']:.0f}/s · model {r['model']:.0f}/s · encode {r['encode']:.0f}/s"
        )
        self.progress.update(self.task, completed=e["done"], fps=f"{e['fps']:.1f}", rates=rates)

    def _plain_progress(self, e: dict) -> None:
        """Not a terminal (a log file, a pipe, a batch job): a line every PLAIN_PROGRESS_SECONDS."""
        now = time.monotonic()
        if not e["done"] or (
            self.last_line is not None and now - self.last_line < PLAIN_PROGRESS_SECONDS
        ):
            return
        self.last_line = now
        pct = 100 * e["done"] / e["total"] if e["total"] else 0.0
        eta = e.get("eta")
        left = f", {int(eta) // 60}:{int(eta) % 60:02d} left" if eta is not None else ""
        sys.stderr.write(
            f"interpolating: {e['done']}/{e['total']} frames ({pct:.0f} %), {e['fps']:.1f} fps"
            f"{left}\n"
        )

    def close(self) -> None:
        self.last_line = None
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
