"""The training loop end to end on CPU with the tiny model: dry runs of the three phases, export,
overfitting, resuming (in process and after a kill), checkpoint errors, and two-process DDP."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from test_train_helpers import make_dvf, make_vimeo, make_x4k, tiny_model_json

from engine.errors import VfiError
from train import checkpoint
from train.config import make_config
from train.loop import train

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_TAGS = {"loss/loss_total", "loss/loss_lap", "loss/loss_ter", "psnr", "ssim", "lr"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    return {
        "vimeo": make_vimeo(root / "vimeo_triplet", n_train=6, n_test=2),
        "x4k": make_x4k(root / "X4K1000FPS", clips=2, frames=5, h=64, w=64),
        "dvf": make_dvf(root / "dvf", n=2),
    }


@pytest.fixture(autouse=True)
def no_vgg(tmp_path, monkeypatch):
    # A VGG19 file in the developer's cache must not change these runs (the term stays off).
    monkeypatch.setenv("VFI_CACHE", str(tmp_path / "cache"))


def _cfg(phase, data, workdir, **kw):
    base = dict(
        data_path=str(data["vimeo"]), crop=32, x4k_crop=64, batch_size=2, device="cpu",
        num_workers=0, workdir=str(workdir), max_iters_per_epoch=2, max_val=2,
    )  # fmt: skip
    base.update(kw)
    return make_config(phase, **base)


def _scalar_tags(log_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_dry_run_every_phase_then_export(data, tmp_path):
    from engine.loading import load_model
    from train.export import export

    s1 = train(_cfg(1, data, tmp_path, dry_run=True, exp_name="p1"), model_config=tiny_config())
    root = tmp_path / "dry_run"
    assert s1["step"] == 4 and s1["best_psnr"] > 10
    for name in ("p1.pkl", "p1_best.pkl", "p1_optim.pkl"):
        assert (root / "ckpt" / name).is_file()
    text = (root / "log" / "train_p1.log").read_text()
    assert "checkpoint saved and resumed at step 2" in text and "loss_vgg: disabled" in text
    assert "step 2: loss_lap" in text and "loss_total" in text  # losses reach the text log too
    assert _scalar_tags(root / "log" / "p1") == EXPECTED_TAGS  # VGG off: no loss/loss_vgg
    assert not (tmp_path / "ckpt").exists()  # a dry run never touches the real experiments

    # Phase 2: architecture from p1, feature warping added; backbone frozen for the whole run.
    train(_cfg(2, data, tmp_path, dry_run=True, exp_name="p2", resume="p1", freeze_backbone=2))
    p1 = checkpoint.read(root / "ckpt" / "p1_best.pkl")
    p2 = checkpoint.read(root / "ckpt" / "p2_best.pkl")
    assert p2["config"]["feature_warp"] and not p1["config"]["feature_warp"]
    assert "zero-initialised modules: feature_warp" in (root / "log" / "train_p2.log").read_text()
    for k, v in p1["model"].items():
        if k.startswith(("encoder.", "backbone.")):
            assert torch.equal(v, p2["model"][k]), k  # frozen
    assert p2["model"]["feature_warp.fuse.weight"].abs().sum() > 0  # the new module trained

    # Phase 3: X4K mixed in, texture path on, curriculum.
    s3 = train(
        _cfg(3, data, tmp_path, dry_run=True, exp_name="p3", resume="p2", x4k_path=str(data["x4k"]))
    )
    assert s3["step"] == 4
    assert "X4K half-gap <= 2" in (root / "log" / "train_p3.log").read_text()

    dest = export("p3", workdir=root, out=tmp_path / "out")
    assert dest == tmp_path / "out" / "p3.safetensors"
    meta = json.loads(dest.with_suffix(".json").read_text())
    assert meta["model"]["texture_path"] and meta["train"]["phase"] == 3
    model = load_model(dest)
    best = checkpoint.read(root / "ckpt" / "p3_best.pkl")["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, best[k])
    with pytest.raises(VfiError, match="already exists"):
        export("p3", workdir=root, out=tmp_path / "out")
    with pytest.raises(VfiError, match="no checkpoint"):
        export("nope", workdir=root)


def test_flow_corr_switches_on_from_a_checkpoint_without_it_and_w_moving_logs(data, tmp_path):
    train(_cfg(1, data, tmp_path, dry_run=True, exp_name="base"), model_config=tiny_config())
    root = tmp_path / "dry_run"
    train(
        _cfg(
            1, data, tmp_path, dry_run=True, exp_name="corr", resume="base", flow_corr=True,
            w_moving=1.0,
        )
    )  # fmt: skip
    assert _scalar_tags(root / "log" / "corr") == EXPECTED_TAGS | {"loss/loss_moving"}
    corr = checkpoint.read(root / "ckpt" / "corr_best.pkl")
    assert corr["config"]["flow_corr"]
    assert "zero-initialised modules: flow_corr" in (root / "log" / "train_corr.log").read_text()
    assert corr["model"]["flow_corr.1.proj.weight"].abs().sum() > 0  # the new module trained
    # left out, the flag keeps the architecture of the checkpoint it starts from
    train(_cfg(1, data, tmp_path, dry_run=True, exp_name="more", resume="corr"))
    assert checkpoint.read(root / "ckpt" / "more_best.pkl")["config"]["flow_corr"]
    with pytest.raises(VfiError, match="flow_corr module but this phase turns it off"):
        train(_cfg(1, data, tmp_path, dry_run=True, exp_name="off", resume="corr", flow_corr=False))


def test_moving_halo_reaches_the_loss(data, tmp_path, monkeypatch):
    from train import loop as loop_module
    from train.losses import loss_total

    seen = []

    def spy(*args, **kwargs):
        seen.append((kwargs.get("w_moving"), kwargs.get("moving_halo")))
        return loss_total(*args, **kwargs)

    monkeypatch.setattr(loop_module, "loss_total", spy)
    cfg = _cfg(1, data, tmp_path, dry_run=True, exp_name="halo", w_moving=1.0, moving_halo=4)
    train(cfg, model_config=tiny_config())
    assert seen and set(seen) == {(1.0, 4)}


def test_tiny_overfit_loss_falls(tmp_path):
    # One triplet, crop = frame, augmentation off: the same batch every step, as overfitting needs.
    one = make_vimeo(tmp_path / "one", n_train=1, n_test=1, h=64, w=64)
    cfg = make_config(
        1, exp_name="fit", data_path=str(one), crop=64, batch_size=1, epochs=30, augment=False,
        lr=1e-3, warmup_steps=0, log_interval=5, eval_interval=30, device="cpu", num_workers=0,
        workdir=str(tmp_path),
    )  # fmt: skip
    s = train(cfg, model_config=tiny_config())
    losses = [loss for _, loss in s["history"]]
    assert len(losses) == 6
    assert losses[-1] < 0.5 * losses[0], losses
    assert s["best_psnr"] > 25


def test_a_non_finite_loss_stops_the_run_before_any_checkpoint(data, tmp_path, monkeypatch):
    from train import loop

    real = loop.loss_total

    def nan_loss(out, gt, **kw):
        loss, parts = real(out, gt, **kw)
        loss = loss * float("nan")
        return loss, {**parts, "loss_total": loss.detach()}

    monkeypatch.setattr(loop, "loss_total", nan_loss)
    # The check is read once per log interval (no per-batch sync) and before every save.
    cfg = _cfg(1, data, tmp_path, exp_name="nan", epochs=1, save_interval=1, log_interval=1)
    with pytest.raises(VfiError, match="the loss became nan"):
        train(cfg, model_config=tiny_config())
    assert not (tmp_path / "ckpt" / "nan.pkl").exists()


def test_resume_continues_step_and_optimizer(data, tmp_path):
    cfg = _cfg(1, data, tmp_path, exp_name="r", epochs=1, save_interval=1, ema=0.9)
    assert train(cfg, model_config=tiny_config())["step"] == 2
    opt1 = checkpoint.read(tmp_path / "ckpt" / "r_optim.pkl")
    s = train(cfg.replace(epochs=2), model_config=tiny_config())
    assert s["step"] == 4
    text = (tmp_path / "log" / "train_r.log").read_text()
    assert "resuming r from" in text and "step 2" in text
    # --epochs 2 doubled the schedule: the resume says so, with the lr before and after
    assert "the learning-rate schedule now spans 4 steps (2 epochs of 2 batches), not 2" in text
    opt2 = checkpoint.read(tmp_path / "ckpt" / "r_optim.pkl")
    steps = {float(st["step"]) for st in opt2["optimizer"]["state"].values()}
    assert steps == {4.0}  # Adam's own counters continued (a fresh optimizer would say 2)
    assert opt2["train_state"]["step"] == 4 and opt1["ema_file"] and "ema" not in opt1
    assert opt2["rng"]["torch"].dtype == torch.uint8
    from engine.loading import load_model

    latest = load_model(tmp_path / "ckpt" / "r.pkl")  # the engine reads training checkpoints
    assert latest.config == tiny_config()
    # The EMA weights at the latest step are a weights file of their own, at the same step.
    ema_record = checkpoint.read(tmp_path / "ckpt" / "r_ema.pkl")
    assert ema_record["train"]["step"] == 4 and ema_record["train"]["ema_weights"]
    # The best weights of an EMA run are the EMA's, and their record says so (exports carry it).
    assert checkpoint.read(tmp_path / "ckpt" / "r_best.pkl")["train"]["ema_weights"]
    ema_model = load_model(tmp_path / "ckpt" / "r_ema.pkl")
    differs = [
        not torch.equal(a, b)
        for a, b in zip(ema_model.state_dict().values(), latest.state_dict().values())
    ]
    assert any(differs)  # an average, not a copy of the latest weights


def test_resume_needs_the_ema_file_and_reads_older_layouts(data, tmp_path):
    """A missing or out-of-step <exp>_ema.pkl is one clear error; an optimizer file that still
    holds the EMA itself (written before the EMA file existed) resumes as before."""
    cfg = _cfg(1, data, tmp_path, exp_name="e", epochs=1, save_interval=1, ema=0.9)
    train(cfg, model_config=tiny_config())
    ckpt = tmp_path / "ckpt"
    ema_file = ckpt / "e_ema.pkl"
    # The evaluated weights (the EMA's) carry the validation of their step; the raw ones do not.
    best, ema_meta = (
        checkpoint.read(ckpt / "e_best.pkl")["train"],
        checkpoint.read(ema_file)["train"],
    )
    assert ema_meta["step"] == best["step"] and ema_meta["psnr"] == best["psnr"]
    assert "psnr" not in checkpoint.read(ckpt / "e.pkl")["train"]
    saved = ema_file.read_bytes()
    ema_file.unlink()
    with pytest.raises(VfiError, match=r"e_ema\.pkl is missing"):
        train(cfg.replace(epochs=2), model_config=tiny_config())
    record = torch.load(io.BytesIO(saved), weights_only=True)
    record["train"]["step"] = 1
    torch.save(record, ema_file)
    with pytest.raises(VfiError, match="disagree"):
        train(cfg.replace(epochs=2), model_config=tiny_config())
    # The older layout: the EMA inside <exp>_optim.pkl, no EMA file.
    record["train"]["step"] = 2
    optim = checkpoint.read(ckpt / "e_optim.pkl")
    optim["ema"], optim["ema_file"] = record["model"], False
    torch.save(optim, ckpt / "e_optim.pkl")
    ema_file.unlink()
    assert train(cfg.replace(epochs=2), model_config=tiny_config())["step"] == 4
    assert ema_file.is_file()  # written in the new layout from then on
    # --ema switched off: the EMA file, now stale, goes with the next save
    assert train(cfg.replace(epochs=3, ema=0.0), model_config=tiny_config())["step"] == 6
    assert not ema_file.exists()
    assert "psnr" in checkpoint.read(ckpt / "e.pkl")["train"]  # without EMA the raw ones were


def test_compact_state_halves_the_optimizer_file_and_resumes(data, tmp_path):
    full = _cfg(1, data, tmp_path / "f", exp_name="c", epochs=1, save_interval=1, ema=0.9)
    small = full.replace(workdir=str(tmp_path / "s"), compact_state=True)
    for cfg in (full, small):
        assert train(cfg, model_config=tiny_config())["step"] == 2
    opt_f = checkpoint.read(tmp_path / "f" / "ckpt" / "c_optim.pkl")["optimizer"]["state"]
    opt_s = checkpoint.read(tmp_path / "s" / "ckpt" / "c_optim.pkl")["optimizer"]["state"]
    for k, st in opt_s.items():
        assert st["exp_avg"].dtype == st["exp_avg_sq"].dtype == torch.bfloat16
        assert st["step"].dtype == opt_f[k]["step"].dtype  # counters exact
        assert torch.allclose(st["exp_avg_sq"].float(), opt_f[k]["exp_avg_sq"], rtol=1e-2)
    ema_f = checkpoint.read(tmp_path / "f" / "ckpt" / "c_ema.pkl")["model"]
    ema_s = checkpoint.read(tmp_path / "s" / "ckpt" / "c_ema.pkl")["model"]
    for k, v in ema_s.items():  # the EMA weights in fp16, within fp16's rounding of the fp32 ones
        if ema_f[k].is_floating_point():
            assert v.dtype == torch.float16
            torch.testing.assert_close(v.float(), ema_f[k], rtol=1e-3, atol=1e-4)
    size = {d: (tmp_path / d / "ckpt" / "c_optim.pkl").stat().st_size for d in "fs"}
    assert size["s"] < 0.75 * size["f"]
    resumed = train(small.replace(epochs=2), model_config=tiny_config())
    assert resumed["step"] == 4  # loads the bf16 moments and fp16 EMA back as fp32


def test_max_minutes_stops_mid_epoch_and_the_same_command_continues(data, tmp_path):
    cfg = _cfg(1, data, tmp_path, exp_name="m", epochs=1, max_minutes=1e-9)
    first = train(cfg, model_config=tiny_config())
    assert first["step"] == 1  # stopped after the first optimizer step
    text = (tmp_path / "log" / "train_m.log").read_text()
    assert "stopped after --max_minutes" in text and "PSNR" in text
    assert (tmp_path / "ckpt" / "m_best.pkl").is_file()  # evaluated before stopping
    second = train(cfg.replace(max_minutes=0.0), model_config=tiny_config())
    assert second["step"] == 2  # the rest of the epoch, not a fresh start
    assert "schedule now spans" not in (tmp_path / "log" / "train_m.log").read_text()


def test_max_minutes_counts_from_the_command_start_data_loading_included(
    data, tmp_path, monkeypatch
):
    """A caller's wall-clock limit covers the whole command: minutes spent decoding the corpus
    count, so a run whose data took longer than the budget stops after its first step."""
    import types

    import train.loop as loop

    clock = [0.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    real_build = loop.build_train_data

    def slow_build(*args, **kwargs):
        clock[0] += 90.0  # the data took 1.5 minutes; the training steps take no time at all
        return real_build(*args, **kwargs)

    monkeypatch.setattr(loop, "build_train_data", slow_build)
    cfg = _cfg(1, data, tmp_path, exp_name="w", epochs=1, max_minutes=1.0)
    assert train(cfg, model_config=tiny_config())["step"] == 1
    assert "stopped after --max_minutes" in (tmp_path / "log" / "train_w.log").read_text()


def test_max_minutes_at_an_epochs_last_batch_stops_at_the_epoch_end(data, tmp_path, monkeypatch):
    """Out of time exactly on an epoch's last batch: the epoch is closed (validated, saved as the
    next epoch's start), so the next call does not log an empty epoch and validate again."""
    import train.loop as loop

    monkeypatch.setattr(loop, "time_is_up", lambda d, elapsed, minutes, step, every: step == 2)
    cfg = _cfg(1, data, tmp_path, exp_name="e", epochs=2, eval_interval=2, max_minutes=5.0)
    first = train(cfg, model_config=tiny_config())  # 2 batches per epoch: stops after epoch 1
    assert (first["step"], first["epoch"]) == (2, 1)
    log = tmp_path / "log" / "train_e.log"
    text = log.read_text()
    assert "epoch 1: 2 batches" in text and "(epoch 2, batch 0)" in text and "PSNR" in text
    second = train(cfg.replace(max_minutes=0.0), model_config=tiny_config())
    assert (second["step"], second["epoch"]) == (4, 2)
    resumed = log.read_text()[len(text) :]
    # the position as the stop line gave it (epochs counted from 1), and no empty epoch 1
    assert "epoch 2, batch 0, step 2" in resumed and " 0 batches" not in resumed
    assert "epoch 1/2" not in resumed and "epoch 1:" not in resumed


