"""`vfi compare`: paired per-sample comparison of two `vfi bench --json` results."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.errors import VfiError
from train.compare import compare, load_result
from vfi_cli.main import cli

PROTOCOL = {"rounding": "8bit", "ssim": "ssim_matlab", "precision": "fp32", "tta": False}


def _result(psnr, model="a", dataset="ucf101", **protocol):
    items = [
        {"name": str(i), "psnr": p, "ssim": 0.9 + p / 1000, "ie": 40 - p}
        for i, p in enumerate(psnr)
    ]
    prot = {**PROTOCOL, "model": model, "device": "cpu", **protocol}
    return {"dataset": dataset, "protocol": prot, "summary": {"n": len(items)}, "items": items}


def test_identical_results_differ_by_nothing():
    a = _result([30.0, 31.0, 35.0])
    r = compare(a, _result([30.0, 31.0, 35.0], model="b"))
    psnr = r["metrics"]["psnr"]
    assert psnr["delta"] == 0 and psnr["interval"] == (0.0, 0.0)
    assert (psnr["better"], psnr["worse"], psnr["same"]) == (0, 0, 3)
    assert r["gains"] == [] and r["losses"] == []


def test_a_uniform_gain_is_outside_the_interval_of_zero():
    base = [30.0 + 0.37 * i for i in range(20)]
    r = compare(_result(base), _result([p + 0.1 for p in base]))
    psnr = r["metrics"]["psnr"]
    assert psnr["delta"] == pytest.approx(0.1)
    assert psnr["interval"][0] == pytest.approx(0.1) and psnr["better"] == 20
    ie = r["metrics"]["ie"]  # lower is better: IE fell by 0.1, so every sample counts as better
    assert ie["delta"] == pytest.approx(-0.1) and ie["better"] == 20 and ie["worse"] == 0


def test_one_sample_carrying_the_mean_is_visible():
    """+4.48 dB on one of 21 samples: +0.21 dB of mean, an interval reaching 0, one mover."""
    base = [30.0 + 0.5 * i for i in range(21)]
    new = list(base)
    new[8] += 4.48
    r = compare(_result(base), _result(new), top=3)
    psnr = r["metrics"]["psnr"]
    assert psnr["delta"] == pytest.approx(4.48 / 21)
    assert psnr["interval"][0] == pytest.approx(0.0) and psnr["interval"][1] > 0.4
    assert (psnr["better"], psnr["same"]) == (1, 20)
    assert r["gains"] == [("8", pytest.approx(4.48))] and r["losses"] == []


@pytest.mark.parametrize(
    "b, message",
    [
        (_result([30.0, 31.0], dataset="middlebury"), "different sets"),
        (_result([30.0, 31.0], precision="bf16"), "scored differently \\(precision: fp32 vs bf16"),
        (_result([30.0]), "different samples"),
    ],
)
def test_results_that_do_not_pair_are_refused(b, message):
    with pytest.raises(VfiError, match=message):
        compare(_result([30.0, 31.0]), b)


def test_load_result_refuses_what_is_not_a_bench_result(tmp_path):
    with pytest.raises(VfiError, match="does not exist"):
        load_result(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(VfiError, match="is not a JSON file"):
        load_result(tmp_path / "bad.json")
    (tmp_path / "time.json").write_text(json.dumps({"dataset": "time", "summary": {}}))
    with pytest.raises(VfiError, match="no per-sample scores"):
        load_result(tmp_path / "time.json")


def test_compare_command(tmp_path):
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(_result([30.0, 31.0, 32.0])))
    pb.write_text(json.dumps(_result([30.5, 31.0, 31.0], model="b")))
    ok = CliRunner().invoke(cli, ["compare", str(pa), str(pb), "--top", "1"])
    assert ok.exit_code == 0, ok.output
    assert "PSNR" in ok.stdout and "gained most (PSNR): 0 +0.50 dB" in ok.stdout
    assert "lost most (PSNR): 2 -1.00 dB" in ok.stdout
    js = CliRunner().invoke(cli, ["compare", str(pa), str(pb), "--json"])
    assert json.loads(js.stdout)["metrics"]["psnr"]["worse"] == 1
    before = pa.read_bytes()
    bad = CliRunner().invoke(cli, ["compare", str(pa), str(tmp_path / "missing.json")])
    assert bad.exit_code == 1
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "does not exist" in lines[0]
    assert pa.read_bytes() == before  # inputs untouched
