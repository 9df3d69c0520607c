"""Our own corpus: index building, packing, the loader and synthetic photo triplets.

Fixtures are generated in the real layout (``videos/`` of clips with known motion, ``photos/``):
a fast and a slow pan, a static clip, a clip with every frame shown twice and one with a scene cut.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.errors import VfiError

W, H = 96, 64  # fixture video size (even, for yuv420p)
CUT_AT = 12  # the cut clip changes scene between frames 11 and 12


def _texture(rng, h, w, cell=6):
    """A smooth random colour texture (uint8 (h, w, 3)): bicubic upsampling of coarse noise."""
    small = torch.from_numpy(rng.random((1, 3, h // cell + 3, w // cell + 3))).float()
    big = F.interpolate(small, scale_factor=cell, mode="bicubic", align_corners=False)[0]
    img = (big[:, :h, :w].clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
    return np.ascontiguousarray(img.numpy())


def _pan(canvas, n, speed, start=0):
    """n frames of a W x H window moving right over ``canvas`` by ``speed`` px per frame."""
    return [canvas[:H, start + k * speed : start + k * speed + W] for k in range(n)]


def _write_video(path: Path, frames, fps=25):
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast"}
        for f in frames:
            for pkt in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)


def _write_png(path: Path, img):
    import av

    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = img.shape[1], img.shape[0], "rgb24"
        for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)


def _tree_digest(root: Path) -> dict:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    (root / "videos").mkdir()
    (root / "photos").mkdir()
    rng = np.random.default_rng(0)
    canvas = _texture(rng, H, W + 24 * 4 + 8)
    _write_video(root / "videos" / "01_fast.mp4", _pan(canvas, 24, 4))
    _write_video(root / "videos" / "02_slow.mp4", _pan(canvas, 24, 1))
    _write_video(root / "videos" / "03_static.mp4", _pan(canvas, 12, 0))
    distinct = _pan(canvas, 12, 3)
    _write_video(root / "videos" / "04_repeats.mp4", [f for f in distinct for _ in range(2)])
    other = _texture(np.random.default_rng(1), H, W + 40) // 2 + 100  # another scene
    cut = _pan(canvas, CUT_AT, 2) + _pan(other, 24 - CUT_AT, 2)
    _write_video(root / "videos" / "05_cut.mp4", cut)
    (root / "videos" / "notes.txt").write_text("not a video")
    for k in range(2):
        _write_png(root / "photos" / f"photo{k}.png", _texture(rng, 160, 200, cell=10))
    return root


@pytest.fixture(scope="module")
def corpus(src, tmp_path_factory) -> tuple[Path, object]:
    from train.data.corpus import prepare_corpus

    out = tmp_path_factory.mktemp("cache") / "corpus"
    before = _tree_digest(src)
    summary = prepare_corpus(src, out, pack_mb=0.12, seed=0, workers=2)
    assert _tree_digest(src) == before  # the source is only read
    return out, summary


def _index(out: Path) -> dict:
    return json.loads((out / "index.json").read_text())


# ---------------------------------------------------------------------------------------------
# index


def test_static_clip_has_no_triplets(corpus):
    out, summary = corpus
    clip = _index(out)["clips"]["videos/03_static.mp4"]
    assert clip["frames"] == 12
    assert clip["keep"] == [0]  # every frame repeats the first
    assert all(not t["start"] for t in clip["triplets"].values())
    assert summary.repeated_frames >= 11 + 12  # static clip + the doubled frames


def test_repeated_frames_collapse_to_distinct_moments(corpus):
    clip = _index(corpus[0])["clips"]["videos/04_repeats.mp4"]
    assert clip["keep"] == list(range(0, 24, 2))
    assert len(clip["triplets"]["1"]["start"]) == 12 - 2  # all distinct triplets are usable


def test_scene_cut_is_found_and_never_straddled(corpus):
    clip = _index(corpus[0])["clips"]["videos/05_cut.mp4"]
    keep = clip["keep"]
    assert [keep[p + 1] for p in clip["cuts"]] == [CUT_AT]
    for g, tr in clip["triplets"].items():
        g = int(g)
        for s in tr["start"]:
            a, b = keep[s], keep[s + 2 * g]
            assert b < CUT_AT or a >= CUT_AT, (g, s)
        assert clip["skipped"][str(g)]["cut"] == 2 * g  # every window over the cut
    assert corpus[1].skipped_cut[1] == 2


def test_motion_score_follows_motion(corpus):
    clips = _index(corpus[0])["clips"]
    fast = np.median(clips["videos/01_fast.mp4"]["triplets"]["1"]["motion"])
    slow = np.median(clips["videos/02_slow.mp4"]["triplets"]["1"]["motion"])
    assert fast > 2 * slow > 0
    for g in ("1", "2", "3"):  # wider gaps, more motion
        assert len(clips["videos/02_slow.mp4"]["triplets"][g]["start"]) == 24 - 2 * int(g)
    m = [np.median(clips["videos/02_slow.mp4"]["triplets"][g]["motion"]) for g in "123"]
    assert m[0] < m[1] < m[2]


def test_packs_hold_every_file_once_within_the_limit(corpus, src):
    out, summary = corpus
    index = _index(out)
    assert len(summary.packs) >= 2  # 0.12 MiB packs cannot hold the fixture in one
    seen = []
    for p in summary.packs:
        size = sum(f.stat().st_size for f in (out / p["name"]).rglob("*") if f.is_file())
        assert size == p["bytes"] <= 0.12 * 2**20
        meta = json.loads((out / p["name"] / "pack.json").read_text())
        for rel in [*meta["clips"], *meta["photos"]]:
            assert (out / p["name"] / rel).read_bytes() == (src / rel).read_bytes()
            seen.append(rel)
    assert sorted(seen) == sorted([*index["clips"], *index["photos"]])
    assert "videos/notes.txt" not in seen
    assert summary.videos == 5 and summary.photos == 2
    assert "pack-00" in "\n".join(summary.lines())


def test_plan_packs_spreads_groups_and_rejects_oversize():
    from train.data.corpus import plan_packs

    items = [(f"a{i}", 10, "talking", "480p") for i in range(4)]
    items += [(f"b{i}", 10, "sports", "1080p+") for i in range(4)]
    plan = plan_packs(items, 45, seed=1)
    assert len(plan) == 2
    for names in plan:
        assert sum(n.startswith("a") for n in names) == 2  # each pack gets half of each group
    with pytest.raises(VfiError, match="raise --pack-mb"):
        plan_packs([("huge", 100, "g", "b")], 45)


def test_bad_source_gives_one_line_errors(tmp_path, src):
    from train.data.corpus import prepare_corpus

    with pytest.raises(VfiError, match=r"does not exist.*video files") as e:
        prepare_corpus(tmp_path / "nope", tmp_path / "out")
    assert "\n" not in str(e.value) and str(tmp_path / "nope") in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VfiError, match=r"no video files or photos found in .*empty"):
        prepare_corpus(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "file.mp4").write_bytes(b"x")
    with pytest.raises(VfiError, match="is not a folder"):
        prepare_corpus(tmp_path / "file.mp4", tmp_path / "out")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(VfiError, match="not empty"):
        prepare_corpus(src, tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_unreadable_video_is_skipped_and_reported(tmp_path):
    from train.data.corpus import prepare_corpus

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "broken.mp4").write_bytes(b"\x00" * 1000)
    _write_png(tmp_path / "src" / "p.png", _texture(np.random.default_rng(2), 64, 64))
    summary = prepare_corpus(tmp_path / "src", tmp_path / "out", workers=1)
    assert summary.unreadable == ["broken.mp4"] and summary.photos == 1


# ---------------------------------------------------------------------------------------------
# loader


@pytest.fixture(scope="module")
def dataset(corpus):
    from train.data.corpus_dataset import CorpusDataset

    torch.manual_seed(0)
    return CorpusDataset(corpus[0], crop=32, threads=2, photo_prob=0.3, third_prob=0.5)


def test_loader_serves_float_triplets_in_range(dataset):
    ts = set()
    for i in range(40):
        item = dataset[i]
        frames, t = item["frames"], float(item["t"])
        assert frames.shape == (3, 3, 32, 32) and frames.dtype == torch.float32
        assert frames.min() >= 0.0 and frames.max() <= 1.0
        ts.add(round(t, 4))
    assert ts <= {0.5, round(1 / 3, 4), round(2 / 3, 4)} and 0.5 in ts and len(ts) > 1
    batch = torch.utils.data.default_collate([dataset[0], dataset[1]])
    assert batch["frames"].shape == (2, 3, 3, 32, 32) and batch["t"].shape == (2,)


def test_loader_only_uses_indexed_triplets(dataset):
    names = {c.name for c in dataset.clips}
    assert "videos/03_static.mp4" in names  # loaded but never sampled: no triplets
    static = next(i for i, c in enumerate(dataset.clips) if c.name == "videos/03_static.mp4")
    assert not np.any(dataset.table[:, 0] == static)
    # the frames in RAM are the decoded frames of the file
    from train.data.corpus_dataset import decode_frames

    row = int(np.flatnonzero(dataset.table[:, 1] == 2)[0])
    clip, idx = dataset.triplet_frames(row, 1 / 3)
    s = int(dataset.table[row, 2])
    assert idx == [int(clip.keep[s]), int(clip.keep[s + 1]), int(clip.keep[s + 3])]
    ref = decode_frames(dataset.paths[clip.name], idx)
    assert np.array_equal(np.stack([clip.frames[clip.rows[i]] for i in idx]), ref)


def test_loader_is_deterministic_under_torch_seed(dataset):
    torch.manual_seed(5)
    a = [dataset[i]["frames"] for i in range(4)]
    torch.manual_seed(5)
    b = [dataset[i]["frames"] for i in range(4)]
    torch.manual_seed(6)
    c = [dataset[i]["frames"] for i in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_loader_video_crop_matches_frames_without_augmentation(corpus):
    from train.data.corpus_dataset import CorpusDataset

    ds = CorpusDataset(corpus[0], crop=64, photo_prob=0, third_prob=0, zoom_prob=0, augment=False)
    torch.manual_seed(1)
    for i in range(3):
        frames = ds[i]["frames"]  # a 64 px window spans the frame height: only x is random
        u8 = (frames * 255).round().byte().permute(0, 2, 3, 1).numpy()  # (3, 64, 64, 3)
        found = False
        for clip in [c for c in ds.clips if len(c.frames)]:
            for x in range(W - 64 + 1):
                win = clip.frames[:, :, x : x + 64]
                rows = [np.flatnonzero((win == u8[k]).all((1, 2, 3))) for k in range(3)]
                found |= all(len(r) for r in rows) and rows[0][0] < rows[1][0] < rows[2][0]
        assert found


def test_pack_selection_and_errors(corpus, tmp_path):
    from train.data.corpus_dataset import CorpusDataset

    out = corpus[0]
    one = CorpusDataset(out / "pack-00", crop=32, threads=1)
    also = CorpusDataset(out, packs=[0], crop=32, threads=1)
    assert [c.name for c in one.clips] == [c.name for c in also.clips]
    with pytest.raises(VfiError, match="pack-77 not in"):
        CorpusDataset(out, packs=["pack-77"])
    with pytest.raises(VfiError, match="not a prepared corpus"):
        CorpusDataset(tmp_path)


def test_incomplete_corpus_is_an_error_unless_packs_are_picked(corpus, tmp_path):
    import shutil

    from train.data.corpus_dataset import CorpusDataset

    packs = [p["name"] for p in _index(corpus[0])["packs"]]
    assert len(packs) >= 3
    part = tmp_path / "part"
    shutil.copytree(corpus[0], part, ignore=shutil.ignore_patterns(packs[1]))
    with pytest.raises(VfiError, match=f"incomplete corpus: {packs[1]} of its index is missing"):
        CorpusDataset(part, crop=32, threads=1)
    present = ",".join(str(i) for i in range(len(packs)) if i != 1)
    with pytest.raises(VfiError, match=f"--train_packs {present}$"):
        CorpusDataset(part, crop=32, threads=1)
    picked = CorpusDataset(part, packs=[0, 2], crop=32, threads=1)
    full = CorpusDataset(corpus[0], packs=[0, 2], crop=32, threads=1)
    assert [c.name for c in picked.clips] == [c.name for c in full.clips]


def test_train_packs_reach_the_loader(corpus):
    from train.config import make_config
    from train.data.corpus_dataset import CorpusDataset
    from train.data.mixed import open_corpus

    def clips(**kw):
        cfg = make_config(exp_name="x", train_data=str(corpus[0]), crop=32, **kw)
        return [c.name for c in open_corpus(cfg).dataset.clips]

    pack2 = [c.name for c in CorpusDataset(corpus[0], packs=[2], crop=32, threads=1).clips]
    assert clips(train_packs="2") == pack2
    assert clips(train_packs="2,0", dry_run=True) == pack2  # a dry run: the first pack named
    assert clips(dry_run=True) == [
        c.name for c in CorpusDataset(corpus[0], packs=[0], crop=32, threads=1).clips
    ]


def _coordinate_frame(h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8 whose pixel (y, x) holds (y, x, 7): a window shows where it was cut."""
    yy, xx = np.mgrid[:h, :w]
    return np.stack([yy, xx, np.full_like(yy, 7)], -1).astype(np.uint8)


