"""The bundle rule as code (train/bundle_rule.py) and its script (benchmarks/bundle_rule.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import VfiError
from train.bundle_rule import PAN, REST_SETS, RULES, judge, pan_speeds, pick

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"middlebury": 12, "ucf101-dev21": 21, "drift854": 50, "crowd960": 66}
PROTOCOL = {"rounding": "8bit", "ssim": "ssim_matlab", "precision": "fp32", "tta": False}


def _bench(name: str, psnr: np.ndarray) -> dict:
    items = [{"name": f"{k:03d}", "psnr": float(p)} for k, p in enumerate(psnr)]
    return {"dataset": name, "protocol": {**PROTOCOL, "model": "m"}, "items": items}


def _pan(psnr: dict[int, np.ndarray]) -> dict:
    items = [
        {"name": f"{k:05d}@{speed}px", "psnr": float(p)}
        for speed, values in psnr.items()
        for k, p in enumerate(values)
    ]
    prot = {"reference": "benchmarks/pan_gap.py", "pan_speeds": "8,16", "model": "m"}
    return {"dataset": "sequence drift854 under an added pan", "protocol": prot, "items": items}


def _model(
    seed: int, rest: dict[str, float] | None = None, pan: float | dict[int, float] = 0.0
) -> dict[str, dict]:
    """A model's results: a shared base per set (so two models pair), per-sample noise of
    0.05 dB drawn from ``seed``, plus ``rest[set]`` dB on every sample and ``pan`` dB on every
    window (or ``pan[speed]`` on that speed's)."""
    base = np.random.default_rng(0)
    noise = np.random.default_rng(seed)
    out = {}
    for s, n in SIZES.items():
        values = base.uniform(30, 40, n) + noise.normal(0, 0.05, n) + (rest or {}).get(s, 0.0)
        out[s] = _bench(s, values)
    speeds = {8: base.uniform(34, 37, 50), 16: base.uniform(32, 35, 50)}
    shift = pan if isinstance(pan, dict) else dict.fromkeys(speeds, pan)
    out[PAN] = _pan(
        {s: v + noise.normal(0, 0.05, 50) + shift.get(s, 0.0) for s, v in speeds.items()}
    )
    return out


OLD = _model(1)


def test_a_level_candidate_fails_the_mean_rule_on_noise_but_passes_the_paired_rule():
    # every set within the noise, two of them a little lower on average, the pans much better
    new = _model(2, {"middlebury": 0.03, "ucf101-dev21": -0.01, "drift854": -0.01}, pan=0.5)
    paired = judge("c", OLD, new, "paired")
    mean = judge("c", OLD, new, "mean")
    assert paired.passed, paired.failures
    lower = [s for s in REST_SETS if mean.rest[s]["b"] < mean.rest[s]["a"]]
    assert lower and not mean.passed
    assert all(any(f.startswith(s) for f in mean.failures) for s in lower)
    assert set(paired.pan) == {8.0, 16.0}
    assert all(b > a for a, b in paired.pan.values())


def test_a_set_worse_beyond_the_noise_fails_even_when_the_sum_is_positive():
    new = _model(2, {"middlebury": 0.6, "drift854": -0.1})
    v = judge("c", OLD, new, "paired")
    assert not v.passed
    assert len(v.failures) == 1 and v.failures[0].startswith("drift854")
    assert v.rest["drift854"]["interval"][1] < 0


def test_small_losses_on_every_set_fail_on_their_sum():
    new = _model(2, {s: -0.012 for s in REST_SETS})
    v = judge("c", OLD, new, "paired")
    assert not any(r["interval"][1] < 0 for r in v.rest.values())  # no single set fails...
    assert v.failures == [v.failures[0]] and v.failures[0].startswith("sum")  # ...their sum does


def test_a_lower_pan_score_fails_under_every_rule():
    new = _model(2, {s: 0.3 for s in REST_SETS}, pan=-0.2)
    for rule in RULES:
        v = judge("c", OLD, new, rule)
        whys = [f.split(":")[0] for f in v.failures]
        assert whys[:2] == ["pan 8 px", "pan 16 px"]
        assert whys[2:] == (
            ["sum of the differences under the pans -0.392 dB < 0"] * (rule == "paired_pan")
        )


def test_level_pans_fail_the_mean_condition_on_noise_but_pass_the_paired_one():
    # one speed a little lower on average (seed 2's noise alone is +0.007 dB there), within the
    # windows' noise; the other a little higher
    new = _model(2, {s: 0.05 for s in REST_SETS}, pan={8: 0.02, 16: -0.012})
    old_means = judge("c", OLD, new, "paired")
    assert [f.split(":")[0] for f in old_means.failures] == ["pan 16 px"]
    v = judge("c", OLD, new, "paired_pan")
    assert v.passed, v.failures
    assert v.pan_paired[16.0]["delta"] < 0 < v.pan_paired[16.0]["interval"][1]
    assert v.pan == old_means.pan  # the same means, judged differently


def test_pans_judged_paired_fail_on_one_clear_loss_or_on_their_sum():
    clear = judge("c", OLD, _model(2, pan={8: 0.5, 16: -0.1}), "paired_pan")
    assert [f.split(":")[0] for f in clear.failures] == ["pan 16 px"]  # the sum is positive
    assert clear.pan_paired[16.0]["interval"][1] < 0
    small = judge("c", OLD, _model(2, pan=-0.012), "paired_pan")
    assert not any(r["interval"][1] < 0 for r in small.pan_paired.values())  # no speed fails...
    total = sum(r["delta"] for r in small.pan_paired.values())
    assert total < 0 and small.failures == [
        f"sum of the differences under the pans {total:+.3f} dB < 0"
    ]


def test_missing_or_unpaired_results_are_one_clear_error():
    new = _model(2)
    with pytest.raises(VfiError, match="no result for crowd960"):
        judge("c", OLD, {k: v for k, v in new.items() if k != "crowd960"})
    with pytest.raises(VfiError, match="different sets"):
        judge("c", OLD, {**new, "drift854": new["crowd960"]})
    with pytest.raises(VfiError, match="unknown bundle rule"):
        judge("c", OLD, new, "median")
    with pytest.raises(VfiError, match="<triplet>@<speed>px"):
        pan_speeds(new["drift854"])


def test_pick_takes_the_later_of_two_on_a_tie_and_the_earlier_over_a_clear_loss():
    early = _model(2, {s: 0.1 for s in REST_SETS})
    level = _model(3, {s: 0.1 for s in REST_SETS})  # ucf101-dev21 within the noise of `early`
    worse = _model(4, {**{s: 0.1 for s in REST_SETS}, "ucf101-dev21": 0.02, "middlebury": 0.3})
    failing = _model(5, {"drift854": -0.2})
    verdicts, chosen = pick(OLD, [("early", early), ("level", level), ("failing", failing)])
    assert [v.passed for v in verdicts] == [True, True, False]
    assert chosen == "level"
    assert pick(OLD, [("early", early), ("worse", worse)])[1] == "early"
    assert pick(OLD, [("failing", failing)])[1] is None


def test_arms_at_one_step_tie_to_the_higher_mean_whatever_the_order_given():
    low = _model(2, {s: 0.1 for s in REST_SETS})
    high = _model(6, {**{s: 0.1 for s in REST_SETS}, "ucf101-dev21": 0.11})  # tie, higher mean
    early = _model(3, {s: 0.1 for s in REST_SETS})
    assert pick(OLD, [("high", high), ("low", low)])[1] == "low"  # without steps: order decides
    for given in ([("high", high), ("low", low)], [("low", low), ("high", high)]):
        assert pick(OLD, given, steps=[3500, 3500])[1] == "high"
    # steps also put an earlier checkpoint first, so the later one wins the tie
    assert pick(OLD, [("late", low), ("early", early)], steps=[3500, 1500])[1] == "late"
    with pytest.raises(VfiError, match="give one each"):
        pick(OLD, [("low", low)], steps=[1, 2])


def _write(folder: Path, model: dict[str, dict]) -> list[str]:
    folder.mkdir()
    for k, v in model.items():
        (folder / f"{k}.json").write_text(json.dumps(v))
    return [f"{k}={folder / f'{k}.json'}" for k in model]


def _script(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bundle_rule.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def test_script_names_the_checkpoint_to_bundle_or_keeps_the_old_one(tmp_path):
    old = _write(tmp_path / "old", OLD)
    good = _write(tmp_path / "good", _model(2, {s: 0.1 for s in REST_SETS}, pan=0.3))
    bad = _write(tmp_path / "bad", _model(3, {"drift854": -0.2}))
    run = _script("--old", *old, "--candidate", "bad", *bad, "--candidate", "good", *good)
    assert run.returncode == 0, run.stderr
    assert "bad: fails" in run.stdout and "good: passes" in run.stdout
    assert run.stdout.rstrip().endswith("bundle: good")
    run = _script("--old", *old, "--candidate", "bad", *bad)
    assert run.stdout.rstrip().endswith("bundle: keep the old one (no candidate passes)")


def test_script_orders_by_step_and_wants_it_for_every_candidate_or_none(tmp_path):
    old = _write(tmp_path / "old", OLD)
    low = _write(tmp_path / "low", _model(2, {s: 0.1 for s in REST_SETS}))
    high = _write(
        tmp_path / "high", _model(6, {**{s: 0.1 for s in REST_SETS}, "ucf101-dev21": 0.11})
    )
    run = _script("--old", *old, "--candidate", "high", *high, "step=3500",
                  "--candidate", "low", *low, "step=3500")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip().endswith("bundle: high")
    run = _script(
        "--old", *old, "--candidate", "high", *high, "step=3500", "--candidate", "low", *low
    )
    assert run.returncode != 0 and "every candidate or for none" in run.stderr
    assert run.stderr.strip().count("\n") == 0
    run = _script("--old", *old, "--candidate", "high", *high, "step=late")
    assert run.returncode != 0 and "whole number" in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("drift=x.json", "is not SET=FILE"),
        ("pan=missing.json", "does not exist"),
        ("step=3500", "candidates only"),
    ],
)
def test_script_refuses_bad_entries_in_one_line(tmp_path, entry, message):
    old = _write(tmp_path / "old", OLD)
    run = _script("--old", *old[:-1], entry, "--candidate", "c", *old)
    assert run.returncode != 0
    assert run.stderr.strip().count("\n") == 0 and message in run.stderr
    assert "Traceback" not in run.stderr


def test_script_wants_a_name_before_a_candidates_entries_in_one_line(tmp_path):
    old = _write(tmp_path / "old", OLD)
    run = _script("--old", *old, "--candidate", *old)
    assert run.returncode != 0 and "checkpoint's name" in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr
