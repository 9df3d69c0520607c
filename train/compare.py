"""Paired comparison of two ``vfi bench --json`` results on the same samples (``vfi compare``).

A mean over 12-66 samples moves by a few hundredths of a dB between two checkpoints of one run,
and a single sample can carry a whole difference (docs/results.md, eighth round: +4.5 dB on one
of 21 triplets is +0.21 dB of the set's mean). So besides the two means this reports, per metric,
the per-sample differences B - A: how many samples got better or worse, a paired bootstrap
interval of the mean difference, and the samples that moved most.

Both results must come from the same set, with the same scoring protocol (rounding, SSIM, padding,
flow scale, precision, TTA...) and the same samples; the model and the device may differ. PSNR and
SSIM are better higher, IE (interpolation error) lower.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.errors import VfiError

METRICS = {"psnr": 1.0, "ssim": 1.0, "ie": -1.0}  # metric -> sign of "better"
TIE = {"psnr": 0.005, "ssim": 5e-5, "ie": 0.005}  # |B - A| below this counts as unchanged
PROTOCOL_FREE = ("model", "device", "limit")  # may differ between A and B (limit: see items)
BOOTSTRAP_RESAMPLES = 10_000
INTERVAL = 0.95


def load_result(path: str | Path) -> dict:
    """A ``vfi bench --json`` file as a dict; anything else is one clear error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise VfiError(
            f"{path} does not exist: give a file written by `vfi bench --json`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VfiError(f"{path} is not a JSON file ({e}): give `vfi bench --json` output") from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise VfiError(
            f"{path} has no per-sample scores: give a file written by `vfi bench DATASET --json` "
            "(not `vfi bench time`)"
        )
    return data


def compare(a: dict, b: dict, *, top: int = 5, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0):
    """Per-metric summary of B - A over the samples both results share (see the module docstring).

    Returns ``{"dataset", "n", "metrics": {m: {"a", "b", "delta", "interval", "better", "worse",
    "same"}}, "gains": [(name, delta_psnr)...], "losses": [...]}``; "better"/"worse" count samples
    where B is better/worse than A by more than ``TIE[m]``.
    """
    if a.get("dataset") != b.get("dataset"):
        raise VfiError(
            f"the results are of different sets ({a.get('dataset')} vs {b.get('dataset')}): "
            "compare two runs of one set"
        )
    pa, pb = a.get("protocol") or {}, b.get("protocol") or {}
    differ = sorted(
        k for k in set(pa) | set(pb) if k not in PROTOCOL_FREE and pa.get(k) != pb.get(k)
    )
    if differ:
        k = differ[0]
        raise VfiError(
            f"the results were scored differently ({k}: {pa.get(k)} vs {pb.get(k)}): rerun one "
            "of them with the other's options"
        )
    items_a = {str(i.get("name")): i for i in a["items"]}
    items_b = {str(i.get("name")): i for i in b["items"]}
    if set(items_a) != set(items_b):
        only = sorted(set(items_a) ^ set(items_b))
        raise VfiError(
            f"the results score different samples ({len(only)} in only one, e.g. {only[0]!r}): "
            "compare runs without --limit, or with the same one"
        )
    names = sorted(items_a)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(names), size=(resamples, len(names)))  # shared by all metrics
    lo, hi = 100 * (1 - INTERVAL) / 2, 100 * (1 + INTERVAL) / 2
    out = {"dataset": a.get("dataset"), "n": len(names), "metrics": {}}
    deltas_psnr = None
    for m, sign in METRICS.items():
        try:
            va = np.array([float(items_a[n][m]) for n in names])
            vb = np.array([float(items_b[n][m]) for n in names])
        except (KeyError, TypeError, ValueError):
            continue  # a metric that one of the sets does not report
        d = vb - va  # (n,)
        boot = d[picks].mean(axis=1)  # (resamples,) bootstrap means of the paired differences
        out["metrics"][m] = {
            "a": float(va.mean()),
            "b": float(vb.mean()),
            "delta": float(d.mean()),
            "interval": (float(np.percentile(boot, lo)), float(np.percentile(boot, hi))),
            "better": int((sign * d > TIE[m]).sum()),
            "worse": int((sign * d < -TIE[m]).sum()),
            "same": int((np.abs(d) <= TIE[m]).sum()),
        }
        if m == "psnr":
            deltas_psnr = d
    if deltas_psnr is None:
        raise VfiError(
            "the results have no PSNR per sample: give `vfi bench DATASET --json` output"
        )
    order = np.argsort(deltas_psnr)
    out["gains"] = [
        (names[i], float(deltas_psnr[i])) for i in order[::-1][:top] if deltas_psnr[i] > 0
    ]
    out["losses"] = [(names[i], float(deltas_psnr[i])) for i in order[:top] if deltas_psnr[i] < 0]
    return out