def _origins(frames: torch.Tensor) -> np.ndarray:
    """Source (y, x) of each window's top-left pixel, after checking each window is a plain cut."""
    u8 = (frames * 255).round().long()  # (3, 3, c, c)
    c = u8.shape[-1]
    ramp = torch.arange(c)
    for k in range(3):
        assert torch.equal(u8[k, 0] - u8[k, 0, 0, 0], ramp[:, None].expand(c, c))
        assert torch.equal(u8[k, 1] - u8[k, 1, 0, 0], ramp[None, :].expand(c, c))
    return u8[:, :2, 0, 0].numpy()  # (3, 2)


@pytest.mark.parametrize(
    "pan, t", [((4, -6), 0.5), ((-10, 8), 0.5), ((3, -9), 1 / 3), ((-6, 12), 2 / 3)]
)
def test_panned_window_moves_linearly_in_time(pan, t):
    """Each frame's window is offset by its time times the pan: the middle frame stays exact."""
    from train.data.corpus_dataset import _random_window

    frame = _coordinate_frame(48, 64)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        frames = _random_window([frame] * 3, 16, 0.0, rng, pan=np.array(pan), t=t)
        o = _origins(frames)
        assert (o[2] - o[0]).tolist() == list(pan)
        assert (o[1] - o[0]).tolist() == [round(t * p) for p in pan]


