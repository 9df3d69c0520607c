"""Which checkpoint is bundled as ``vfi-s``: the rule of docs/results.md (Protocols) as code.

A candidate is judged against the bundle it would replace, from scores already on disk:

- at rest, the four dev sets (``REST_SETS``), one ``vfi bench DATASET --json`` file each;
- under an added camera pan, drift854 cut into panning windows (``benchmarks/pan_gap.py --json``,
  samples named ``<triplet>@<speed>px``), one file (``PAN``).

Two versions of the at-rest condition exist, because the rule changed between rounds:

- ``"mean"`` (eleventh to twenty-third rounds): the candidate's mean PSNR is at least the old
  bundle's on every set;
- ``"paired"`` (twenty-fourth and twenty-fifth rounds) and ``"paired_pan"`` (from the
  twenty-sixth): judged per set with ``vfi compare``'s paired
  bootstrap: no set may be worse with its whole 95 % interval below zero, and the sets' mean
  differences must sum to at least zero, so trading one set for another still fails and a chain of
  level files cannot drift down set by set.

Under the pans, two versions likewise:

- under ``"mean"`` and ``"paired"`` (up to the twenty-fifth round), the mean PSNR under each pan
  speed must be at least the old bundle's;
- under ``"paired_pan"`` (from the twenty-sixth round), each speed is judged paired as the sets at
  rest are: no speed worse with its whole interval below zero, and the speeds' mean differences
  summing to at least zero. In the twenty-fifth round four checkpoints of one run moved by -0.12
  to +0.11 dB under the 16-px pan within 1,300 steps, more than the differences the mean-only
  condition was deciding.

Among the
candidates that pass, the one kept is the best on ucf101-dev21 (``PICK_SET``), taking them in the
order given (earlier checkpoints first): a later one replaces the current pick unless it is worse
there with its whole interval below zero, so a tie goes to the later checkpoint. Checkpoints of
parallel arms at the same step have no such order (the twenty-fourth round): given each
candidate's training step, the walk takes them by step and, within a step, by their mean on
ucf101-dev21, lowest first, so a tie between arms goes to the higher mean (from the twenty-fifth
round). The rule's last clause (between two recipes, the simpler) is a judgement this module
leaves to the reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import VfiError
from train.compare import compare

REST_SETS = ("middlebury", "ucf101-dev21", "drift854", "crowd960")
PICK_SET = "ucf101-dev21"
PAN = "pan"
RULES = ("mean", "paired", "paired_pan")
PAIRED = ("paired", "paired_pan")  # the versions that judge the sets at rest paired
# parses benchmarks/pan_gap.py's window_name(); train/ may not import benchmarks/
_PAN_NAME = re.compile(r"^(?P<triplet>.+)@(?P<speed>\d+(\.\d+)?)px$")


@dataclass
class Verdict:
    """One candidate against the old bundle (PSNR dB throughout)."""

    name: str
    rest: dict[str, dict] = field(default_factory=dict)  # set -> {"a", "b", "delta", "interval"}
    pan_paired: dict[float, dict] = field(default_factory=dict)  # speed -> as in ``rest``
    failures: list[str] = field(default_factory=list)  # why it does not pass; empty if it does

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def pan(self) -> dict[float, tuple[float, float]]:
        """Speed -> (old, new) mean PSNR under that pan."""
        return {speed: (r["a"], r["b"]) for speed, r in self.pan_paired.items()}


def pan_speeds(result: dict) -> dict[float, dict]:
    """A ``pan_gap.py --json`` result split by pan speed: one result of the same set and protocol
    per speed, holding that speed's windows, so ``compare`` pairs each speed on its own."""
    by_speed: dict[float, list[dict]] = {}
    for item in result["items"]:
        m = _PAN_NAME.match(str(item.get("name")))
        if m is None:
            raise VfiError(
                f"sample {item.get('name')!r} is not named <triplet>@<speed>px: give the pan "
                "result written by `benchmarks/pan_gap.py --json`"
            )
        by_speed.setdefault(float(m["speed"]), []).append(item)
    return {s: {**result, "items": v} for s, v in sorted(by_speed.items())}


