"""Within-class spread and improved precision/recall: they tell varied samples from collapsed ones."""

from __future__ import annotations

import math

import pytest
import torch

from revkit.eval.diversity import mean_pairwise_distance, precision_recall, within_class_spread


def test_mean_pairwise_distance_against_a_hand_computed_case():
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])
    assert mean_pairwise_distance(points) == pytest.approx((5 + 4 + 3) / 3)
    assert math.isnan(mean_pairwise_distance(points[:1]))


def test_within_class_spread_averages_over_classes_and_ignores_distances_across_classes():
    images = torch.tensor([[0.0], [2.0], [100.0], [101.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert within_class_spread(images, labels) == pytest.approx((2 + 1) / 2)
    collapsed = torch.tensor([[5.0], [5.0], [100.0], [100.0]])
    assert within_class_spread(collapsed, labels) == 0.0


def test_precision_recall_flags_collapse_and_shift():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(600, 8, generator=g)
    same = torch.randn(600, 8, generator=g)
    p, r = precision_recall(real, same)
    assert p > 0.85 and r > 0.85  # two draws of one distribution
    collapsed = 0.05 * torch.randn(600, 8, generator=g)  # every sample near the mode
    p, r = precision_recall(real, collapsed)
    assert p > 0.85 and r < 0.2  # looks real, covers little
    shifted = torch.randn(600, 8, generator=g) + 6.0
    p, r = precision_recall(real, shifted)
    assert p < 0.05 and r < 0.05
    with pytest.raises(ValueError, match="more than 3 points"):
        precision_recall(real[:3], same)
