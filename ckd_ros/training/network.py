"""The CKD training network: two students (the inference network's ``rgb_branch``/``tir_branch`` and fused
``box_head``), two online teachers (``teacher_rgb``/``teacher_tir``) with their own heads
(``box_head_v``/``box_head_i``). Attribute order = the official training state-dict order, so a training
checkpoint loads into the inference network with ``ckd_ros.model.load_checkpoint`` (it ignores teachers).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ckd_ros.model import CenterHead, CKDNet, ModelConfig, ViTBackbone, lockstep_forward

INFERENCE_PREFIXES = ("rgb_branch.", "tir_branch.", "box_head.")


def _init_vit_(bb: ViTBackbone) -> None:
    """Truncated-normal init of a ViT trained from scratch (the usual timm recipe)."""
    for m in bb.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for p in (bb.pos_embed_z, bb.pos_embed_x, bb.pos_embed, bb.cls_token):
        nn.init.trunc_normal_(p, std=0.02)
    w = bb.patch_embed.proj.weight
    nn.init.xavier_uniform_(w.view(w.shape[0], -1))
    nn.init.zeros_(bb.patch_embed.proj.bias)


class CKDTrainingNet(nn.Module):
    def __init__(self, config: ModelConfig, share_students: bool = False) -> None:
        super().__init__()
        self.config = config
        self.rgb_branch = ViTBackbone(config)
        # the paper's option: one network for both students (tir_branch then aliases rgb_branch)
        self.tir_branch = self.rgb_branch if share_students else ViTBackbone(config)
        self.box_head = CenterHead(2 * config.embed_dim, config.head_channels)
        self.teacher_rgb = ViTBackbone(config)
        self.teacher_tir = ViTBackbone(config)
        self.box_head_v = CenterHead(config.embed_dim, config.head_channels)
        self.box_head_i = CenterHead(config.embed_dim, config.head_channels)
        for bb in (self.rgb_branch, self.tir_branch, self.teacher_rgb, self.teacher_tir):
            _init_vit_(bb)
            # kept only for the official key layout; never used in the forward. Without gradients DDP does
            # not wait for them (it would otherwise leave their buckets unreduced)
            bb.cls_token.requires_grad_(False)
            bb.pos_embed.requires_grad_(False)

    # ---------------------------------------------------------------------------------------------- groups
    def head_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.box_head, self.box_head_v, self.box_head_i) for p in m.parameters()]

    def backbone_parameters(self) -> list[nn.Parameter]:
        seen, out = set(), []
        for m in (self.rgb_branch, self.tir_branch, self.teacher_rgb, self.teacher_tir):
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def _map(self, feat: torch.Tensor) -> torch.Tensor:
        g = self.config.search_grid
        s = feat[:, -self.config.num_search_tokens:]
        return s.permute(0, 2, 1).contiguous().view(feat.shape[0], feat.shape[2], g, g)

    # ---------------------------------------------------------------------------------------------- forward
    def forward(self, template_rgb: torch.Tensor, template_tir: torch.Tensor, search_rgb: torch.Tensor,
                search_tir: torch.Tensor, search_mask: torch.Tensor | None = None,
                with_teachers: bool = True, modality_keep: torch.Tensor | None = None) -> dict[str, Any]:
        """Stage-1 forward (no elimination). ``search_mask`` (B, S) bool: search positions whose patch
        embedding is zeroed in BOTH students (teachers always see the unmasked input). ``modality_keep``
        (B, 2): per sample, factors on the RGB and thermal students' search features entering the fused
        head (0 drops that modality for the head; the distillation losses see the features unchanged).

        Returns ``fused`` / ``teacher_v`` / ``teacher_i`` head outputs and the per-block residual streams
        ``student_feats`` (rgb, tir) and ``teacher_feats`` (rgb, tir), each a list of (B, T+S, C)."""
        s_rgb, f_rgb = self.rgb_branch(template_rgb, search_rgb, search_mask, return_block_outputs=True)
        s_tir, f_tir = self.tir_branch(template_tir, search_tir, search_mask, return_block_outputs=True)
        h_rgb, h_tir = s_rgb, s_tir
        if modality_keep is not None:
            keep = modality_keep.to(s_rgb.dtype)
            h_rgb, h_tir = s_rgb * keep[:, 0, None, None], s_tir * keep[:, 1, None, None]
        fused = self.box_head(self._map(torch.cat([h_rgb, h_tir], dim=2)))
        out: dict[str, Any] = {"fused": fused, "student_feats": (f_rgb, f_tir)}
        if with_teachers:
            t_rgb, g_rgb = self.teacher_rgb(template_rgb, search_rgb, None, return_block_outputs=True)
            t_tir, g_tir = self.teacher_tir(template_tir, search_tir, None, return_block_outputs=True)
            out["teacher_v"] = self.box_head_v(self._map(t_rgb))
            out["teacher_i"] = self.box_head_i(self._map(t_tir))
            out["teacher_feats"] = (g_rgb, g_tir)
        return out

    def forward_mce(self, template_rgb: torch.Tensor, template_tir: torch.Tensor, search_rgb: torch.Tensor,
                    search_tir: torch.Tensor, ce_template_mask: torch.Tensor | None) -> dict[str, Any]:
        """Stage-2 forward: the students with candidate elimination (the inference path) into the fused head."""
        c = self.config
        res = lockstep_forward([self.rgb_branch, self.tir_branch], [template_rgb, template_tir],
                               [search_rgb, search_tir], c.ce_loc, c.ce_keep_ratio, ce_template_mask)
        return {"fused": self.box_head(self._map(torch.cat(res.outputs, dim=2)))}

    # ---------------------------------------------------------------------------------------------- export
    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if k.startswith(INFERENCE_PREFIXES)}

    def to_inference(self) -> CKDNet:
        net = CKDNet(self.config)
        net.load_state_dict(self.inference_state_dict(), strict=True)
        return net


# -------------------------------------------------------------------------------------------------- init

def _resize_pos(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, n, C) square grid -> (1, grid^2, C), bilinear."""
    n, C = pos.shape[1], pos.shape[2]
    g0 = math.isqrt(n)
    if g0 * g0 != n:
        raise ValueError(f"positional embedding with {n} tokens is not a square grid")
    if g0 == grid:
        return pos.clone()
    p = pos.reshape(1, g0, g0, C).permute(0, 3, 1, 2)
    p = F.interpolate(p.float(), size=(grid, grid), mode="bilinear", align_corners=False)
    return p.permute(0, 2, 3, 1).reshape(1, grid * grid, C)


