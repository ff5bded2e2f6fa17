"""A small, real template-matching network with CKDNet's interface, and frames with an occluded target.

The correlation network scores every search cell by the normalised cross-correlation of the template's
central region with the search crop around that cell, so its score really drops when the target is hidden:
what the status tests need, without trained CKD weights.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ckd_ros.model import ModelConfig


class CorrelationNet(torch.nn.Module):
    def __init__(self, config: ModelConfig | None = None, scales: tuple[float, ...] = (1.0,)) -> None:
        super().__init__()
        self.config = config or ModelConfig()  # only the crop sizes, grids and ce_loc are read
        self.scales = scales
        self.register_buffer("dummy", torch.zeros(1))   # gives the module a device

    def forward(self, template_rgb, template_tir, search_rgb, search_tir, ce_template_mask=None):
        c = self.config
        k, d = c.template_size // 2, 4            # the target spans half the template; work at 1/4 scale
        t0 = (c.template_size - k) // 2
        z = F.avg_pool2d(torch.cat([template_rgb, template_tir], 1)[:, :, t0:t0 + k, t0:t0 + k], d)
        x = F.avg_pool2d(torch.cat([search_rgb, search_tir], 1), d)
        best = None
        # scale 1: the target as large as in the template; 0.5: half as large (a twice wider search crop)
        for scale in self.scales:
            zs = z if scale == 1.0 else F.avg_pool2d(z, 2)
            score, offset = self._match(x, zs)
            size = torch.full_like(offset, 0.25 * scale)
            if best is None:
                best = [score, size, offset]
            else:
                better = score > best[0] + 0.05           # prefer the template's own scale on near-ties
                best = [torch.where(better, score, best[0]), torch.where(better, size, best[1]),
                        torch.where(better, offset, best[2])]
        return {"score_map": best[0].clamp(1e-4, 1 - 1e-4), "size_map": best[1], "offset_map": best[2]}

    def _match(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense normalised cross-correlation, reduced to the best position inside every grid cell."""
        g = self.config.search_grid
        z = z - z.mean(dim=(2, 3), keepdim=True)
        n_out, kd = x.shape[-1], z.shape[-1]
        num = F.conv2d(x, z, padding=kd // 2)[:, :, :n_out, :n_out]
        ones = torch.ones_like(z)
        s1 = F.conv2d(x, ones, padding=kd // 2)[:, :, :n_out, :n_out]
        s2 = F.conv2d(x * x, ones, padding=kd // 2)[:, :, :n_out, :n_out]
        var = (s2 - s1 * s1 / float(ones.numel())).clamp_min(0)
        ncc = num / (z.norm() * var.sqrt() + 1e-6)
        cell = n_out // g
        peak, idx = F.max_pool2d(ncc, cell, return_indices=True)
        grid = torch.arange(g, device=x.device, dtype=torch.float32)
        off_x = (idx % n_out).float() / cell - grid.view(1, 1, 1, g)
        off_y = (idx // n_out).float() / cell - grid.view(1, 1, g, 1)
        return peak, torch.cat([off_x, off_y], 1)


def occlusion_frames(n: int = 30, occluded: range = range(10, 20), size: int = 40, seed: int = 0
                     ) -> tuple[list[np.ndarray], list[np.ndarray], list[list[float]]]:
    """A textured square drifting right over a noisy background; a flat grey block hides it in
    ``occluded`` frames. Returns RGB frames, 8-bit thermal frames and the true boxes."""
    rng = np.random.default_rng(seed)
    H, W = 240, 320
    background = rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    target = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    rgbs, thermals, boxes = [], [], []
    for t in range(n):
        x, y = 100 + 2 * t, 100
        frame = background.copy()
        frame[y:y + size, x:x + size] = target
        if t in occluded:
            frame[y - 20:y + size + 20, x - 20:x + size + 20] = 128
        rgbs.append(frame)
        thermals.append(frame.mean(axis=2).astype(np.uint8))
        boxes.append([float(x), float(y), float(size), float(size)])
    return rgbs, thermals, boxes
