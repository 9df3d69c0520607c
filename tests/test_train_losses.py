"""Training losses (Laplacian, ternary, VGG19, moving pixels) and the VGG19 weight loading."""

from __future__ import annotations

import pytest
import torch

from engine.errors import VfiError
from train.losses import laplacian_pyramid, loss_lap, loss_ter, loss_total, loss_vgg
from train.vgg import TAPS, VGG19Features, load_vgg19

pytestmark = pytest.mark.usefixtures("one_thread")


def _img(seed, shape=(2, 3, 32, 48)):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_laplacian_pyramid_reconstructs():
    x = _img(0)
    bands = laplacian_pyramid(x, levels=4)
    assert [b.shape[-1] for b in bands] == [48, 24, 12, 6]
    # Collapse the pyramid with the same expand step: the original image comes back exactly.
    from train.losses import _blur, _gauss_kernel

    k = _gauss_kernel(x.device, x.dtype)
    img = bands[-1]
    for band in reversed(bands[:-1]):
        up = torch.zeros_like(band)
        up[..., ::2, ::2] = img * 4
        img = band + _blur(up, k)
    torch.testing.assert_close(img, x)


def test_lap_and_ter_zero_on_identical_and_positive_otherwise():
    a, b = _img(1), _img(2)
    assert loss_lap(a, a).item() == 0 and loss_ter(a, a).item() == 0
    assert loss_lap(a, b).item() > 0.05 and loss_ter(a, b).item() > 0.05


def test_ternary_is_robust_to_brightness_offset():
    a = _img(3) * 0.8
    brighter = a + 0.15
    shifted = torch.roll(a, 2, dims=-1)
    # A global brightness change leaves the local ordering intact: ternary barely moves,
    # while a small shift (real misalignment) changes it a lot.
    assert loss_ter(brighter, a) < 0.1 * loss_ter(shifted, a)
    assert loss_lap(brighter, a) > loss_lap(shifted, a) * 0.5  # L1 sees the offset


def test_loss_total_parts_and_intermediate_predictions():
    gt = _img(4)
    pred = gt.clone().requires_grad_(True)
    coarse = _img(5).requires_grad_(True)
    total, parts = loss_total({"pred": pred, "preds": [coarse, pred]}, gt, w_inter=0.5)
    assert set(parts) == {"loss_total", "loss_lap", "loss_ter"}  # no VGG: not in the parts
    assert parts["loss_lap"] == 0 and parts["loss_ter"] == 0
    expected = 0.5 * (loss_lap(coarse, gt) + loss_ter(coarse, gt))  # pred itself counted once
    torch.testing.assert_close(total, expected)
    total.backward()
    assert coarse.grad is not None and coarse.grad.abs().sum() > 0
    only_final, _ = loss_total({"pred": pred, "preds": [coarse]}, gt, w_inter=0.0)
    assert only_final.item() == 0


def _still_scene_with_a_square(side, size=64):
    """A still background with a flat square of ``side`` px jumping past itself between frames."""
    shift = side + 2
    bg = _img(6, (1, 3, size, size)) * 0.5
    frames = []
    for k in range(3):  # img0, gt, img1
        f = bg.clone()
        x = 8 + k * shift
        f[..., 20 : 20 + side, x : x + side] = 0.9
        frames.append(f)
    return frames


def test_moving_weight_marks_the_object_in_the_middle_frame_only():
    from train.losses import moving_weight

    img0, gt, img1 = _still_scene_with_a_square(side=8)
    w = moving_weight(gt, img0, img1)[0, 0]  # (H, W)
    assert w.shape == (64, 64) and w.min() >= 0 and w.max() <= 1
    assert w[20:28, 18:26].mean() > 0.9  # the square at its middle position, off both inputs'
    assert w[40:, :].max() == 0  # still background
    assert w[20:28, 8:16].max() == 0  # img0's square: gt is background there, as img1 is
    assert moving_weight(img0, img0, img0).max() == 0


def test_moving_halo_widens_the_weight_by_a_band_of_still_background():
    from train.losses import loss_moving, moving_weight

    img0, gt, img1 = _still_scene_with_a_square(side=8)
    core = moving_weight(gt, img0, img1)[0, 0]
    wide = moving_weight(gt, img0, img1, halo=3)[0, 0]
    assert torch.equal(moving_weight(gt, img0, img1, halo=0)[0, 0], core)
    assert (wide >= core).all() and wide.sum() > core.sum()
    # The middle square (rows 20-27, columns 18-25) grows by 3 px on every side, no further.
    assert wide[17:31, 15:29].min() > 0.9 and wide[:16].max() == 0 and wide[32:].max() == 0
    assert core[18, 20] == 0 and wide[18, 20] > 0.9  # background just above the square
    # A prediction that is right on the object but drags it 2 px upward (a flow bleeding past its
    # edge): the plain weight barely sees the band it smears, the halo weighs it in.
    pred = gt.clone()
    pred[..., 18:20, 18:26] = 0.9
    plain = loss_moving(pred, gt, moving_weight(gt, img0, img1)).item()
    halo = loss_moving(pred, gt, moving_weight(gt, img0, img1, halo=3)).item()
    assert plain == 0 and halo > 0


