"""Training data: augmentation, the mixing sampler, X4K sampling, the curriculum, bad datasets."""

from __future__ import annotations

import pytest
import torch
from test_train_helpers import make_dvf, make_vimeo, make_x4k

from engine.errors import VfiError
from train.config import curriculum_max_gap, make_config, parse_packs, parse_ratio
from train.data.augment import augment, random_time_reverse
from train.data.mixed import MixedBatchSampler, build_train_data, build_val_data
from train.data.x4k import X4KTrain

pytestmark = pytest.mark.usefixtures("one_thread")


def _ramp(h=40, w=40):
    """Frame k = a position code + 10 k: any spatial transform applied to all frames alike keeps
    frame differences exactly constant."""
    pos = torch.arange(h * w, dtype=torch.float32).reshape(1, h, w).expand(3, h, w) / (h * w)
    return torch.stack([pos + 10 * k for k in range(3)])  # (3, 3, H, W)


def test_augment_moves_all_frames_alike():
    torch.manual_seed(0)
    seen_reversed = seen_forward = False
    for _ in range(20):
        frames, t = augment(_ramp(), 0.5, crop=32)
        assert frames.shape == (3, 3, 32, 32) and t == 0.5
        d01, d21 = frames[1] - frames[0], frames[1] - frames[2]
        assert torch.allclose(d01, d01.flatten()[0].expand_as(d01))  # same window in every frame
        assert torch.allclose(d01, -d21)  # the middle frame stays in the middle
        seen_forward |= bool(d01.flatten()[0] > 0)
        seen_reversed |= bool(d01.flatten()[0] < 0)
    assert seen_forward and seen_reversed  # temporal reversal happens, both ways


def test_time_reverse_maps_t():
    torch.manual_seed(1)
    outs = {random_time_reverse(_ramp(), 0.25)[1] for _ in range(20)}
    assert outs == {0.25, 0.75}


def test_crop_larger_than_frames_is_one_clear_error():
    with pytest.raises(VfiError, match="smaller than the crop"):
        augment(_ramp(16, 16), 0.5, crop=32, where="some/sample")


def test_mixed_sampler_ratio_ranks_and_resume():
    kw = dict(sizes=[40, 7], batch_sizes=[4, 2], ratio=(2, 1), seed=3)
    s = MixedBatchSampler(**kw)
    batches = list(s)
    # one pass over source 0 (40 / 4 = 10 batches) plus one X4K batch per two: 15 batches
    assert len(s) == len(batches) == 15
    sources = ["a" if max(b) < 40 else "b" for b in batches]
    assert "".join(sources) == "aab" * 5
    assert all(len(b) == (4 if src == "a" else 2) for b, src in zip(batches, sources))
    a_items = [i for b, src in zip(batches, sources) if src == "a" for i in b]
    assert sorted(a_items) == list(range(40))  # an epoch sees every primary sample once
    # two ranks: disjoint halves of the same global batches
    r0, r1 = list(MixedBatchSampler(**kw, world=2)), list(MixedBatchSampler(**kw, rank=1, world=2))
    assert len(r0) == len(r1) and all(not set(a) & set(b) for a, b in zip(r0, r1))
    # resuming at batch 4 gives exactly the rest of the epoch
    s.set_epoch(0, start=4)
    assert list(s) == batches[4:]
    s.set_epoch(1)
    assert list(s) != batches  # a new order every epoch


def test_parse_ratio():
    assert parse_ratio("2:1") == (2, 1)
    for bad in ("2", "a:b", "0:0", "-1:2"):
        with pytest.raises(VfiError):
            parse_ratio(bad)


def test_parse_packs():
    assert parse_packs("0,1,5") == (0, 1, 5)
    assert make_config(exp_name="x", train_data="c", train_packs="3").train_packs == (3,)
    for bad in ("", "a", "1,1", "-1", "0;1"):
        with pytest.raises(VfiError, match="--train_packs"):
            parse_packs(bad)
    with pytest.raises(VfiError, match="give the corpus"):
        make_config(exp_name="x", data_path="d", train_packs="0")


def test_x4k_layout_sampling_and_curriculum(tmp_path):
    root = make_x4k(tmp_path / "X4K1000FPS", clips=2, frames=9, h=64, w=64)
    ds = X4KTrain(root, crop=32, max_gap=32)
    assert len(ds) == 2 and ds.max_gap == 4  # capped by the 9-frame clips: i, i+4, i+8
    torch.manual_seed(0)
    item = ds[0]
    assert item["frames"].shape == (3, 3, 32, 32) and item["frames"].dtype == torch.uint8
    assert float(item["scale"]) == 0.5
    ds.set_max_gap(1)
    assert ds.max_gap == 1
    cfg = make_config(3, exp_name="x", data_path="v", x4k_path="x", resume="p2", epochs=10)
    gaps = [curriculum_max_gap(cfg, e) for e in range(10)]
    assert gaps[0] == 4 and gaps[5:] == [32] * 5 and gaps == sorted(gaps)
    assert curriculum_max_gap(cfg.replace(curriculum=False), 0) == 32


