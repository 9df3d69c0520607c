"""`vfi bench` and train.bench: every loader on a tiny fixture in its real layout, the protocols,
--json / --save-dir, video mode, the TimeTest on CPU, and exact scores checked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from engine.errors import VfiError
from train import bench
from train.data import benchmarks as B
from train.data.triplets import DVF_FILES, DVFTriplets, read_image
from train.data.vimeo90k import Vimeo90K
from vfi_cli.main import cli

H, W = 36, 44  # deliberately not a multiple of 16 or 32: padding is exercised


def _img(seed: int, h: int = H, w: int = W, even: bool = False) -> np.ndarray:
    """A smooth random (h, w, 3) uint8 image (even values only if ``even``)."""
    rng = np.random.default_rng(seed)
    small = rng.random((h // 4 + 2, w // 4 + 2, 3))
    big = np.kron(small, np.ones((4, 4, 1)))[:h, :w]
    out = np.round(big * 255).astype(np.uint8)
    return out & 0xFE if even else out


def _png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _dvf(root: Path, n: int = 3, exact_gt: bool = True) -> Path:
    """DVF triplets; with ``exact_gt`` the middle frame is exactly the mean of two even frames."""
    for i in range(n):
        a, b = _img(10 * i, even=True), _img(10 * i + 1, even=True)
        gt = ((a.astype(np.int32) + b) // 2).astype(np.uint8) if exact_gt else _img(10 * i + 2)
        _png(root / str(i + 1) / "frame_00.png", a)
        _png(root / str(i + 1) / "frame_01_gt.png", gt)
        _png(root / str(i + 1) / "frame_02.png", b)
    return root


def _blend():
    import engine

    return engine.load_model("blend")


def _cpu(**kw) -> bench.RunOptions:
    return bench.RunOptions(device="cpu", **kw)


# ----------------------------------------------------------------------------------------------
# Scores by hand


def test_blend_on_exact_means_is_perfect(tmp_path):
    r = bench.validate_triplets(_blend(), _dvf(tmp_path / "t"), _cpu())
    assert r.summary["n"] == 3
    assert r.summary["psnr"] == pytest.approx(100.0)  # the cap: identical images
    assert r.summary["ie"] == 0.0
    assert r.summary["ssim"] == pytest.approx(1.0)


def test_blend_scores_match_numpy(tmp_path):
    root = _dvf(tmp_path / "t", n=2, exact_gt=False)
    r = bench.validate_ucf101(_blend(), root, _cpu())
    for item in r.items:
        d = root / item["name"]
        a, gt, b = (
            np.asarray(Image.open(d / f), dtype=np.float64)
            for f in ("frame_00.png", "frame_01_gt.png", "frame_02.png")
        )
        pred = np.round((a / 255 + b / 255) / 2 * 255)  # the 8-bit prediction
        mse = np.mean((pred / 255 - gt / 255) ** 2)
        assert item["psnr"] == pytest.approx(-10 * math.log10(mse), abs=1e-6)
        # float32 frames k/255 carry ~1e-5 of noise per pixel on the 0..255 scale
        assert item["ie"] == pytest.approx(np.mean(np.abs(pred - gt)), abs=1e-4)
    assert r.summary["psnr"] == pytest.approx(np.mean([i["psnr"] for i in r.items]))


def test_float_protocol_does_not_round(tmp_path):
    # Vimeo90K scores the float prediction: blend of odd/even values lands on .5 levels
    root = tmp_path / "vimeo"
    for name in ("00001/0001", "00001/0002"):
        d = root / "sequences" / name
        a, b = _img(1), _img(2)
        _png(d / "im1.png", a), _png(d / "im2.png", a), _png(d / "im3.png", b)
    (root / "tri_testlist.txt").write_text("00001/0001\n00001/0002\n\n")
    (root / "tri_trainlist.txt").write_text("00001/0001\n")
    r = bench.validate_vimeo90k(_blend(), root, _cpu())
    a, b = _img(1).astype(np.float64) / 255, _img(2).astype(np.float64) / 255
    mse = np.mean(((a + b) / 2 - a) ** 2)
    assert r.protocol["rounding"] == "none"
    assert r.items[0]["psnr"] == pytest.approx(-10 * math.log10(mse), abs=1e-4)
    assert [i["name"] for i in r.items] == ["00001/0001", "00001/0002"]


# ----------------------------------------------------------------------------------------------
# Loaders, each in its real layout


def test_vimeo90k_dataset_and_errors(tmp_path):
    root = tmp_path / "vimeo_triplet"
    with pytest.raises(VfiError, match=r"toflow\.csail\.mit\.edu.*") as e:
        Vimeo90K(root, "train")
    assert "tri_trainlist.txt" in str(e.value)
    for name in ("00001/0001", "00002/0003"):
        for k, f in enumerate(("im1.png", "im2.png", "im3.png")):
            _png(root / "sequences" / name / f, _img(k))
    (root / "tri_trainlist.txt").write_text("00001/0001\n00002/0003\n")
    (root / "tri_testlist.txt").write_text("00002/0003\n")
    ds = Vimeo90K(root, "train")
    frames, name = ds[1]
    assert (len(ds), name, frames.shape, frames.dtype) == (
        2,
        "00002/0003",
        (3, 3, H, W),
        torch.uint8,
    )
    assert torch.equal(frames[1], read_image(root / "sequences/00002/0003/im2.png"))
    f32, _ = Vimeo90K(root, "test", dtype=torch.float32)[0]
    assert f32.dtype == torch.float32 and f32.max() <= 1
    (root / "sequences/00002/0003/im3.png").unlink()
    with pytest.raises(VfiError, match=r"im3\.png is missing"):
        Vimeo90K(root, "train")
    (root / "tri_testlist.txt").write_text("garbage line here\n")
    with pytest.raises(VfiError, match="bad line"):
        Vimeo90K(root, "test")


def test_dvf_triplets_order_and_malformed(tmp_path):
    root = _dvf(tmp_path / "d", n=11)
    ds = DVFTriplets(root)
    assert [n for _, n in (ds[0], ds[1], ds[10])] == ["1", "2", "11"]  # natural order
    (root / "5" / "frame_02.png").unlink()
    with pytest.raises(VfiError, match=r"malformed triplet .*5: missing frame_02.png"):
        DVFTriplets(root)
    with pytest.raises(VfiError, match="voxel-flow"):
        B.ucf101_samples(tmp_path / "nothing")


def test_middlebury_layout(tmp_path):
    for seq in ("Walking", "Beanbags"):
        _png(tmp_path / "other-data" / seq / "frame10.png", _img(1))
        _png(tmp_path / "other-data" / seq / "frame11.png", _img(2))
        _png(tmp_path / "other-gt-interp" / seq / "frame10i11.png", _img(3))
    r = bench.validate_middlebury(_blend(), tmp_path, _cpu())
    assert [i["name"] for i in r.items] == ["Beanbags", "Walking"]
    assert r.protocol["pad"] == 32 and r.protocol["rounding"] == "8bit"
    with pytest.raises(VfiError, match=r"other-gt-interp.*vision\.middlebury\.edu"):
        B.middlebury_samples(tmp_path / "other-data")


def test_snu_film_lists_and_path_prefix(tmp_path):
    # The official lists name frames as data/SNU-FILM/test/...; DIR may be any level of that path.
    seq = tmp_path / "test" / "GOPRO_test" / "GOPR0001"
    for k in range(3):
        _png(seq / f"{k:06d}.png", _img(k))
    line = " ".join(f"data/SNU-FILM/test/GOPRO_test/GOPR0001/{k:06d}.png" for k in range(3))
    (tmp_path / "test-hard.txt").write_text(line + "\n" + line + "\n")
    r = bench.validate_snu_film(_blend(), tmp_path, "hard", _cpu())
    assert r.summary["n"] == 2
    assert r.items[0]["name"] == "test/GOPRO_test/GOPR0001/000001"
    assert (r.protocol["pad"], r.protocol["scale"], r.protocol["rounding"]) == (32, 0.5, "none")
    assert r.protocol["split"] == "hard"
    with pytest.raises(VfiError, match=r"test-easy.txt.*myungsub"):
        B.snu_film_samples(tmp_path, "easy")


def test_xiph_both_protocols(tmp_path):
    # The real set is 8 sequences x frames 001..099 at 4096x2160; here 32x16 frames, target 16x8.
    size = (8, 16)
    for seq in B.XIPH_SEQUENCES:
        for i in range(1, 100):
            _png(tmp_path / f"{seq}-{i:03d}.png", _img(i % 5, h=16, w=32))
    samples = B.xiph_samples(tmp_path)
    assert len(samples) == 8 * 49 and samples[0].name == "BoxingPractice-002"
    for res in ("2k", "4k"):
        r = bench.validate_xiph(_blend(), tmp_path, res, _cpu(limit=3), size=size)
        assert r.summary["n"] == 3 and r.protocol["ssim"] == "ssim" and r.protocol["res"] == res
        assert r.protocol["pad"] == 16 and r.protocol["scale"] == 0.5
    # the 2K frame is the 2x2 mean rounded half up (OpenCV INTER_AREA on 8-bit images)
    u8 = torch.tensor([[[1, 2], [2, 2]]], dtype=torch.uint8).expand(3, 2, 2)
    assert B.area_downscale_uint8(u8, (1, 1)).flatten().tolist() == [2, 2, 2]  # 7/4 -> 2
    # the 4K frame is the centre crop
    x = torch.arange(3 * 6 * 8, dtype=torch.uint8).view(3, 6, 8)
    assert torch.equal(B.centre_crop(x, (2, 4)), x[:, 2:4, 2:6])
    (tmp_path / "Tango-050.png").unlink()
    with pytest.raises(VfiError, match=r"Tango-050.png is missing.*xiph\.org"):
        B.xiph_samples(tmp_path)


def _x4k(root: Path, clips=("Type1/TEST01", "Type2/TEST07")) -> Path:
    for c in clips:
        for i in range(33):
            _png(root / c / f"{i:04d}.png", _img(i, h=16, w=24))
    return root


def test_x4k_samples_direct_and_recursive(tmp_path):
    root = _x4k(tmp_path / "X-TEST")
    samples = B.x4k_samples(root)
    assert len(samples) == 14
    first = samples[:7]
    assert [s.t for s in first] == [k / 8 for k in range(1, 8)]
    assert [s.gt.name for s in first] == [f"{4 * k:04d}.png" for k in range(1, 8)]
    assert first[0].img0.name == "0000.png" and first[0].img1.name == "0032.png"
    assert first[0].name == "Type1/TEST01/0004"
    direct = bench.validate_x4k(_blend(), root, "4k", _cpu())
    recursive = bench.validate_x4k(_blend(), root, "4k", _cpu(), recursive=True)
    assert direct.items[0]["t"] == 0.125 and direct.protocol["mode"] == "direct"
    assert direct.protocol["scale"] == 0.25 and recursive.protocol["mode"] == "recursive"
    # Linear blending composes: bisection reaches the same frames as direct t (to float noise),
    # which checks that every bisected frame is scored against the right ground truth.
    for a, b in zip(direct.items, recursive.items):
        assert a["name"] == b["name"] and a["psnr"] == pytest.approx(b["psnr"], abs=0.02)
    r2k = bench.validate_x4k(_blend(), root, "2k", _cpu(limit=2), size=(8, 12))
    assert r2k.summary["n"] == 2 and r2k.protocol["scale"] == 0.5
    (root / "Type2/TEST07/0032.png").unlink()
    with pytest.raises(VfiError, match="has 32 frames, needs 33"):
        B.x4k_samples(root)


def test_sequence_folder(tmp_path):
    for i in range(6):
        _png(tmp_path / "seq" / f"{i:03d}.png", _img(i))
    r = bench.validate_sequence(_blend(), tmp_path / "seq", _cpu())
    assert [i["name"] for i in r.items] == ["001", "002", "003", "004"]
    with pytest.raises(VfiError, match="point --path at one sequence"):
        B.sequence_samples(tmp_path)


def test_video_mode_drops_every_other_frame(tmp_path):
    from tests.clips import make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=9, size=(64, 48))
    r = bench.validate_video(_blend(), clip, _cpu())
    assert [i["name"] for i in r.items] == [f"frame_{k:06d}" for k in (1, 3, 5, 7)]
    assert 10 < r.summary["psnr"] < 100
    assert bench.validate_video(_blend(), clip, _cpu(limit=2)).summary["n"] == 2
    with pytest.raises(VfiError, match="video not found"):
        bench.validate_video(_blend(), tmp_path / "none.mp4", _cpu())


# ----------------------------------------------------------------------------------------------
# Prediction: protocol padding and flip TTA


class _ShiftModel(torch.nn.Module):
    """Not flip-equivariant (img0 moved one pixel right), so TTA changes the prediction."""

    alignment = 1

    def forward(self, img0, img1, t, scale=1.0):
        return torch.roll(img0, 1, dims=-1)


def test_flip_tta_averages_with_the_flipped_prediction():
    from engine.interpolator import Interpolator

    x, y = torch.rand(1, 3, 10, 13), torch.rand(1, 3, 10, 13)
    pred = bench.Predictor(Interpolator(_ShiftModel(), device="cpu"), pad=8, tta=True)(x, y, 0.5)
    xp, pads = bench.centre_pad(x, 8)
    assert pads == (1, 2, 3, 3) and xp.shape[-2:] == (16, 16)
    plain = bench.unpad(torch.roll(xp, 1, dims=-1), pads)
    flipped = bench.unpad(torch.roll(xp.flip(-2, -1), 1, dims=-1).flip(-2, -1), pads)
    assert torch.allclose(pred["plain"], plain)
    assert torch.allclose(pred["tta"], (plain + flipped) / 2)


def test_tiny_model_from_a_weights_file(tmp_path, tiny_model):
    from engine.weights import save_weights_file
    from tests.conftest import tiny_config

    weights = save_weights_file(
        tiny_model.state_dict(), tiny_config(), tmp_path / "tiny.safetensors"
    )
    out = tmp_path / "r.json"
    data_dir = _dvf(tmp_path / "t", n=2)
    args = ["bench", "triplets", str(data_dir), "--model", str(weights), "--device", "cpu"]
    res = CliRunner().invoke(cli, [*args, "--tta", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["protocol"]["tta"] is True and set(data["summary"]["no_tta"]) == {
        "psnr",
        "ssim",
        "ie",
    }
    assert all("no_tta" in i for i in data["items"])
    assert "flip TTA" in res.output and "plain" in res.output


# ----------------------------------------------------------------------------------------------
# CLI: --json schema, --save-dir naming, errors, time


def test_cli_json_schema_and_save_dir(tmp_path):
    root = _dvf(tmp_path / "data", n=3, exact_gt=False)
    out, saved = tmp_path / "out" / "r.json", tmp_path / "preds"
    args = ["bench", "ucf101", "--path", str(root), "--model", "blend", "--device", "cpu"]
    res = CliRunner().invoke(
        cli, [*args, "--json", str(out), "--save-dir", str(saved), "--limit", "2"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert list(data) == ["dataset", "protocol", "summary", "items"]
    assert data["dataset"] == "ucf101"
    assert set(data["summary"]) == {"n", "psnr", "ssim", "ie"} and data["summary"]["n"] == 2
    assert [i["name"] for i in data["items"]] == ["1", "2"]
    assert set(data["items"][0]) == {"name", "psnr", "ssim", "ie"}
    for k in (
        "reference",
        "rounding",
        "ssim",
        "pad",
        "scale",
        "precision",
        "device",
        "model",
        "tta",
    ):
        assert k in data["protocol"]
    assert data["protocol"]["model"] == "blend" and data["protocol"]["precision"] == "fp32"
    assert sorted(p.name for p in saved.iterdir()) == ["1.png", "2.png"]
    a, b = (
        read_image(root / "1/frame_00.png").double(),
        read_image(root / "1/frame_02.png").double(),
    )
    assert torch.equal(
        read_image(saved / "1.png").double(), torch.round((a / 255 + b / 255) / 2 * 255)
    )
    assert "PSNR" in res.output and "protocol:" in res.output


def test_cli_errors_are_one_line(tmp_path):
    run = CliRunner().invoke
    res = run(cli, ["bench", "middlebury", "--path", str(tmp_path / "nope"), "--model", "blend"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "vision.middlebury.edu" in res.output and "other-gt-interp" in res.output
    res = run(cli, ["bench", "snu-film", "--path", str(tmp_path), "--model", "blend"])
    assert res.exit_code == 1 and "needs --split" in res.output
    res = run(cli, ["bench", "ucf101", "--path", str(tmp_path), "--res", "2k", "--model", "blend"])
    assert res.exit_code == 1 and "--res only applies to xiph, x4k" in res.output
    res = run(cli, ["bench", "ucf101", "--model", "blend"])
    assert res.exit_code == 1 and "needs --path" in res.output
    root = _dvf(tmp_path / "d", n=1)
    res = run(
        cli, ["bench", "triplets", str(root), "--model", "blend", "--save-dir", str(root / "x")]
    )
    assert res.exit_code == 1 and "inside the dataset" in res.output
    assert sorted(p.name for p in (root / "1").iterdir()) == list(DVF_FILES)  # input untouched


def test_cli_time_on_cpu(tmp_path):
    out = tmp_path / "t.json"
    args = ["bench", "time", "--model", "blend", "--resolution", "64x48", "--batch", "2"]
    res = CliRunner().invoke(
        cli, [*args, "--runs", "3", "--warmup", "1", "--device", "cpu", "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    s, p = data["summary"], data["protocol"]
    assert s["n"] == 3 and len(data["items"]) == 3 and s["params"] == 0
    assert s["min_ms"] <= s["median_ms"] and s["fps"] > 0 and s["peak_mem_mb"] > 0
    assert (p["resolution"], p["batch"], p["timer"]) == ("64x48", 2, "host clock (perf_counter)")
    assert "median ms" in res.output
    res = CliRunner().invoke(cli, ["bench", "time", "--model", "blend", "--resolution", "huge"])
    assert res.exit_code == 1 and "bad resolution" in res.output


def test_time_model_counts_parameters(tiny_model):
    from train.timetest import time_model

    r = time_model(tiny_model, resolution="40x24", device="cpu", warmup=0, runs=2)
    assert r.summary["params"] == sum(p.numel() for p in tiny_model.parameters()) > 0


def test_time_compile_goes_through_the_interpolator(tiny_model, monkeypatch):
    """`bench time --compile` times the Interpolator's compiled path (what `vfi interpolate
    --compile` runs: static shapes), not a compile of its own around it."""
    import engine.interpolator
    from train.timetest import time_model

    calls = []
    monkeypatch.setattr(engine.interpolator, "_cannot_compile", lambda device: None)
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(kw) or fn)
    r = time_model(tiny_model, resolution="40x24", device="cpu", compile=True, warmup=0, runs=1)
    assert r.protocol["compile"] and calls
    assert all(kw == {"dynamic": False} for kw in calls)


def test_time_registry_model_without_weights_uses_random_init(tmp_path):
    # vfi-b has no trained weights yet: `time` measures a random init of it
    out = tmp_path / "t.json"
    args = ["bench", "time", "--model", "vfi-b", "--resolution", "32x32", "--runs", "1"]
    args += ["--warmup", "0"]
    res = CliRunner().invoke(cli, [*args, "--device", "cpu", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["protocol"]["model"].endswith("(random init)") and data["summary"]["params"] > 0


@pytest.mark.gpu
def test_time_on_cuda_uses_events():
    from train.timetest import time_model

    r = time_model(_blend(), resolution="720p", device="cuda", warmup=2, runs=5)
    assert r.protocol["timer"] == "cuda events" and r.summary["median_ms"] > 0
    assert r.protocol["peak_memory"] == "cuda max allocated" and r.summary["peak_mem_mb"] > 0


@pytest.mark.gpu
def test_bench_on_cuda_matches_cpu(tmp_path):
    root = _dvf(tmp_path / "t", n=2, exact_gt=False)
    cpu = bench.validate_triplets(_blend(), root, _cpu())
    gpu = bench.validate_triplets(_blend(), root, bench.RunOptions(device="cuda"))
    for a, b in zip(cpu.items, gpu.items):
        assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-4)
        assert a["ssim"] == pytest.approx(b["ssim"], abs=1e-6)