def test_loss_moving_weighs_a_small_object_like_a_large_one():
    from train.losses import loss_moving, moving_weight

    values = []
    for side in (4, 16):
        img0, gt, img1 = _still_scene_with_a_square(side)
        pred = (img0 + img1) / 2  # the blend: wrong on the object, right on the background
        values.append(loss_moving(pred, gt, moving_weight(gt, img0, img1)).item())
        # a plain mean dilutes the small object by its area
        values.append((pred - gt).abs().mean().item())
    small_mov, small_mean, large_mov, large_mean = values
    assert small_mov == pytest.approx(large_mov, rel=0.25)
    assert small_mean < 0.2 * large_mean


def test_loss_total_adds_the_moving_term_only_when_weighted():
    img0, gt, img1 = _still_scene_with_a_square(side=8)
    pred = ((img0 + img1) / 2).requires_grad_(True)
    off_total, off = loss_total({"pred": pred}, gt)
    assert "loss_moving" not in off
    on_total, on = loss_total({"pred": pred}, gt, w_moving=2.0, inputs=(img0, img1))
    assert on["loss_moving"] > 0.1
    torch.testing.assert_close(on_total, off_total + 2.0 * on["loss_moving"])
    with pytest.raises(ValueError, match="needs inputs"):
        loss_total({"pred": pred}, gt, w_moving=1.0)
    # moving_halo reaches the weight: the blend is right on the background it adds.
    _, wide = loss_total({"pred": pred}, gt, w_moving=2.0, moving_halo=3, inputs=(img0, img1))
    assert 0 < wide["loss_moving"] < on["loss_moving"]


def test_vgg19_loads_torchvision_layout(tmp_path):
    torch.manual_seed(0)
    ref = VGG19Features()
    state = {k: v for k, v in ref.state_dict().items()}
    assert "features.0.weight" in state and "features.34.weight" in state  # torchvision's keys
    state["classifier.0.weight"] = torch.zeros(4, 4)  # the real file has a classifier: ignored
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    vgg, note = load_vgg19(path)
    assert vgg is not None and str(path) in note
    torch.testing.assert_close(vgg.features[34].weight, ref.features[34].weight)
    assert not any(p.requires_grad for p in vgg.parameters())
    x = _img(6, (1, 3, 32, 32))
    feats = vgg(x)
    assert len(feats) == len(TAPS) and feats[0].shape == (1, 64, 32, 32)
    assert loss_vgg(x, x, vgg).item() == 0
    pred = _img(7, (1, 3, 32, 32)).requires_grad_(True)
    v = loss_vgg(pred, x, vgg)
    v.backward()
    assert v.item() > 0 and pred.grad.abs().sum() > 0
    _, parts = loss_total({"pred": pred}, x, vgg=vgg)
    assert "loss_vgg" in parts


def test_vgg19_missing_is_disabled_and_bad_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VFI_CACHE", str(tmp_path / "cache"))
    vgg, note = load_vgg19()  # default location: the weights cache
    assert vgg is None and "vfi download-weights vgg19" in note and str(tmp_path) in note
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VfiError, match="not a readable VGG19"):
        load_vgg19(bad)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(VfiError, match="not torchvision's VGG19"):
        load_vgg19(wrong)


def _reference_loss_ter(pred, gt, patch=7):
    """The plain formulation: neighbours by a convolution with one-hot kernels, a border mask."""

    def census_conv(x):
        gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]) * 255.0
        kernels = torch.eye(patch * patch, dtype=x.dtype).reshape(patch * patch, 1, patch, patch)
        diff = torch.nn.functional.conv2d(gray, kernels, padding=patch // 2) - gray
        return diff / torch.sqrt(0.81 + diff * diff)

    d = census_conv(pred) - census_conv(gt)
    dist = (d * d / (0.1 + d * d)).mean(dim=1, keepdim=True)
    r = patch // 2
    valid = torch.zeros_like(dist)
    valid[..., r:-r, r:-r] = 1.0
    return (dist * valid).sum() / valid.sum()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_census_loss_matches_the_convolution_reference(dtype, tol):
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 20, 23, generator=g, dtype=dtype)
    pred = (gt + 0.1 * torch.randn(2, 3, 20, 23, generator=g, dtype=dtype)).requires_grad_()
    fast = loss_ter(pred, gt)
    (grad_fast,) = torch.autograd.grad(fast, pred)
    ref = _reference_loss_ter(pred, gt)
    (grad_ref,) = torch.autograd.grad(ref, pred)
    assert abs(fast.item() - ref.item()) <= tol * abs(ref.item())
    assert torch.allclose(grad_fast, grad_ref, rtol=tol * 10, atol=tol * 1e-3)


def test_loss_total_reuses_the_ground_truth_without_changing_the_value():
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(2, 3, 32, 32, generator=g)
    preds = [gt + 0.05 * torch.randn(2, 3, 32, 32, generator=g) for _ in range(3)]
    total, _ = loss_total({"pred": preds[-1], "preds": preds}, gt)
    inter = sum(loss_lap(p, gt) + loss_ter(p, gt) for p in preds[:-1]) / 2
    expected = loss_lap(preds[-1], gt) + loss_ter(preds[-1], gt) + 0.5 * inter
    assert torch.allclose(total, expected, rtol=1e-6)