def test_a_pan_too_large_for_the_frame_is_shrunk_along_its_direction():
    from train.data.corpus_dataset import _random_window

    frame = _coordinate_frame(24, 64)  # 8 px of room in y for a 16 px window
    for t, pan, fitted in ((0.5, (20, -10), (8, -4)), (1 / 3, (-30, 30), (-6, 6))):
        o = _origins(
            _random_window([frame] * 3, 16, 0.0, np.random.default_rng(0), np.array(pan), t)
        )
        assert (o[2] - o[0]).tolist() == list(fitted)


def test_drawn_pans_are_bounded_whole_in_the_middle_and_go_every_way():
    from train.data.corpus_dataset import draw_pan, pan_quantum

    rng = np.random.default_rng(0)
    for t in (0.5, 1 / 3, 2 / 3):
        pans = np.array([draw_pan(rng, 12.0, t) for _ in range(400)])
        q = pan_quantum(t)
        assert (pans % q == 0).all()
        assert (np.linalg.norm(pans, axis=1) <= 2 * 12.0 + q).all()  # per half-step <= 12 px
        assert np.linalg.norm(pans, axis=1).max() > 18  # and not all small
        assert {(a, b) for a, b in np.sign(pans).tolist()} >= {(1, 1), (1, -1), (-1, 1), (-1, -1)}
    assert not draw_pan(rng, 0.0).any()


