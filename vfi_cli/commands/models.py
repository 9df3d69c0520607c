"""`vfi models`: the registered variants, their size and where their weights come from.

Parameter counts come from building each network on the CPU (measured: ~0.1 s each; the
``meta`` device would skip the allocation but costs ~2 s of one-time set-up in torch 2.13).
"""

from __future__ import annotations

import click


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def command(as_json):
    """List the model variants: parameters, backbone modes, default, weights."""
    rows = model_rows()
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=2))
        return
    _print_table(rows)


def model_rows() -> list[dict]:
    """One JSON-ready dict per variant of ``engine.registry.VARIANTS``, in registry order."""
    from engine import weights
    from engine.config import BACKBONE_MODES
    from engine.registry import VARIANTS

    rows = []
    for v in VARIANTS.values():
        w = v.weights
        if v.config is None:  # a baseline: no parameters, no backbone
            params, by_mode, modes = 0, {}, []
        else:
            modes = list(BACKBONE_MODES)
            by_mode = {m: count_params(v.config.replace(backbone_mode=m)) for m in modes}
            params = by_mode[v.config.backbone_mode]
        rows.append(
            {
                "name": v.name,
                "kind": v.kind,
                "description": v.description,
                "default": v.default,
                "params": params,
                "params_by_mode": by_mode,
                "backbone_mode": v.config.backbone_mode if v.config else None,
                "backbone_modes": modes,
                "weights": w.status_kind if w else "none",
                "weights_status": weights.entry_status(v.name),
                "weights_file": w.file if w else None,
                "weights_size": w.size if w else None,
                "licence": w.licence if w else None,
            }
        )
    return rows


def count_params(config) -> int:
    """Number of parameters of the network built from ``config``."""
    import torch

    from engine.loading import build_model

    with torch.no_grad():
        model = build_model(config)
    return sum(p.numel() for p in model.parameters())


def _print_table(rows: list[dict]) -> None:
    from rich.table import Table

    from vfi_cli.ui import console

    table = Table(title="vfi models", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("default", justify="center")
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("backbone modes", no_wrap=True)
    table.add_column("weights", no_wrap=True)
    table.add_column("description")
    for r in rows:
        modes = "\n".join(
            f"{m}{'*' if m == r['backbone_mode'] else ''} {_millions(n)}"
            for m, n in r["params_by_mode"].items()
        )
        table.add_row(
            r["name"],
            "yes" if r["default"] else "",
            _millions(r["params"]) if r["params"] else "0",
            modes or "-",
            r["weights_status"],
            r["description"],
        )
    console().print(table)
    console().print(
        "* the variant's own mode. weights: bundled | cached | missing (run `vfi "
        "download-weights NAME`) | none (not trained yet: pass --model PATH) | n/a (baseline)"
    )


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"
