"""Apply the bundle rule (docs/results.md, Protocols; train/bundle_rule.py) to scored checkpoints.

Each model is given as ``SET=FILE`` entries, one for each of the four dev sets at rest (``vfi
bench DATASET --json``) and one for drift854 under the added pans (``pan=FILE``, from
``benchmarks/pan_gap.py --speeds 8,16 --json``); candidates are given earliest checkpoint first,
each as a name followed by its entries:

    python benchmarks/bundle_rule.py \\
        --old middlebury=b-mb.json ucf101-dev21=b-ucf.json drift854=b-drift.json \\
              crowd960=b-crowd.json pan=b-pan.json \\
        --candidate s1500 middlebury=... ucf101-dev21=... drift854=... crowd960=... pan=... \\
        --candidate s3500 middlebury=... ...

With ``step=N`` among each candidate's entries (all or none), candidates may come in any order:
they are taken by step, and arms at the same step by their mean on ucf101-dev21, so a tie between
parallel arms goes to the higher mean (from the twenty-fifth round).

Prints, per candidate, the paired difference on each set at rest and under each pan speed and why
it fails (if it does), then the checkpoint to bundle or that the old bundle stays. The default,
``--rule paired_pan``, is the rule from the twenty-sixth round; ``--rule paired`` applies it as it
was in the twenty-fourth and twenty-fifth (pans by their means alone), ``--rule mean`` as it was
up to the twenty-third.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.bundle_rule import PAN, REST_SETS, RULES, pick
from train.compare import load_result

STEP = "step"  # a candidate's optional step=N entry


def parse_entries(label: str, entries: list[str]) -> dict[str, dict]:
    """``["middlebury=a.json", ...]`` -> ``{"middlebury": result, ...}``, each file loaded once."""
    known = (*REST_SETS, PAN)
    out: dict[str, dict] = {}
    for e in entries:
        key, sep, path = e.partition("=")
        if key == STEP:
            continue  # read by parse_step
        if not sep or key not in known or not path:
            raise ValueError(f"{label}: {e!r} is not SET=FILE with SET one of {', '.join(known)}")
        if key in out:
            raise ValueError(f"{label}: {key} is given twice")
        out[key] = load_result(path)
    return out


def parse_step(label: str, entries: list[str]) -> int | None:
    """The ``step=N`` entry of a candidate, or None if it has none."""
    values = [e.partition("=")[2] for e in entries if e.partition("=")[0] == STEP]
    if not values:
        return None
    if len(values) > 1 or not values[0].isdigit():
        raise ValueError(f"{label}: give one step=N with N a whole number of training steps")
    return int(values[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", nargs="+", required=True, metavar="SET=FILE", help="the bundle now")
    p.add_argument(
        "--candidate", nargs="+", action="append", required=True, metavar="NAME SET=FILE",
        help="a checkpoint's name, its results and optionally step=N; repeat, earliest first",
    )  # fmt: skip
    p.add_argument("--rule", choices=RULES, default="paired_pan", help="the rule's version")
    args = p.parse_args()
    if parse_step("--old", args.old) is not None:
        raise ValueError("--old is the bundle itself: give step=N to candidates only")
    old = parse_entries("--old", args.old)
    candidates, steps = [], []
    for name, *entries in args.candidate:
        if "=" in name:
            raise ValueError(f"--candidate starts with the checkpoint's name, got {name!r}")
        candidates.append((name, parse_entries(name, entries)))
        steps.append(parse_step(name, entries))
    if any(s is None for s in steps) and any(s is not None for s in steps):
        raise ValueError("give step=N for every candidate or for none")

    verdicts, chosen = pick(old, candidates, args.rule, None if None in steps else steps)
    print(f"bundle rule ({args.rule}): B - A against the old bundle, PSNR dB, 95 % paired interval")
    for v in verdicts:
        print(f"\n{v.name}: {'passes' if v.passed else 'fails'}")
        pans = {f"pan {speed:g} px": r for speed, r in v.pan_paired.items()}
        for label, r in {**v.rest, **pans}.items():
            lo, hi = r["interval"]
            print(
                f"  {label:13s} {r['a']:.3f} -> {r['b']:.3f}  {r['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            )
        for f in v.failures:
            print(f"  fails: {f}")
    print(f"\nbundle: {chosen}" if chosen else "\nbundle: keep the old one (no candidate passes)")


if __name__ == "__main__":
    from engine.errors import VfiError

    try:
        main()
    except (VfiError, OSError, ValueError) as e:  # a wrong path or file: one line, no traceback
        raise SystemExit(f"error: {e}") from None