def test_pan_prob_reaches_the_loader_and_leaves_unpanned_runs_unchanged(corpus):
    from train.config import make_config
    from train.data.mixed import open_corpus

    def samples(**kw):
        cfg = make_config(exp_name="x", train_data=str(corpus[0]), crop=32, augment=False, **kw)
        ds = open_corpus(cfg).dataset
        ds.photo_prob = 0.0
        torch.manual_seed(3)
        return ds, [ds[i]["frames"] for i in range(6)]

    plain, a = samples()
    _, b = samples(pan_prob=0.0, pan_max=30.0)
    panned, c = samples(pan_prob=1.0, pan_max=30.0)
    assert (plain.pan_prob, panned.pan_prob, panned.pan_max) == (0.0, 1.0, 30.0)
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # no extra random draws when off
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    with pytest.raises(VfiError, match="--pan_prob is a share"):
        make_config(exp_name="x", train_data="c", pan_prob=1.5)
    with pytest.raises(VfiError, match="--pan_max"):
        make_config(exp_name="x", train_data="c", pan_max=-1.0)
    with pytest.raises(VfiError, match="give the corpus"):
        make_config(exp_name="x", data_path="d", pan_prob=0.3)


def test_tampered_file_is_rejected(corpus, tmp_path):
    import shutil

    from train.data.corpus_dataset import CorpusDataset

    pack = tmp_path / "pack-00"
    shutil.copytree(corpus[0] / "pack-00", pack)
    meta = json.loads((pack / "pack.json").read_text())
    victim = pack / next(iter(meta["clips"]))
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(VfiError, match="sha256 differs"):
        CorpusDataset(pack, crop=32, threads=1)


