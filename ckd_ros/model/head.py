"""OSTrack-style centre head: score, offset and size branches on the fused 16x16 search feature map."""
from __future__ import annotations

import torch
from torch import nn

BRANCHES = ("ctr", "offset", "size")
OUT_CHANNELS = {"ctr": 1, "offset": 2, "size": 2}


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    # keys .0 (conv) and .1 (BatchNorm2d) match the official checkpoints
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=True), nn.BatchNorm2d(cout), nn.ReLU())


def _sigmoid_clamped(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x.sigmoid(), min=1e-4, max=1 - 1e-4)


class CenterHead(nn.Module):
    """Three branches, each conv3x3+BN+ReLU with widths in -> ch -> ch/2 -> ch/4 -> ch/8, then a 1x1 conv."""

    def __init__(self, in_channels: int, channels: int = 256) -> None:
        super().__init__()
        widths = [in_channels, channels, channels // 2, channels // 4, channels // 8]
        for name in BRANCHES:
            for i in range(4):
                self.add_module(f"conv{i + 1}_{name}", conv_bn_relu(widths[i], widths[i + 1]))
            self.add_module(f"conv5_{name}", nn.Conv2d(widths[4], OUT_CHANNELS[name], kernel_size=1))

    def branch(self, name: str, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 6):
            x = getattr(self, f"conv{i}_{name}")(x)
        return x

    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(score_map, size_map, offset_map) from a (B, in_channels, G, G) feature map."""
        score = _sigmoid_clamped(self.branch("ctr", x))
        offset = self.branch("offset", x)
        size = _sigmoid_clamped(self.branch("size", x))
        return score, size, offset

    @staticmethod
    def cal_bbox(score_map: torch.Tensor, size_map: torch.Tensor, offset_map: torch.Tensor,
                 return_score: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B, 4) normalised (cx, cy, w, h) at the argmax cell of ``score_map`` (first maximum in row-major
        order); size and offset are read from their own maps at that cell (no +0.5 on the cell index)."""
        feat_sz = score_map.shape[-1]
        max_score, idx = torch.max(score_map.flatten(1), dim=1, keepdim=True)
        idx_y = torch.div(idx, feat_sz, rounding_mode="floor")
        idx_x = idx % feat_sz
        gidx = idx.unsqueeze(1).expand(idx.shape[0], 2, 1)
        size = size_map.flatten(2).gather(dim=2, index=gidx).squeeze(-1)
        offset = offset_map.flatten(2).gather(dim=2, index=gidx).squeeze(-1)
        dt = offset.dtype
        bbox = torch.cat([(idx_x.to(dt) + offset[:, :1]) / feat_sz,
                          (idx_y.to(dt) + offset[:, 1:]) / feat_sz, size], dim=1)
        return (bbox, max_score) if return_score else bbox

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        score, size, offset = self.maps(x)
        boxes = self.cal_bbox(score, size, offset)
        return {"score_map": score, "size_map": size, "offset_map": offset,
                "pred_boxes": boxes.view(x.shape[0], 1, 4)}
