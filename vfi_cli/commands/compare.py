"""`vfi compare A.json B.json`: is B better than A on this set? Paired, per sample."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("compare")
@click.argument("result_a", type=click.Path(path_type=Path))
@click.argument("result_b", type=click.Path(path_type=Path))
@click.option(
    "--top", type=click.IntRange(min=0), default=5, show_default=True,
    help="How many of the samples that gained / lost most to list.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def command(result_a, result_b, top, as_json):
    """Compare two `vfi bench DATASET --json` results of the same set, sample by sample.

    Prints each metric's mean for A and B, the mean difference B - A with a 95 % paired bootstrap
    interval, how many samples got better / worse, and the samples that moved most in PSNR.
    """
    from train.compare import INTERVAL, compare, load_result

    a, b = load_result(result_a), load_result(result_b)
    res = compare(a, b, top=top)
    if as_json:
        import json

        click.echo(json.dumps(res, indent=2))
        return
    from rich.table import Table

    from vfi_cli.ui import console

    ma, mb = a["protocol"].get("model", result_a.name), b["protocol"].get("model", result_b.name)
    table = Table(title=f"{res['dataset']} ({res['n']} samples): A = {ma}, B = {mb}")
    for col in ("metric", "A", "B", "B - A", f"{INTERVAL:.0%} interval", "better", "worse", "same"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    digits = {"psnr": 3, "ssim": 5, "ie": 3}
    for m, r in res["metrics"].items():
        f = f"{{:.{digits[m]}f}}"
        table.add_row(
            m.upper(), f.format(r["a"]), f.format(r["b"]), f"{r['delta']:+.{digits[m]}f}",
            "[" + ",".join(f"{v:+.{digits[m]}f}" for v in r["interval"]) + "]",
            str(r["better"]), str(r["worse"]), str(r["same"]),
        )  # fmt: skip
    out = console()
    out.print(table)
    for label, rows in (("gained most (PSNR)", res["gains"]), ("lost most (PSNR)", res["losses"])):
        if rows:
            out.print(f"{label}: " + ", ".join(f"{n} {d:+.2f} dB" for n, d in rows))