def test_ram_budget_leaves_out_windows(corpus):
    from train.data.corpus_dataset import CorpusDataset

    full = CorpusDataset(corpus[0], crop=32, threads=1)
    small = CorpusDataset(corpus[0], crop=32, threads=1, ram_gb=full.bytes / 2 / 2**30)
    assert small.bytes <= full.bytes / 2
    assert 0 < len(small.table) < len(full.table)
    assert small[0]["frames"].shape == (3, 3, 32, 32)


def test_default_ram_budget_is_a_share_of_the_machine_split_between_processes(monkeypatch):
    from train.data.corpus_dataset import RAM_SHARE, default_ram_gb

    gib = 2**30
    assert default_ram_gb(24 * gib, 1) == pytest.approx(RAM_SHARE * 24)
    assert default_ram_gb(512 * gib, 4) == pytest.approx(RAM_SHARE * 128)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun's processes on this machine
    assert default_ram_gb(560 * gib) == pytest.approx(RAM_SHARE * 70)
    assert default_ram_gb(0) is None  # unknown memory: no budget rather than a made-up one


def test_machine_ram_honours_a_container_limit(tmp_path):
    from train.data.corpus_dataset import machine_ram_bytes

    physical = machine_ram_bytes(cgroup_files=())
    assert physical and physical > 2**28
    limit, unlimited = tmp_path / "memory.max", tmp_path / "v2.max"
    limit.write_text(f"{2**30}\n")
    unlimited.write_text("max\n")
    assert machine_ram_bytes(cgroup_files=(str(unlimited),)) == physical
    assert machine_ram_bytes(cgroup_files=(str(limit), str(tmp_path / "absent"))) == 2**30


def test_the_default_budget_applies_when_none_is_given(corpus, monkeypatch):
    import train.data.corpus_dataset as cd

    full = cd.CorpusDataset(corpus[0], crop=32, threads=1, ram_gb=1e6)
    monkeypatch.setattr(cd, "default_ram_gb", lambda: full.bytes / 2 / 2**30)
    auto = cd.CorpusDataset(corpus[0], crop=32, threads=1)
    assert auto.bytes <= full.bytes / 2 and 0 < len(auto.table) < len(full.table)
    # --ram_gb reaches the loader that training opens.
    from train.config import make_config
    from train.data.mixed import open_corpus

    cfg = make_config(1, exp_name="r", train_data=str(corpus[0]), ram_gb=full.bytes / 3 / 2**30)
    assert open_corpus(cfg).bytes <= full.bytes / 3


