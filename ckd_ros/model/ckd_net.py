"""CKDNet: RGB student + thermal student (separate ViTs) fused by channel concatenation into one head."""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .head import CenterHead
from .mce import lockstep_forward
from .vit import ViTBackbone


class CKDNet(nn.Module):
    """The inference network of CKD (official keys ``rgb_branch.*``, ``tir_branch.*``, ``box_head.*``).

    ``forward`` returns ``score_map`` (B,1,G,G), ``size_map`` (B,2,G,G), ``offset_map`` (B,2,G,G),
    ``pred_boxes`` (B,1,4; normalised cx, cy, w, h from the un-windowed score map), ``backbone_feat``
    (B, T+S, 2C) and, with candidate elimination, ``ce_kept`` / ``ce_removed`` (global search indices per CE
    layer; kept ones in kept order) and ``ce_scores`` / ``ce_score_index``."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.rgb_branch = ViTBackbone(self.config)
        self.tir_branch = ViTBackbone(self.config)
        self.box_head = CenterHead(2 * self.config.embed_dim, self.config.head_channels)
        # which students' features reach the head, (rgb, thermal). CKD uses both; one alone zeroes the other's
        # features the way training's modality dropout does. A diagnostic (what the head makes of one
        # modality when the other misleads it), not a tracking mode: the fast paths refuse it.
        self.head_students: tuple[bool, bool] = (True, True)

    def set_ce(self, ce_loc: tuple[int, ...] | list[int], ce_keep_ratio: float | tuple[float, ...]) -> None:
        """Switch the elimination schedule (no weights change; the paper fine-tunes heads for MCE)."""
        self.config = self.config.with_ce(ce_loc, ce_keep_ratio)
        for bb in (self.rgb_branch, self.tir_branch):
            bb.config = self.config

    def _check_inputs(self, template_rgb: torch.Tensor, template_tir: torch.Tensor, search_rgb: torch.Tensor,
                      search_tir: torch.Tensor) -> None:
        c = self.config
        for name, t, side in (("template_rgb", template_rgb, c.template_size),
                              ("template_tir", template_tir, c.template_size),
                              ("search_rgb", search_rgb, c.search_size), ("search_tir", search_tir, c.search_size)):
            if t.dim() != 4 or t.shape[1] != 3 or t.shape[2] != side or t.shape[3] != side:
                raise ValueError(f"{name} must have shape (B, 3, {side}, {side}); got {tuple(t.shape)}")
        # int(): under ONNX tracing sizes are traced values, each a distinct object in a set
        if len({int(t.shape[0]) for t in (template_rgb, template_tir, search_rgb, search_tir)}) != 1:
            raise ValueError("all four inputs must have the same batch size")

    def head_input(self, feat: torch.Tensor) -> torch.Tensor:
        """Last S tokens of the fused features as a (B, 2C, G, G) map, token n = y*G + x."""
        g = self.config.search_grid
        s = feat[:, -self.config.num_search_tokens:]
        return s.permute(0, 2, 1).contiguous().view(feat.shape[0], feat.shape[2], g, g)

    def forward(self, template_rgb: torch.Tensor, template_tir: torch.Tensor, search_rgb: torch.Tensor,
                search_tir: torch.Tensor, ce_template_mask: torch.Tensor | None = None) -> dict:
        self._check_inputs(template_rgb, template_tir, search_rgb, search_tir)
        c = self.config
        res = lockstep_forward([self.rgb_branch, self.tir_branch], [template_rgb, template_tir],
                               [search_rgb, search_tir], c.ce_loc, c.ce_keep_ratio, ce_template_mask)
        outputs = res.outputs
        if self.head_students != (True, True):
            outputs = [o if seen else torch.zeros_like(o) for o, seen in zip(outputs, self.head_students)]
        feat = torch.cat(outputs, dim=2)
        out = self.box_head(self.head_input(feat))
        out["backbone_feat"] = feat
        if res.kept:
            out.update(ce_kept=res.kept, ce_removed=res.removed, ce_scores=res.scores,
                       ce_score_index=res.score_index)
        return out
