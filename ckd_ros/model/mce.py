"""Multi-modal candidate elimination (MCE) and the lock-step forward of several backbones sharing it.

The score of a search token is the element-wise maximum of the participating networks' softmax attention
maps (per head, before any averaging), read on the template rows selected by the template mask (CTR_POINT:
token 27 only) and the search columns, averaged over those rows and then over heads. The top
``ceil(ratio * n)`` tokens are kept in descending-score order (the order matters for bit-level parity of
later float32 sums) and the SAME positions are applied to every network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

from .config import ModelConfig
from .vit import ViTBackbone


def ctr_point_mask(config: ModelConfig, batch: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool (batch, template tokens) selecting only the template token just up-left of the crop centre
    (row g//2-1, col g//2-1; token 27 of the 8x8 grid), the reference's CTR_POINT template range."""
    g = config.template_grid
    mask = torch.zeros(batch, g * g, dtype=torch.bool, device=device)
    c = g // 2 - 1
    mask[:, c * g + c] = True
    return mask


def candidate_scores(attn_maps: Sequence[torch.Tensor], num_template: int,
                     template_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, n_search) elimination score from attention maps (B, heads, R, num_template + n_search).

    Each map's first ``num_template`` rows must be the template-token rows (R may be N or just the template
    rows). ``template_mask`` (B, num_template) bool selects rows; every sample must select equally many."""
    if not attn_maps:
        raise ValueError("candidate_scores needs at least one attention map")
    m = attn_maps[0]
    for a in attn_maps[1:]:
        m = torch.maximum(m, a)
    m_ts = m[:, :, :num_template, num_template:]
    if template_mask is not None:
        B, H, _, n_s = m_ts.shape
        counts = template_mask.sum(dim=1)
        if int(counts.min()) != int(counts.max()) or int(counts.min()) == 0:
            raise ValueError(f"template mask must select the same, non-zero number of tokens per sample; "
                             f"got counts {counts.tolist()}")
        rows = template_mask.nonzero()[:, 1].view(B, -1)
        m_ts = m_ts.gather(2, rows[:, None, :, None].expand(B, H, rows.shape[1], n_s))
    return m_ts.mean(dim=2).mean(dim=1)


def select_candidates(score: torch.Tensor, keep_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (into the current search tokens) to keep, in descending-score order, and to remove."""
    n_s = score.shape[1]
    n_keep = math.ceil(keep_ratio * n_s)
    order = torch.sort(score, dim=1, descending=True).indices
    return order[:, :n_keep], order[:, n_keep:]


def gather_search_tokens(tokens: torch.Tensor, num_template: int, keep_pos: torch.Tensor) -> torch.Tensor:
    """Template tokens followed by the kept search tokens (in ``keep_pos`` order)."""
    B, _, C = tokens.shape
    s = tokens[:, num_template:].gather(1, keep_pos.unsqueeze(-1).expand(B, -1, C))
    return torch.cat([tokens[:, :num_template], s], dim=1)


@dataclass
class LockstepOutput:
    outputs: list[torch.Tensor]  # per network: (B, T + S, C) after final norm, removed positions zero
    kept: list[torch.Tensor] = field(default_factory=list)  # per CE layer: kept global indices, kept order
    removed: list[torch.Tensor] = field(default_factory=list)  # per CE layer: removed global indices
    scores: list[torch.Tensor] = field(default_factory=list)  # per CE layer: score of each current token
    score_index: list[torch.Tensor] = field(default_factory=list)  # per CE layer: global index per score
    block_outputs: list[list[torch.Tensor]] = field(default_factory=list)  # per network, per block


def lockstep_forward(backbones: Sequence[ViTBackbone], templates: Sequence[torch.Tensor],
                     searches: Sequence[torch.Tensor], ce_loc: Sequence[int] = (),
                     ce_keep_ratio: Sequence[float] = (), ce_template_mask: torch.Tensor | None = None,
                     score_from: Sequence[int] | None = None,
                     search_masks: Sequence[torch.Tensor | None] | None = None,
                     return_block_outputs: bool = False) -> LockstepOutput:
    """Run several backbones block by block, eliminating the same search tokens in all of them.

    ``score_from``: indices of the networks whose attention maps define the score (default: all; training
    passes the two students so the teachers follow the students' selection). ``search_masks``: optional
    per-network masked-modelling masks (see ``ViTBackbone.embed``)."""
    n = len(backbones)
    if not (len(templates) == len(searches) == n):
        raise ValueError(f"{n} backbones but {len(templates)} templates and {len(searches)} searches")
    if len(ce_loc) != len(ce_keep_ratio):
        raise ValueError(f"ce_loc {tuple(ce_loc)} and ce_keep_ratio {tuple(ce_keep_ratio)} differ in length")
    score_from = list(range(n)) if score_from is None else list(score_from)
    masks = list(search_masks) if search_masks is not None else [None] * n
    cfg = backbones[0].config
    n_t = cfg.num_template_tokens
    tokens = [bb.embed(z, x, m) for bb, z, x, m in zip(backbones, templates, searches, masks)]
    B = tokens[0].shape[0]
    global_index = torch.arange(cfg.num_search_tokens, device=tokens[0].device).expand(B, -1)
    ratio_at = {int(i): float(r) for i, r in zip(ce_loc, ce_keep_ratio)}
    out = LockstepOutput(outputs=[], block_outputs=[[] for _ in range(n)])
    eliminated = False
    for i in range(cfg.depth):
        ratio = ratio_at.get(i, 1.0)
        ce_here = ratio < 1.0
        attn = []
        for j, bb in enumerate(backbones):
            tokens[j], a = bb.blocks[i].attention_half(tokens[j], need_attn=ce_here and j in score_from,
                                                       attn_rows=n_t)
            attn.append(a)
        if ce_here:
            score = candidate_scores([attn[j] for j in score_from], n_t, ce_template_mask)
            keep_pos, removed_pos = select_candidates(score, ratio)
            out.scores.append(score)
            out.score_index.append(global_index)
            out.removed.append(global_index.gather(1, removed_pos))
            global_index = global_index.gather(1, keep_pos)
            out.kept.append(global_index)
            tokens = [gather_search_tokens(t, n_t, keep_pos) for t in tokens]
            eliminated = True
        tokens = [bb.blocks[i].mlp_half(t) for bb, t in zip(backbones, tokens)]
        if return_block_outputs:
            for j, t in enumerate(tokens):
                out.block_outputs[j].append(t)
    out.outputs = [bb.finalize(t, global_index if eliminated else None) for bb, t in zip(backbones, tokens)]
    return out
