"""Each CKD training loss against values computed by hand on small tensors."""
from __future__ import annotations

import math

import pytest
import torch

from ckd_ros.training.losses import (LossWeights, content_loss, focal_loss, gaussian_heatmap, gaussian_radius,
                                     giou_loss, style_loss, tracking_loss)


def test_giou_of_identical_boxes_is_zero_and_of_disjoint_boxes_counts_the_hull() -> None:
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    loss, iou = giou_loss(a, a)
    assert float(loss) == pytest.approx(0.0) and float(iou) == pytest.approx(1.0)
    b = torch.tensor([[2.0, 0.0, 3.0, 1.0]])
    # IoU 0, hull 3x1 = 3, union 2: GIoU = 0 - (3 - 2) / 3 -> loss 4/3
    loss, iou = giou_loss(a, b)
    assert float(loss) == pytest.approx(4 / 3) and float(iou) == 0.0


def test_giou_of_half_overlapping_boxes() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
    b = torch.tensor([[1.0, 0.0, 3.0, 1.0]])
    # inter 1, union 3, hull 3: GIoU = 1/3
    loss, iou = giou_loss(a, b)
    assert float(iou) == pytest.approx(1 / 3) and float(loss) == pytest.approx(2 / 3)


def test_focal_loss_matches_the_centernet_formula() -> None:
    pred = torch.tensor([[0.8, 0.1], [0.3, 0.5]])
    gt = torch.tensor([[1.0, 0.5], [0.0, 0.2]])
    pos = math.log(0.8) * 0.2 ** 2
    neg = (math.log(0.9) * 0.1 ** 2 * 0.5 ** 4 + math.log(0.7) * 0.3 ** 2 * 1.0 + math.log(0.5) * 0.5 ** 2 * 0.8 ** 4)
    assert float(focal_loss(pred, gt)) == pytest.approx(-(pos + neg) / 1, rel=1e-6)


def test_gaussian_radius_and_heat_map_peak_at_the_box_centre_cell() -> None:
    # square box 4x4 cells: the three CenterNet cases, smallest wins
    r = gaussian_radius(4.0, 4.0, 0.7)
    c1 = 4 * 4 * 0.3 / 1.7
    r1 = (8 + math.sqrt(64 - 4 * c1)) / 2
    r2 = (16 + math.sqrt(256 - 16 * 0.3 * 16)) / 2
    r3 = (-2 * 0.7 * 8 + math.sqrt((2 * 0.7 * 8) ** 2 - 4 * 2.8 * (-0.3 * 16))) / 2
    assert r == pytest.approx(min(r1, r2, r3))
    box = torch.tensor([[0.25, 0.25, 0.5, 0.5]])  # centre 0.5 -> cell 8 of 16
    hm = gaussian_heatmap(box, 16)
    assert hm.shape == (1, 16, 16)
    assert float(hm[0, 8, 8]) == 1.0 and int(hm.flatten().argmax()) == 8 * 16 + 8
    radius = int(gaussian_radius(8.0, 8.0, 0.7))
    sigma = (2 * radius + 1) / 6
    assert float(hm[0, 8, 9]) == pytest.approx(math.exp(-1 / (2 * sigma ** 2)), rel=1e-6)
    assert float(hm[0, 8, 8 + radius + 1]) == 0.0


def test_style_loss_is_the_squared_difference_of_token_statistics() -> None:
    a = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])  # tokens x channels: ch0 mean 2 std sqrt(2); ch1 0, 0
    b = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])  # ch0 0, 0; ch1 mean 1 std 0
    eps = 1e-5
    mu_term = ((2 - 0) ** 2 + (0 - 1) ** 2) / 2
    sd_term = ((math.sqrt(2 + eps) - math.sqrt(eps)) ** 2 + (math.sqrt(eps) - math.sqrt(eps)) ** 2) / 2
    assert float(style_loss([a], [b])) == pytest.approx(mu_term + sd_term, rel=1e-5)
    assert float(style_loss([a, a], [b, b])) == pytest.approx(2 * (mu_term + sd_term), rel=1e-5)


def test_content_loss_ignores_style_and_compares_normalised_content() -> None:
    s = torch.tensor([[[1.0], [2.0], [3.0]]])
    # same content, other mean and scale: no content difference
    assert float(content_loss([s], [10 * s + 5])) == pytest.approx(0.0, abs=1e-8)
    t = torch.tensor([[[3.0], [2.0], [1.0]]])  # reversed: normalised -1,0,1 vs 1,0,-1
    expected = ((-1 - 1) ** 2 + 0 + (1 + 1) ** 2) / 3 * (1 / (1 + 1e-5))
    assert float(content_loss([s], [t])) == pytest.approx(expected, rel=1e-4)


def test_tracking_loss_is_two_giou_five_l1_one_focal() -> None:
    g = 4
    score = torch.full((1, 1, g, g), 0.01)
    score[0, 0, 1, 2] = 0.9  # argmax cell x=2, y=1
    size = torch.zeros(1, 2, g, g)
    size[0, :, 1, 2] = torch.tensor([0.5, 0.25])
    offset = torch.zeros(1, 2, g, g)
    offset[0, :, 1, 2] = torch.tensor([0.5, 0.5])
    pred = torch.tensor([[[(2 + 0.5) / 4, (1 + 0.5) / 4, 0.5, 0.25]]])
    out = {"score_map": score, "size_map": size, "offset_map": offset, "pred_boxes": pred}
    gt = torch.tensor([[0.375, 0.25, 0.5, 0.25]])  # xywh: the same box as predicted
    hm = gaussian_heatmap(gt, g)
    total, parts = tracking_loss(out, gt, LossWeights(), hm)
    assert float(parts["giou"]) == pytest.approx(0.0, abs=1e-6)
    assert float(parts["l1"]) == pytest.approx(0.0, abs=1e-6)
    assert float(total) == pytest.approx(float(focal_loss(score.squeeze(1), hm)), rel=1e-6)
    gt2 = torch.tensor([[0.375, 0.25, 0.5, 0.5]])  # taller ground truth: y2 differs by 0.25
    total2, parts2 = tracking_loss(out, gt2, LossWeights(), gaussian_heatmap(gt2, g))
    assert float(parts2["l1"]) == pytest.approx(0.25 / 4)
    assert float(total2) == pytest.approx(2 * float(parts2["giou"]) + 5 * 0.0625 + float(parts2["focal"]), rel=1e-6)
