"""Teacher-checked triplets (train/data/triplet_check.py): scoring, the loader's filter, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from corpus_helpers import BlendTeacher, square_corpus

from engine.errors import VfiError
from train.data.triplet_check import keep_mask, read_margins, triplet_margins, write_margins

GAPS = (1, 2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return square_corpus(tmp_path_factory, GAPS, frames=16)


def _dataset(corpus, **kw):
    from train.data.corpus_dataset import CorpusDataset

    return CorpusDataset(corpus, crop=32, threads=1, photo_prob=0.0, **kw)


class FirstFrameTeacher:
    def __call__(self, a, b):
        return {"pred": a, "flow": torch.zeros(a.shape[0], 4, *a.shape[2:])}


def test_margins_cover_every_triplet_and_measure_teacher_minus_blend(corpus):
    ds = _dataset(corpus)
    rec = triplet_margins(ds, BlendTeacher(), crop=48, batch=5)
    entries = [e for g in rec["clips"].values() for e in g.values()]
    assert sum(len(e["start"]) for e in entries) == len(ds.table)
    assert {g for g in rec["clips"]["videos/0.mp4"]} == {"1", "2"}
    assert all(m == 0.0 for e in entries for m in e["margin"])  # the blend against itself
    # Predicting the first frame is worse than the blend on a moving square: every margin < 0.
    worse = triplet_margins(ds, FirstFrameTeacher(), crop=64, batch=4)
    assert all(m < 0 for g in worse["clips"].values() for e in g.values() for m in e["margin"])
    # A window larger than the frames leaves every triplet unscored (null), not dropped.
    none = triplet_margins(ds, BlendTeacher(), crop=128)
    assert all(m is None for g in none["clips"].values() for e in g.values() for m in e["margin"])


def test_the_loader_drops_exactly_the_triplets_below_the_margin(corpus, tmp_path):
    ds = _dataset(corpus)
    rec = triplet_margins(ds, BlendTeacher(), crop=48)
    # Give clip 0's gap-2 triplets a poor margin and one of clip 1's an unscored (null) one.
    low = rec["clips"]["videos/0.mp4"]["2"]
    low["margin"] = [-1.0] * len(low["margin"])
    rec["clips"]["videos/1.mp4"]["1"]["margin"][0] = None
    path = write_margins(rec, tmp_path / "margins.json")
    assert read_margins(path) == json.loads(path.read_text())

    files = [c.name for c in ds.clips]
    keep = keep_mask(ds.table, files, read_margins(path), min_margin=-0.5)
    assert (~keep).sum() == len(low["start"])
    filtered = _dataset(corpus, margins=path, min_margin=-0.5)
    assert filtered.dropped_by_teacher == len(low["start"])
    assert len(filtered.table) == len(ds.table) - len(low["start"])
    clip0 = files.index("videos/0.mp4")
    assert not ((filtered.table[:, 0] == clip0) & (filtered.table[:, 1] == 2)).any()
    # Threshold above every margin: everything scored goes, the unscored triplet stays.
    strict = _dataset(corpus, margins=rec, min_margin=0.5)
    assert len(strict.table) == 1
    # Without a margins file nothing is dropped.
    assert _dataset(corpus).dropped_by_teacher == 0


def test_bad_margins_files_give_one_line_errors(tmp_path):
    with pytest.raises(VfiError, match="does not exist"):
        read_margins(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(VfiError, match="is not a margins file"):
        read_margins(bad)
    bad.write_text(json.dumps({"crop": 256}))
    with pytest.raises(VfiError, match="no 'clips' table"):
        read_margins(bad)


def test_check_triplets_command_writes_the_margins_and_refuses_to_overwrite(
    corpus, tmp_path, monkeypatch
):
    from train import teacher as T
    from vfi_cli.main import cli

    monkeypatch.setattr(T.RifeTeacher, "load", classmethod(lambda cls, path=None: cls().eval()))
    out = tmp_path / "m.json"
    args = ["train", "check-triplets", str(corpus), str(out), "--crop", "32", "--device", "cpu"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "triplets" in res.output and "scored" in res.output
    rec = read_margins(out)
    margins = [m for g in rec["clips"].values() for e in g.values() for m in e["margin"]]
    assert margins and all(m is not None and np.isfinite(m) for m in margins)
    bad = CliRunner().invoke(cli, [*args[:4], "--device", "gpu0", "--force"])
    assert bad.exit_code != 0 and "--device must be" in bad.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0 and "already exists" in again.output
    assert "Traceback" not in again.output
    other = tmp_path / "other.json"
    for packs, says in (("0,a", "--packs takes pack numbers"), ("0,0", "distinct non-negative")):
        res = CliRunner().invoke(cli, [*args[:2], str(corpus), str(other), "--packs", packs])
        assert res.exit_code == 1 and says in res.output and "Traceback" not in res.output
        assert not other.exists()


def test_training_flags_need_each_other(corpus):
    from train.config import make_config

    with pytest.raises(VfiError, match="needs --triplet_margins"):
        make_config(1, exp_name="x", train_data=str(corpus), min_teacher_margin=1.0)
    with pytest.raises(VfiError, match="filters --train_data"):
        make_config(1, exp_name="x", data_path="vimeo", triplet_margins="m.json")
    cfg = make_config(1, exp_name="x", train_data=str(corpus), triplet_margins="m.json")
    assert cfg.min_teacher_margin == 0.0
