"""benchmarks/tta_vs_rife.py: the flip augmentation given to the reference, and the paired gap."""

from __future__ import annotations

import pytest
import torch

from benchmarks.tta_vs_rife import flip_average, paired


def test_flip_average_is_the_mean_of_the_plain_and_the_flipped_back_prediction():
    torch.manual_seed(0)
    a, b = torch.rand(1, 3, 6, 8), torch.rand(1, 3, 6, 8)
    ramp = torch.linspace(0, 1, 8).expand(1, 3, 6, 8)

    def biased(x, y):  # not flip-equivariant: a fixed left-to-right ramp is added
        return (x + y) / 2 + ramp

    plain, tta = flip_average(biased, a, b)
    assert torch.equal(plain, biased(a, b))
    # The flipped pass adds the ramp reversed once flipped back, so the average adds its mean.
    torch.testing.assert_close(tta, (a + b) / 2 + 0.5, atol=1e-6, rtol=0)

    def blend(x, y):  # flip-equivariant: the augmentation changes nothing
        return (x + y) / 2

    plain, tta = flip_average(blend, a, b)
    torch.testing.assert_close(tta, plain, atol=1e-7, rtol=0)


def test_paired_is_b_minus_a_per_sample():
    names = ["x", "y", "z", "w"]
    m = paired("ucf101", names, [30.0, 31.0, 32.0, 33.0], [30.5, 31.5, 31.0, 33.0])
    assert m["delta"] == pytest.approx(0.0)
    assert (m["better"], m["worse"], m["same"]) == (2, 1, 1)
    lo, hi = m["interval"]
    assert lo < 0 < hi