def test_mixed_build_with_x4k(tmp_path):
    vimeo = make_vimeo(tmp_path / "vimeo_triplet", n_train=4, n_test=1)
    x4k = make_x4k(tmp_path / "x4k", clips=2, frames=5, h=64, w=64)
    cfg = make_config(
        3, exp_name="m", data_path=str(vimeo), x4k_path=str(x4k), resume="p2", crop=32,
        x4k_crop=64, batch_size=4, num_workers=0,
    )  # fmt: skip
    dataset, sampler, sources = build_train_data(cfg)
    assert [n for n, _, _ in sources] == ["primary", "x4k"]
    assert sources[1][2] == 1  # X4K batch scaled to the same pixel count: 4 * 32² / 64²
    torch.manual_seed(0)
    for batch in sampler:
        shapes = {tuple(dataset[i]["frames"].shape) for i in batch}
        assert len(shapes) == 1  # never a mix of crop sizes in one batch


def test_bad_datasets_are_one_line_errors(tmp_path):
    base = dict(exp_name="bad", crop=32, num_workers=0)
    with pytest.raises(VfiError, match="Vimeo90K not found"):
        build_train_data(make_config(1, data_path=str(tmp_path / "nope"), **base))
    empty = tmp_path / "empty"
    (empty / "sequences").mkdir(parents=True)
    (empty / "tri_trainlist.txt").write_text("\n")
    with pytest.raises(VfiError, match="is empty"):
        build_train_data(make_config(1, data_path=str(empty), **base))
    with pytest.raises(VfiError, match="no X4K clips"):
        X4KTrain(empty)
    with pytest.raises(VfiError, match="no validation set"):
        build_val_data(make_config(1, train_data="x", **base))
    with pytest.raises(VfiError, match="no triplets"):
        build_val_data(make_config(1, data_path="x", val_path=str(empty), **base))
    # an unreadable image: one line naming the file
    vimeo = make_vimeo(tmp_path / "v", n_train=2, n_test=1)
    broken = vimeo / "sequences" / "00001" / "0001" / "im2.png"
    broken.write_bytes(b"\x89PNG truncated")
    dataset, _, _ = build_train_data(make_config(1, data_path=str(vimeo), **base))
    with pytest.raises(VfiError, match=r"cannot read image .*im2\.png"):
        dataset[0]
    dvf = make_dvf(tmp_path / "dvf", n=2)
    (dvf / "2" / "frame_02.png").unlink()
    with pytest.raises(VfiError, match="malformed triplet"):
        build_val_data(make_config(1, data_path="x", val_path=str(dvf), **base))


def test_config_validation():
    with pytest.raises(VfiError, match="--exp_name"):
        make_config(1, exp_name="", data_path="x")
    with pytest.raises(VfiError, match="no training data"):
        make_config(1, exp_name="a")
    with pytest.raises(VfiError, match="--resume"):
        make_config(2, exp_name="a", data_path="x")
    with pytest.raises(VfiError, match="--x4k_path"):
        make_config(3, exp_name="a", data_path="x", resume="p2")
    with pytest.raises(VfiError, match="multiple of 32"):
        make_config(1, exp_name="a", data_path="x", crop=100)
    with pytest.raises(VfiError, match="--distill_window must be an odd"):
        make_config(1, exp_name="a", data_path="x", distill_window=8)
    with pytest.raises(VfiError, match="cannot be negative"):
        make_config(1, exp_name="a", data_path="x", distill_margin=-0.1)
    with pytest.raises(VfiError, match="--photo_prob is a share"):
        make_config(1, exp_name="a", data_path="x", photo_prob=1.5)
    with pytest.raises(VfiError, match="--still_scene is a share"):
        make_config(1, exp_name="a", data_path="x", still_scene=-0.5)
    with pytest.raises(VfiError, match="--w_moving cannot be negative"):
        make_config(1, exp_name="a", data_path="x", w_moving=-1)
    with pytest.raises(VfiError, match="--moving_halo is a width in pixels"):
        make_config(1, exp_name="a", data_path="x", w_moving=1, moving_halo=-2)
    with pytest.raises(VfiError, match="give it a weight, --w_moving"):
        make_config(1, exp_name="a", data_path="x", moving_halo=8)
    assert make_config(1, exp_name="a", data_path="x", w_moving=1, moving_halo=8).moving_halo == 8
    assert make_config(1, exp_name="a", data_path="x", distill_texture=True).distill_texture
    assert not make_config(1, exp_name="a", data_path="x").distill_texture  # uniform by default
    with pytest.raises(VfiError, match="--still_scene needs --small_objects"):
        make_config(1, exp_name="a", data_path="x", still_scene=0.5)
    with pytest.raises(VfiError, match="--small_objects cannot be negative"):
        make_config(1, exp_name="a", data_path="x", small_objects=-1)
    with pytest.raises(VfiError, match="--motion_power cannot be negative"):
        make_config(1, exp_name="a", data_path="x", motion_power=-1)
    with pytest.raises(VfiError, match="--max_minutes is a time budget"):
        make_config(1, exp_name="a", data_path="x", max_minutes=-1)
    with pytest.raises(VfiError, match="--ram_gb is a memory budget"):
        make_config(1, exp_name="a", train_data="x", ram_gb=0)
    cfg = make_config(2, exp_name="a", data_path="x", resume="p1", lr=3e-4)
    assert cfg.feature_warp and not cfg.texture_path and cfg.freeze_backbone == 5 and cfg.lr == 3e-4
