"""benchmarks/pan_gap.py: the panned windows of a dev triplet, and the pans drawn for them."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.pan_gap import DIRECTIONS, pan_for, pan_windows


def _coordinates(h: int, w: int) -> torch.Tensor:
    """(1, 2, h, w): each pixel holds its own (y, x)."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([yy, xx])[None].float()


@pytest.mark.parametrize("pan", [(0, 0), (6, -10), (-12, 4), (0, 20)])
def test_windows_pan_linearly_and_are_as_large_as_the_frame_allows(pan):
    frame = _coordinates(30, 40)
    a, gt, b = pan_windows(frame, frame, frame, pan)
    assert a.shape == gt.shape == b.shape == (1, 2, 30 - abs(pan[0]), 40 - abs(pan[1]))
    origin = a[0, :, 0, 0]
    assert (b[0, :, 0, 0] - origin).tolist() == list(pan)
    assert (gt[0, :, 0, 0] - origin).tolist() == [pan[0] / 2, pan[1] / 2]
    # every window is a plain cut: its coordinates step by one pixel along each axis
    for win in (a, gt, b):
        h, w = win.shape[-2:]
        steps = _coordinates(h, w)[0]
        assert torch.equal(win[0] - win[0, :, :1, :1], steps)


def test_bad_pans_are_refused():
    frame = _coordinates(10, 10)
    with pytest.raises(ValueError, match="even"):
        pan_windows(frame, frame, frame, (3, 0))
    with pytest.raises(ValueError, match="no window"):
        pan_windows(frame, frame, frame, (10, 0))


def test_pans_are_even_have_the_speed_and_turn_through_every_direction():
    pans = [pan_for(16, k) for k in range(DIRECTIONS)]
    assert all(p % 2 == 0 for pan in pans for p in pan)
    assert all(abs(math.hypot(*pan) - 32) <= 2 for pan in pans)  # twice 16 px, rounded to even
    assert len(set(pans)) == DIRECTIONS and pan_for(16, DIRECTIONS) == pans[0]
    assert pan_for(0, 3) == (0, 0)


@pytest.mark.parametrize("speeds", ["8,a", "-8"])
def test_bad_speeds_are_a_usage_error_before_anything_loads(speeds, monkeypatch, capsys):
    from benchmarks.pan_gap import main

    monkeypatch.setattr("sys.argv", ["pan_gap.py", "ucf101", "no_such_set", "--speeds", speeds])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and "--speeds" in capsys.readouterr().err


def _result(model: str, speeds: list[float], ours: float):
    """A pan_gap result of two triplets whose PSNR is ``ours`` + speed / 8 (RIFE HDv3: 30)."""
    from pathlib import Path
    from types import SimpleNamespace

    from benchmarks.pan_gap import pan_result

    args = SimpleNamespace(set="sequence", path=Path("eval/drift854"), model=model, limit=0)
    names = ["00001", "00002"]
    scores = {s: {"ours": [ours + s / 8, ours + 1 + s / 8], "rife": [30.0, 30.0]} for s in speeds}
    return pan_result(args, names, speeds, scores)


def test_json_results_pair_two_models_window_by_window_in_vfi_compare(tmp_path):
    from benchmarks.pan_gap import write_json
    from train.compare import compare, load_result

    for name, ours in (("a", 33.0), ("b", 33.5)):
        write_json(tmp_path / f"{name}.json", _result(name, [8, 16], ours))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no .part left
    a, b = (load_result(tmp_path / f"{n}.json") for n in "ab")
    assert [i["name"] for i in a["items"]] == ["00001@8px", "00002@8px", "00001@16px", "00002@16px"]
    assert a["items"][2] == {"name": "00001@16px", "psnr": 35.0, "rife_psnr": 30.0}
    psnr = compare(a, b)["metrics"]["psnr"]
    assert psnr["delta"] == pytest.approx(0.5) and psnr["better"] == 4


def test_json_results_over_other_pans_are_refused_by_vfi_compare():
    from engine.errors import VfiError
    from train.compare import compare

    with pytest.raises(VfiError, match="pan_speeds"):
        compare(_result("a", [8, 16], 33.0), _result("b", [8], 33.0))


def test_json_into_a_missing_folder_is_a_usage_error_before_anything_loads(tmp_path, monkeypatch):
    from benchmarks.pan_gap import main

    out = tmp_path / "no_such_folder" / "a.json"
    monkeypatch.setattr("sys.argv", ["pan_gap.py", "ucf101", "no_such_set", "--json", str(out)])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and not out.parent.exists()


def test_teacher_scores_come_back_from_an_earlier_json_file_of_the_same_pans(tmp_path):
    from benchmarks.pan_gap import teacher_scores, write_json

    write_json(tmp_path / "a.json", _result("a", [8, 16], 33.0))
    dataset = "sequence drift854 under an added pan"
    cached = teacher_scores(tmp_path / "a.json", dataset, [8, 16])
    assert cached == {f"{n}@{s}px": 30.0 for n in ("00001", "00002") for s in (8, 16)}


@pytest.mark.parametrize(
    "dataset, speeds",
    [
        ("sequence crowd960 under an added pan", [8, 16]),
        ("sequence drift854 under an added pan", [8]),
    ],
)
def test_teacher_scores_of_another_set_or_other_pans_are_refused(tmp_path, dataset, speeds):
    from benchmarks.pan_gap import teacher_scores, write_json
    from engine.errors import VfiError

    write_json(tmp_path / "a.json", _result("a", [8, 16], 33.0))
    with pytest.raises(VfiError, match="same set and --speeds"):
        teacher_scores(tmp_path / "a.json", dataset, speeds)