def load_tracking_init(net: CKDTrainingNet, checkpoint: Mapping[str, Any] | str) -> dict[str, list[str]]:
    """Initialise all four backbones and the three heads from an OSTrack / DropTrack tracking checkpoint
    (keys ``backbone.*``, ``box_head.*``, under ``net`` or bare). Positional embeddings are resized to this
    network's grids (frame-identity / segment embeddings added in when present); the fused head's first
    convolutions get the single-modality weights duplicated along the input channels. Returns what was
    loaded and skipped."""
    if isinstance(checkpoint, str):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    sd = checkpoint.get("net", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(sd, Mapping) or not any(str(k).startswith("backbone.") for k in sd):
        raise ValueError("not an OSTrack/DropTrack tracking checkpoint: no 'backbone.*' keys")
    c = net.config
    bb_sd: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k.startswith("backbone."):
            bb_sd[k[len("backbone."):]] = v
    z = bb_sd.get("pos_embed_z")
    x = bb_sd.get("pos_embed_x")
    if z is None or x is None:
        # an ImageNet/MAE-style ViT: one (1, 1 + n, C) table with a cls token feeds both
        pe = bb_sd["pos_embed"]
        pe = pe[:, 1:] if math.isqrt(pe.shape[1] - 1) ** 2 == pe.shape[1] - 1 else pe
        z, x = pe, pe
    z = _resize_pos(z, c.template_grid)
    x = _resize_pos(x, c.search_grid)
    for seg, target in (("template_segment_pos_embed", "z"), ("search_segment_pos_embed", "x")):
        if seg in bb_sd:  # frame-identity embeddings (1, 1, C): added into the positional table
            if target == "z":
                z = z + bb_sd[seg].reshape(1, 1, -1)
            else:
                x = x + bb_sd[seg].reshape(1, 1, -1)
    bb_sd["pos_embed_z"], bb_sd["pos_embed_x"] = z, x
    report: dict[str, list[str]] = {"loaded": [], "skipped": []}
    for name in ("rgb_branch", "tir_branch", "teacher_rgb", "teacher_tir"):
        module: ViTBackbone = getattr(net, name)
        own = module.state_dict()
        new = {}
        for k in own:
            if k in bb_sd and tuple(bb_sd[k].shape) == tuple(own[k].shape):
                new[k] = bb_sd[k]
            else:
                report["skipped"].append(f"{name}.{k}")
        module.load_state_dict(new, strict=False)
        report["loaded"] += [f"{name}.{k}" for k in new]
    head_sd = {k[len("box_head."):]: v for k, v in sd.items() if k.startswith("box_head.")}
    for name in ("box_head_v", "box_head_i", "box_head"):
        module: CenterHead = getattr(net, name)
        own = module.state_dict()
        new = {}
        for k, v in head_sd.items():
            if k not in own:
                continue
            if tuple(v.shape) == tuple(own[k].shape):
                new[k] = v
            elif v.dim() == 4 and own[k].shape[1] == 2 * v.shape[1] and own[k].shape[0] == v.shape[0]:
                new[k] = torch.cat([v, v], dim=1)  # fused head: duplicate along the input channels
        module.load_state_dict(new, strict=False)
        report["loaded"] += [f"{name}.{k}" for k in new]
        report["skipped"] += [f"{name}.{k}" for k in own if k not in new]
    return report
