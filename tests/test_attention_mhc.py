"""Gated window attention equals its slow reference; Sinkhorn and mHC behave as specified."""

from __future__ import annotations

import pytest
import torch

from engine.model.mhc import HyperConnection, PlainResidual, sinkhorn_knopp
from engine.model.window_attention import GatedWindowAttention, window_attention_reference


@pytest.mark.parametrize(
    ("h", "w", "window", "shift"),
    [
        (8, 8, 4, False),
        (8, 8, 4, True),
        (6, 7, 4, True),
        (5, 9, 4, False),
        (9, 10, 4, True),
        (3, 3, 4, True),
    ],
)
def test_window_attention_matches_reference(h, w, window, shift):
    torch.manual_seed(h * 31 + w)
    m = GatedWindowAttention(16, 2, window, shift).double()
    x = torch.randn(2, h, w, 2, 16, dtype=torch.float64)
    fast, ref = m(x), window_attention_reference(m, x)
    assert ((fast - ref).norm() / ref.norm()).item() < 1e-10


def test_window_attention_mixes_frames_within_a_window():
    """A token's output depends on the other frame at the same place, not on far windows."""
    torch.manual_seed(0)
    m = GatedWindowAttention(8, 1, 4, shift=False).double()
    x = torch.randn(1, 8, 8, 2, 8, dtype=torch.float64)
    y = m(x)
    x2 = x.clone()
    x2[0, 0, 0, 1] += 1  # frame 1, window (0, 0)
    x2[0, 7, 7, 0] += 1  # far window
    y2 = m(x2)
    assert not torch.allclose(y[0, 1, 1, 0], y2[0, 1, 1, 0])
    torch.testing.assert_close(y[0, 4:, :4], y2[0, 4:, :4])


def test_sinkhorn_is_doubly_stochastic():
    logits = torch.randn(5, 4, 4, dtype=torch.float64)
    m = sinkhorn_knopp(logits, iters=20)
    assert (m >= 0).all()
    torch.testing.assert_close(m.sum(-2), torch.ones(5, 4, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(m.sum(-1), torch.ones(5, 4, dtype=torch.float64), rtol=0, atol=1e-3)


def test_sinkhorn_is_shift_invariant_and_stable():
    logits = torch.randn(4, 4, dtype=torch.float64)
    torch.testing.assert_close(sinkhorn_knopp(logits), sinkhorn_knopp(logits + 1000.0))


def test_mhc_starts_as_a_plain_residual():
    torch.manual_seed(0)
    fn = torch.nn.Linear(8, 8).double()
    hc = HyperConnection(8, fn, streams=4).double()
    plain = PlainResidual(8, fn).double()
    plain.norm.load_state_dict(hc.norm.state_dict())
    x = torch.randn(3, 8, dtype=torch.float64)
    streams = x[:, None, :].expand(3, 4, 8)
    out = hc(streams).mean(1)
    torch.testing.assert_close(out, plain(x), rtol=0, atol=2e-3)
    pre, post, R = hc.coefficients(streams)
    torch.testing.assert_close(R.sum(-2), torch.ones(3, 4, dtype=torch.float64))
    assert (pre > 0).all() and (pre < 1).all() and (post > 0).all() and (post < 2).all()
