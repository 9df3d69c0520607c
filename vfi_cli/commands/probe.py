"""`vfi probe INPUT`: what `vfi interpolate` would do with INPUT, without writing anything."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import click

from vfi_cli.params import DEINTERLACE_OPTION, FRAME_RATE, RATIONAL, TILE


def render_plans(plans) -> None:
    """Several plans (engine.plan.Plan) as readable lines, a blank line between them."""
    for i, plan in enumerate(plans):
        if i:
            click.echo()
        render_plan(plan.to_dict())


def render_plan(plan: dict, echo=click.echo) -> None:
    """The plan (engine.plan.Plan.to_dict()) as readable lines (shared with --dry-run)."""

    def q(x):
        return x["exact"] if "/" not in x["exact"] else f"{x['exact']} ({x['value']:.6g})"

    w, h = plan["size"]
    rate_kind = "VFR, average" if plan["vfr"] else "CFR"
    if plan.get("pulldown"):
        rate_kind = "film (soft 2:3 pulldown: shown for 3 and 2 fields in turn, timed as film)"
    echo(f"input   {plan['input']} ({plan['input_kind']})")
    hdr10 = f", {plan['hdr10']}" if plan.get("hdr10") else ""
    size = f"{w}x{h}"
    if plan.get("sar"):  # anamorphic: say the shape it is shown at
        num, den = (int(v) for v in plan["sar"].split(":"))
        shown = Fraction(w * num, h * den)
        size += f" (SAR {plan['sar']}, shown {shown.numerator}:{shown.denominator})"
    echo(f"        {size} {plan['pix_fmt']} ({plan['bit_depth']}-bit), {plan['color']}{hdr10}")
    rot = f", rotation {plan['rotation']}°" if plan["rotation"] else ""
    rot += f", interlaced ({plan['interlaced']})" if plan.get("interlaced") else ""
    echo(
        f"        {plan['frames_in']} frames, {rate_kind} {q(plan['input_rate'])} fps, "
        f"{plan['input_duration']['value']:.3f} s{rot}"
    )
    if plan.get("telecined"):
        tele = plan["telecined"]
        echo(
            f"        inverse telecine: {tele['frames']} frames at {q(tele['rate'])} fps in "
            "(fieldmatch + decimate), the film frames above out"
        )
    elif plan.get("deinterlace"):
        echo("        deinterlace: bwdif, one progressive frame per frame (times kept)")
    if plan.get("duration"):
        echo(f"        --duration: only its first {plan['duration']['value']:g} s")
    echo(f"output  {plan['output']} ({plan['output_kind']})")
    slow = f", slow motion x{q(plan['slowmo'])}" if plan["slowmo"]["value"] != 1 else ""
    echo(
        f"        {plan['frames_out']} frames at {q(plan['output_rate'])} fps, "
        f"{plan['output_duration']['value']:.3f} s{slow}"
    )
    if plan["encode"]:
        echo(f"        encode {plan['encode']}")
    if plan.get("upright_turns"):
        echo(
            f"        upright: pixels turned {90 * plan['upright_turns']}° counterclockwise "
            "(the source's rotation; PNG and GIF have no rotation flag)"
        )
    if plan.get("output_timecode"):
        echo(
            f"        timecode {plan['timecode']} -> {plan['output_timecode']} (at the output rate)"
        )
    for line in plan["streams"]:
        echo(f"stream  {line}")
    tile = (
        "whole frames" if not plan["tile"] else f"{plan['tile']}px tiles x{plan['tiles_per_frame']}"
    )
    budget = plan["memory_budget_bytes"]
    budget_txt = f" of {budget / 2**30:.1f} GiB" if budget else ""
    echo(
        f"model   {plan['model'] or '(default)'} on {plan['device']}, {plan['precision']}, "
        f"flow scale {plan['scale']:g}, {tile}, est. peak {plan['memory_estimate_bytes'] / 2**30:.2f} "
        f"GiB{budget_txt}"
    )
    for wmsg in plan["warnings"]:
        echo(f"warning {wmsg}")


@click.command("probe")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output the plan is for.")
@click.option("--factor", type=RATIONAL, help="Frame-rate multiplier (2, 5/2).")
@click.option("--fps", type=FRAME_RATE, help="Output frame rate (60, 60000/1001, 59.94).")
@click.option("--slowmo", is_flag=True, help="Keep the input rate; duration x factor.")
@DEINTERLACE_OPTION
@click.option("--model", default=None, help="Registry name or weights file (default: registry).")
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", default="auto", show_default=True)
@click.option("--scale", default="auto", show_default=True)
@click.option("--tile", type=TILE, default="auto", show_default=True)
@click.option("--input-fps", type=FRAME_RATE, help="Rate of a frame directory (default 24).")
@click.option("-t", "--duration", type=RATIONAL, metavar="SECONDS", help="Only the first SECONDS.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
def command(inputs, output, factor, fps, slowmo, deinterlace, model, device, precision, scale,
            tile, input_fps, duration, as_json):  # fmt: skip
    """Show streams, timing, frames in/out, device, tiles and memory for INPUTS; write nothing.

    Several videos: one plan each (with --json, one JSON object per line)."""
    from engine.plan import Options, make_plans, model_config_for

    options = Options(
        factor=factor,
        fps=fps,
        slowmo=slowmo,
        deinterlace=deinterlace,
        model=model,
        device=device,
        precision=precision,
        scale=scale,
        tile=tile,
        input_fps=input_fps,
        duration=duration,
    )
    plans = make_plans(
        inputs, output, options, model_config=model_config_for(model), check_output=False
    )
    if as_json:  # several videos: one plan each
        for plan in plans:
            click.echo(json.dumps(plan.to_dict()))
    else:
        render_plans(plans)