def _paired_failures(results: dict, label: str, sum_label: str) -> list[str]:
    """The paired conditions over ``results`` (key -> ``compare``'s PSNR record): no key worse
    with its whole interval below zero, and the mean differences summing to at least zero."""
    failures = []
    for key, r in results.items():
        lo, hi = r["interval"]
        if hi < 0:
            failures.append(
                f"{label.format(key)}: {r['delta']:+.3f} dB, interval [{lo:+.3f}, {hi:+.3f}] below 0"
            )
    total = sum(r["delta"] for r in results.values())
    if total < 0:
        failures.append(f"sum of the {sum_label} {total:+.3f} dB < 0")
    return failures


def _check_complete(label: str, results: dict[str, dict]) -> None:
    missing = [k for k in (*REST_SETS, PAN) if k not in results]
    if missing:
        raise VfiError(
            f"{label} has no result for {', '.join(missing)}: give one file for each of "
            f"{', '.join((*REST_SETS, PAN))}"
        )


def judge(
    name: str, old: dict[str, dict], new: dict[str, dict], rule: str = "paired_pan"
) -> Verdict:
    """Does candidate ``new`` pass against the bundle ``old``? Both map set name -> result dict."""
    if rule not in RULES:
        raise VfiError(f"unknown bundle rule {rule!r}: use one of {', '.join(RULES)}")
    _check_complete("the old bundle", old)
    _check_complete(f"candidate {name}", new)
    v = Verdict(name)
    for s in REST_SETS:
        r = compare(old[s], new[s])["metrics"]["psnr"]  # also checks set, protocol and samples
        v.rest[s] = r
        if rule == "mean" and r["b"] < r["a"]:
            v.failures.append(f"{s}: {r['b']:.3f} < {r['a']:.3f} dB")
    if rule in PAIRED:
        v.failures += _paired_failures(v.rest, "{}", "at-rest differences")
    compare(old[PAN], new[PAN])  # same windows and pans, or one clear error
    new_speeds = pan_speeds(new[PAN])
    for speed, old_speed in pan_speeds(old[PAN]).items():
        r = compare(old_speed, new_speeds[speed])["metrics"]["psnr"]
        v.pan_paired[speed] = r
        if rule != "paired_pan" and r["b"] < r["a"]:
            v.failures.append(f"pan {speed:g} px: {r['b']:.3f} < {r['a']:.3f} dB")
    if rule == "paired_pan":
        v.failures += _paired_failures(v.pan_paired, "pan {:g} px", "differences under the pans")
    return v


def pick(
    old: dict[str, dict],
    candidates: list[tuple[str, dict[str, dict]]],
    rule: str = "paired_pan",
    steps: list[int] | None = None,
) -> tuple[list[Verdict], str | None]:
    """Judge every candidate (earlier checkpoints first, or in any order with ``steps``, each
    candidate's training step); return the verdicts, in the order given, and the one to bundle,
    or None to keep the old bundle."""
    verdicts = [judge(name, old, new, rule) for name, new in candidates]
    order = list(range(len(candidates)))
    if steps is not None:
        if len(steps) != len(candidates):
            raise VfiError(f"{len(steps)} steps for {len(candidates)} candidates: give one each")
        # by step; arms at one step by their mean on PICK_SET (judge's "b"), so the higher wins a tie
        order.sort(key=lambda i: (steps[i], verdicts[i].rest[PICK_SET]["b"]))
    chosen = None
    for i in order:
        (name, new), v = candidates[i], verdicts[i]
        if not v.passed:
            continue
        if chosen is not None:
            r = compare(chosen[1][PICK_SET], new[PICK_SET])["metrics"]["psnr"]
            if r["interval"][1] < 0:
                continue  # worse on ucf101-dev21 beyond the noise: keep the earlier pick
        chosen = (name, new)
    return verdicts, None if chosen is None else chosen[0]