def test_max_gap_curriculum(dataset):
    dataset.set_max_gap(1)
    used = dataset.table[np.diff(np.concatenate([[0], dataset.cum_weights])) > 0, 1]
    assert set(used.tolist()) == {1}
    dataset.set_max_gap(3)
    used = dataset.table[np.diff(np.concatenate([[0], dataset.cum_weights])) > 0, 1]
    assert set(used.tolist()) == {1, 2, 3}


def test_motion_power_favours_large_motion(corpus):
    from train.data.corpus_dataset import CorpusDataset

    def large_share(power):  # probability mass of the triplets above the median motion
        ds = CorpusDataset(corpus[0], crop=32, threads=1, motion_power=power)
        w = np.diff(np.concatenate([[0], ds.cum_weights]))
        return w[ds.table[:, 3] > np.median(ds.table[:, 3])].sum() / w.sum()

    uniform, default, strong = large_share(0.0), large_share(0.5), large_share(1.5)
    assert uniform < default < strong


# ---------------------------------------------------------------------------------------------
# synthetic triplets


@pytest.fixture(scope="module")
def pyramids(src):
    from train.data.synthetic import load_photo_pyramid

    return [load_photo_pyramid(p, min_side=64) for p in sorted((src / "photos").glob("*.png"))]


def test_synthetic_middle_is_the_t_half_render(pyramids):
    from train.data.synthetic import SyntheticConfig, random_scene, render, synthetic_triplet

    cfg = SyntheticConfig(size=64, layers=(2, 2))
    img0, imgt, img1 = synthetic_triplet(pyramids, np.random.default_rng(3), cfg)
    scene = random_scene(pyramids, np.random.default_rng(3), cfg)  # the same draws
    assert torch.allclose(imgt, render(scene, pyramids, 0.5), atol=1e-6)
    assert torch.allclose(img0, render(scene, pyramids, 0.0), atol=1e-6)
    assert img0.shape == (3, 64, 64) and img0.min() >= 0 and img1.max() <= 1
    # a real motion, and the middle is not a blend of the ends
    assert (img0 - img1).abs().mean() > 0.01
    assert (imgt - (img0 + img1) / 2).abs().mean() > 0.005


def test_synthetic_translation_is_exact(pyramids):
    from train.data.synthetic import Scene, _translate, render

    src = pyramids[0][0].float() / 255  # (3, H, W)
    cx, cy, d = 90, 70, 8  # a 32x32 view centred at (cx, cy), camera moving 8 px per half-step
    scene = Scene(
        size=32,
        photo=0,
        level=0,
        base=_translate(cx, cy),
        shift=np.array([d, 0.0]),
        rotate=0.0,
        zoom=0.0,
        perspective=np.zeros(2),
    )
    f0, ft, f1 = render(scene, pyramids, [0.0, 0.5, 1.0])
    for frame, dx in ((f0, -d), (ft, 0), (f1, d)):
        x0, y0 = cx - 16 + dx, cy - 16
        assert torch.allclose(frame, src[:, y0 : y0 + 32, x0 : x0 + 32], atol=1e-5)


def test_synthetic_motion_is_large_and_scalable(pyramids):
    from train.data.synthetic import SyntheticConfig, camera_motion, random_scene

    def motions(scale):
        rng = np.random.default_rng(0)
        cfg = SyntheticConfig(size=64, layers=(0, 0), motion_scale=scale)
        return np.array([camera_motion(random_scene(pyramids, rng, cfg)) for _ in range(40)])

    full, half = motions(1.0), motions(0.5)
    assert full.max() > 20 * 64 / 256  # tens of pixels between the end frames at 256²
    assert np.allclose(half, full / 2, rtol=0.3, atol=1.0)
    assert np.all(motions(0.0) < 1e-6)