def test_killed_run_resumes_with_same_step_and_optimizer(data, tmp_path):
    vimeo = make_vimeo(tmp_path / "v8", n_train=8, n_test=1)
    model = tiny_model_json(tmp_path / "tiny.json")
    cmd = [
        sys.executable, "-m", "vfi_cli", "train", "--phase", "1", "--data_path", str(vimeo),
        "--exp_name", "k", "--model", str(model), "--crop", "32", "--batch_size", "1",
        "--epochs", "1", "--save_interval", "1", "--num_workers", "0", "--device", "cpu",
        "--workdir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VFI_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    optim = tmp_path / "ckpt" / "k_optim.pkl"
    deadline = time.time() + 120
    saved = None
    while time.time() < deadline and proc.poll() is None:
        if optim.is_file():
            saved = checkpoint.read(optim)
            if saved["train_state"]["step"] >= 2:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert saved is not None, proc.stderr.read().decode()[-2000:]
    saved = checkpoint.read(optim)  # what the killed run left (atomic: always complete)
    s0 = saved["train_state"]["step"]
    assert 2 <= s0 < 8, "the run finished before it could be killed"

    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"step {s0}" in out.stderr and "resuming k from" in out.stderr
    final = checkpoint.read(optim)
    # Mid-epoch resume: the 8 batches of the epoch were each trained once in total.
    assert final["train_state"]["step"] == 8 and final["train_state"]["epoch"] == 1
    steps = {float(st["step"]) for st in final["optimizer"]["state"].values()}
    assert steps == {8.0}
    assert (tmp_path / "ckpt" / "k_best.pkl").is_file()


def test_corrupt_and_incompatible_checkpoints_are_refused(data, tmp_path):
    cfg = _cfg(1, data, tmp_path, exp_name="c")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in ("c.pkl", "c_optim.pkl"):
        (ckpt / name).write_bytes(b"garbage, not a zip")
    with pytest.raises(VfiError, match="is corrupt"):
        train(cfg, model_config=tiny_config())
    assert (ckpt / "c.pkl").read_bytes() == b"garbage, not a zip"  # nothing overwritten

    # A checkpoint of another architecture under the same experiment name.
    from engine.loading import build_model

    other = tiny_config(backbone_mode="mamba2_only")
    paths = checkpoint.paths_for(ckpt, "i")
    meta = {"step": 0}
    state = build_model(other).state_dict()
    checkpoint.save_latest(paths, state, other, meta, {"train_state": {"step": 0}, "optimizer": {}})
    before = paths.latest.read_bytes()
    with pytest.raises(VfiError, match=r"another model .*backbone_mode"):
        train(cfg.replace(exp_name="i"), model_config=tiny_config())
    assert paths.latest.read_bytes() == before
    # ... and as the start of a later phase (--resume): refused too.
    checkpoint.save_best(paths, state, other, meta)
    cfg2 = _cfg(
        2, data, tmp_path, exp_name="j", resume="i", model=str(tiny_model_json(tmp_path / "t.json"))
    )
    with pytest.raises(VfiError, match="another architecture"):
        train(cfg2)
    assert not checkpoint.paths_for(ckpt, "j").latest.exists()
    # Refused without running anything: a checkpoint that needs arbitrary pickled objects.
    torch.save({"format": "vfi-train/1", "model": {}, "x": Path("x")}, ckpt / "evil.pkl")
    with pytest.raises(VfiError, match="refusing checkpoint"):
        checkpoint.read(ckpt / "evil.pkl")
    # A truncated archive.
    (ckpt / "cut.pkl").write_bytes(paths.latest.read_bytes()[:-200])
    with pytest.raises(VfiError, match="corrupt"):
        checkpoint.read(ckpt / "cut.pkl")


def test_two_process_gloo_ddp(data, tmp_path):
    model = tiny_model_json(tmp_path / "tiny.json")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "vfi_cli", "train", "--phase", "1", "--data_path", str(data["vimeo"]),
        "--exp_name", "ddp", "--model", str(model), "--dry_run", "--crop", "32",
        "--batch_size", "1", "--device", "cpu", "--workdir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VFI_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    text = (tmp_path / "dry_run" / "log" / "train_ddp.log").read_text()
    assert "2 process(es) on cpu" in text and "resumed at step" in text
    # 6 training triplets, 2 processes x batch 1: 3 global batches per epoch (capped at 3 by the
    # dry run), each one optimizer step on the averaged gradients of both processes.
    final = checkpoint.read(tmp_path / "dry_run" / "ckpt" / "ddp_optim.pkl")
    assert final["train_state"]["step"] == 6


def test_dry_run_on_our_corpus_with_curriculum(data, tmp_path):
    from clips import make_clip
    from test_train_helpers import save_png, texture

    from train.data.corpus import prepare_corpus

    src = tmp_path / "src"
    (src / "videos").mkdir(parents=True)
    make_clip(src / "videos" / "pan.mp4", frames=16, size=(96, 64))
    save_png(src / "photos" / "p.png", texture(96, 128, seed=9))
    prepare_corpus(src, tmp_path / "corpus", workers=1)
    # Teacher-checked triplets: mark the clip's gap-3 triplets as ones the teacher could not beat
    # the blend on; the run drops them and says how many.
    index = json.loads((tmp_path / "corpus" / "index.json").read_text())
    starts = index["clips"]["videos/pan.mp4"]["triplets"]["3"]["start"]
    record = {"clips": {"videos/pan.mp4": {"3": {"start": starts, "margin": [-2.0] * len(starts)}}}}
    (tmp_path / "margins.json").write_text(json.dumps(record))
    cfg = _cfg(
        1, data, tmp_path, dry_run=True, exp_name="own", data_path=None,
        train_data=str(tmp_path / "corpus"), val_path=str(data["dvf"]), curriculum=True,
        triplet_margins=str(tmp_path / "margins.json"), min_teacher_margin=0.5,
    )  # fmt: skip
    s = train(cfg, model_config=tiny_config())
    assert s["step"] == 4
    text = (tmp_path / "dry_run" / "log" / "train_own.log").read_text()
    assert "corpus gap <= 1, synthetic motion x0.50" in text  # epoch 1 of 2: the ramp starts
    assert "corpus gap <= 3, synthetic motion x1.00" in text
    assert starts and f"{len(starts)} dropped with a margin below 0.5 dB" in text
    assert re.search(r"corpus: \d+ of \d+ triplets decoded \([\d.]+ GiB per process; budget ", text)


def test_vgg_term_is_used_and_logged_when_the_weights_are_installed(data, tmp_path):
    from train.vgg import VGG19Features, vgg19_path

    # Wiring check only: a stand-in file in torchvision's layout at the cache path. (Training
    # itself never builds a random VGG: without the real file the term is off.)
    path = vgg19_path()
    assert str(path).startswith(str(tmp_path))  # VFI_CACHE points into tmp_path
    path.parent.mkdir(parents=True)
    torch.save(VGG19Features().state_dict(), path)
    cfg = _cfg(
        1, data, tmp_path, exp_name="v", epochs=1, max_iters_per_epoch=1, max_val=1, log_interval=1
    )
    s = train(cfg, model_config=tiny_config())
    assert s["vgg"]
    assert _scalar_tags(tmp_path / "log" / "v") == EXPECTED_TAGS | {"loss/loss_vgg"}
    assert "loss_vgg: enabled" in (tmp_path / "log" / "train_v.log").read_text()
