"""benchmarks/gap_linearity.py: per-gap sampling with the loader's weights, and the scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from corpus_helpers import BlendTeacher, square_corpus

from benchmarks.gap_linearity import draw_rows, measure, row_weights, summarise

GAPS = (1, 2, 4)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from train.data.corpus_dataset import CorpusDataset

    corpus = square_corpus(tmp_path_factory, GAPS, frames=20)
    torch.manual_seed(0)
    return CorpusDataset(corpus, crop=32, threads=1)


def test_rows_are_drawn_from_the_asked_gap_by_the_loaders_weights(dataset):
    rng = np.random.default_rng(0)
    w = row_weights(dataset)
    assert w.shape == (len(dataset.table),) and (w >= 0).all() and w.sum() > 0
    for g in GAPS:
        rows = draw_rows(dataset, g, 50, rng)
        assert len(rows) == 50 and (dataset.table[rows, 1] == g).all()
    with pytest.raises(ValueError, match="no gap-3 triplets"):
        draw_rows(dataset, 3, 5, rng)


def test_a_teacher_that_blends_has_zero_margin_and_its_motion_is_read(dataset):
    rows = measure(dataset, BlendTeacher(shift=1.5), per_gap=6, crop=32, seed=0)
    assert sorted({r["gap"] for r in rows}) == list(GAPS)
    assert all(r["teacher"] == r["blend"] for r in rows)
    assert all(r["motion"] == pytest.approx(3.0) for r in rows)  # 2 x |1.5 px|
    assert all(np.isfinite(r["blend"]) and r["blend"] > 10 for r in rows)
    table = summarise(rows)
    lines = table.splitlines()
    assert len(lines) == 2 + len(GAPS)  # header, rule, one line per gap
    assert len({line.count("|") for line in lines}) == 1  # every line has the header's columns
    assert "| 1 | 6 | +0.00 (6) |" in table and "0% |" in table


def test_bad_packs_are_a_usage_error_before_anything_loads(tmp_path, capsys):
    from benchmarks.gap_linearity import main

    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "no_corpus"), "--packs", "0,a"])
    assert e.value.code == 2
    assert "--packs takes pack numbers like 0,1,5" in capsys.readouterr().err