def test_synthetic_layers_occlude(pyramids):
    from train.data.synthetic import SyntheticConfig, random_scene, render

    cfg = SyntheticConfig(size=64, layers=(1, 1))
    scene = random_scene(pyramids, np.random.default_rng(7), cfg)
    with_layer = render(scene, pyramids, 0.5)
    scene.layers = []
    without = render(scene, pyramids, 0.5)
    changed = (with_layer - without).abs().amax(0) > 1e-4
    assert 0.02 < changed.float().mean() < 0.98  # the layer covers part of the frame


def test_small_fast_layers_are_small_on_top_and_off_by_default(pyramids):
    from train.data.synthetic import SyntheticConfig, random_scene, render

    off = random_scene(pyramids, np.random.default_rng(5), SyntheticConfig(size=128, layers=(1, 1)))
    cfg = SyntheticConfig(size=128, layers=(1, 1), small_layers=(3, 3))
    on = random_scene(pyramids, np.random.default_rng(5), cfg)
    assert len(off.layers) == 1 and len(on.layers) == 4  # the large layer, then three small ones
    assert on.layers[0].radius == off.layers[0].radius  # the same draws before the small ones
    lo, hi = (r * 128 for r in cfg.small_radius)
    assert all(lo <= layer.radius <= hi for layer in on.layers[1:])
    small = on.layers[1:]
    on.layers = on.layers[:1]
    base = render(on, pyramids, [0.0, 1.0])
    on.layers += small
    full = render(on, pyramids, [0.0, 1.0])
    covered = (full - base).abs().amax(1) > 1e-4  # (2, S, S): where the small layers show
    assert 0 < covered.float().mean() < 0.1  # a few per cent of the frame, not large blobs
    assert not torch.equal(covered[0], covered[1])  # and they move


def test_train_flags_reach_the_corpus_loader(corpus):
    from train.config import make_config
    from train.data.mixed import open_corpus

    cfg = make_config(
        1,
        exp_name="a",
        train_data=str(corpus[0]),
        crop=32,
        photo_prob=0.5,
        small_objects=2,
        still_scene=0.4,
        motion_power=1.5,
    )
    ds = open_corpus(cfg).dataset
    assert ds.photo_prob == 0.5 and ds.synthetic.small_layers == (0, 2) and ds.synthetic.size == 32
    assert ds.synthetic.still_scene == 0.4 and ds.motion_power == 1.5
    default = open_corpus(make_config(1, exp_name="a", train_data=str(corpus[0]), crop=32)).dataset
    assert default.photo_prob == 0.15 and default.synthetic.small_layers == (0, 0)
    assert default.synthetic.still_scene == 0 and default.motion_power == 0.5


def test_a_still_scene_keeps_a_few_per_cent_of_its_motion(pyramids):
    from train.data.synthetic import SyntheticConfig, camera_motion, random_scene

    def motions(still):
        rng = np.random.default_rng(1)
        cfg = SyntheticConfig(size=64, layers=(0, 0), still_scene=still)
        return np.array([camera_motion(random_scene(pyramids, rng, cfg)) for _ in range(60)])

    moving, still, half = motions(0.0), motions(1.0), motions(0.5)
    assert moving.max() > 20 * 64 / 256
    assert still.max() <= 0.05 * moving.max() * 1.5  # at most 5 % of the usual range
    assert 0.2 < (half < 0.05 * moving.max()).mean() < 0.8  # about half the scenes stand still


def test_in_a_still_scene_only_the_small_layers_move(pyramids):
    from train.data.synthetic import SyntheticConfig, random_scene

    cfg = SyntheticConfig(size=64, layers=(2, 2), small_layers=(2, 2), still_scene=1.0)
    for seed in range(5):
        scene = random_scene(pyramids, np.random.default_rng(seed), cfg)
        large, small = scene.layers[:2], scene.layers[2:]
        assert all(np.linalg.norm(layer.velocity) <= 0.05 * cfg.layer_shift for layer in large)
        assert max(np.linalg.norm(layer.velocity) for layer in small) > 0.05 * cfg.small_shift
