"""Losses of CKD training: tracking (GIoU, L1, focal on a Gaussian heat map) and coupled distillation
(style between the students, content from each teacher to its student)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------------ boxes


def box_cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def box_xywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    x, y, w, h = b.unbind(-1)
    return torch.stack([x, y, x + w, y + h], -1)


def giou_loss(pred_xyxy: torch.Tensor, gt_xyxy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (1 - GIoU) and mean IoU over boxes (N, 4) in x1, y1, x2, y2."""
    area_p = (pred_xyxy[:, 2] - pred_xyxy[:, 0]).clamp(min=0) * (pred_xyxy[:, 3] - pred_xyxy[:, 1]).clamp(min=0)
    area_g = (gt_xyxy[:, 2] - gt_xyxy[:, 0]).clamp(min=0) * (gt_xyxy[:, 3] - gt_xyxy[:, 1]).clamp(min=0)
    lt = torch.maximum(pred_xyxy[:, :2], gt_xyxy[:, :2])
    rb = torch.minimum(pred_xyxy[:, 2:], gt_xyxy[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_p + area_g - inter
    iou = inter / union.clamp(min=1e-7)
    lt_c = torch.minimum(pred_xyxy[:, :2], gt_xyxy[:, :2])
    rb_c = torch.maximum(pred_xyxy[:, 2:], gt_xyxy[:, 2:])
    hull = (rb_c - lt_c).clamp(min=0).prod(-1)
    giou = iou - (hull - union) / hull.clamp(min=1e-7)
    return (1 - giou).mean(), iou.mean()


# ------------------------------------------------------------------------------------------------ heat map


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest corner displacement that keeps IoU >= min_overlap (three cases)."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def gaussian_heatmap(boxes_xywh: torch.Tensor, grid: int, min_overlap: float = 0.7) -> torch.Tensor:
    """(B, grid, grid) targets: a Gaussian of sigma = diameter / 6 at the cell holding each box centre (peak
    exactly 1), radius from `gaussian_radius` in cell units. Boxes are normalised to the search crop."""
    B = boxes_xywh.shape[0]
    out = torch.zeros(B, grid, grid, dtype=torch.float32, device=boxes_xywh.device)
    b = boxes_xywh.detach().float().cpu() * grid
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                            indexing="ij")
    for i in range(B):
        x, y, w, h = b[i].tolist()
        cx, cy = int(min(max(x + w / 2, 0), grid - 1e-4)), int(min(max(y + h / 2, 0), grid - 1e-4))
        radius = max(0, int(gaussian_radius(h, w, min_overlap)))
        sigma = (2 * radius + 1) / 6
        g = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2))
        g[(xs - cx).abs() > radius] = 0
        g[(ys - cy).abs() > radius] = 0
        out[i] = g.to(out.device)
    return out


def focal_loss(pred: torch.Tensor, gt: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet focal loss; `pred` already in (0, 1) (clamped sigmoid), `gt` Gaussian targets, same shape."""
    pred = pred.float()
    pos = gt.eq(1).float()
    neg = 1 - pos
    neg_w = torch.pow(1 - gt, beta)
    pos_loss = (torch.log(pred) * torch.pow(1 - pred, alpha) * pos).sum()
    neg_loss = (torch.log(1 - pred) * torch.pow(pred, alpha) * neg_w * neg).sum()
    num_pos = pos.sum()
    if num_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / num_pos


@dataclass
class LossWeights:
    """The paper's weights."""

    giou: float = 2.0
    l1: float = 5.0
    focal: float = 1.0
    style: float = 0.01
    content: float = 0.1


def tracking_loss(out: dict, gt_xywh: torch.Tensor, weights: LossWeights,
                  heatmap: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """2 GIoU + 5 L1 on the box decoded at the predicted score map's argmax + 1 focal, for one head's output.
    `gt_xywh` (B, 4) normalised to the search crop."""
    pred = out["pred_boxes"].view(-1, 4)
    if not torch.isfinite(pred).all():
        raise FloatingPointError("network predicted non-finite boxes")
    pred_xyxy = box_cxcywh_to_xyxy(pred).float()
    gt_xyxy = box_xywh_to_xyxy(gt_xywh).clamp(0.0, 1.0).float()
    giou, iou = giou_loss(pred_xyxy, gt_xyxy)
    l1 = F.l1_loss(pred_xyxy, gt_xyxy)
    grid = out["score_map"].shape[-1]
    if heatmap is None:
        heatmap = gaussian_heatmap(gt_xywh, grid)
    focal = focal_loss(out["score_map"].squeeze(1), heatmap)
    total = weights.giou * giou + weights.l1 * l1 + weights.focal * focal
    return total, {"giou": giou.detach(), "l1": l1.detach(), "focal": focal.detach(), "iou": iou.detach()}


# ------------------------------------------------------------------------------------------------ distillation

STAT_EPS = 1e-5


def token_stats(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased standard deviation over tokens: (B, N, C) -> (B, C), (B, C)."""
    mu = feat.mean(dim=1)
    sigma = (feat.var(dim=1, unbiased=True) + STAT_EPS).sqrt()
    return mu, sigma


def style_loss(feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of mean_{B,C} [(mu_a - mu_b)^2 + (sigma_a - sigma_b)^2]; gradients reach both sides."""
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError(f"style loss needs the same non-zero number of layers, got {len(feats_a)} and {len(feats_b)}")
    total = feats_a[0].new_zeros(())
    for a, b in zip(feats_a, feats_b):
        mu_a, sd_a = token_stats(a.float())
        mu_b, sd_b = token_stats(b.float())
        total = total + ((mu_a - mu_b) ** 2 + (sd_a - sd_b) ** 2).mean()
    return total


def instance_normalise(feat: torch.Tensor) -> torch.Tensor:
    """Remove the style statistics: (x - mu) / sigma per sample and channel over tokens, no affine."""
    mu, sigma = token_stats(feat)
    return (feat - mu.unsqueeze(1)) / sigma.unsqueeze(1)


def content_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of MSE between instance-normalised student and (detached) teacher features."""
    if len(student_feats) != len(teacher_feats) or not student_feats:
        raise ValueError("content loss needs the same non-zero number of student and teacher layers")
    total = student_feats[0].new_zeros(())
    for s, t in zip(student_feats, teacher_feats):
        total = total + F.mse_loss(instance_normalise(s.float()), instance_normalise(t.detach().float()))
    return total
