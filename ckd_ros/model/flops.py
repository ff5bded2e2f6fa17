"""Analytic FLOP count of one CKDNet forward (2 FLOPs per multiply-add; matmuls and convolutions only)."""
from __future__ import annotations

from .config import ModelConfig


def forward_flops(config: ModelConfig, batch: int = 1) -> int:
    c = config
    C, n_t, hidden = c.embed_dim, c.num_template_tokens, c.mlp_hidden
    counts = c.search_tokens_per_stage()
    ratio_at = dict(zip(c.ce_loc, c.ce_keep_ratio))
    stage = 0
    per_student = 2 * (n_t + c.num_search_tokens) * C * 3 * c.patch_size ** 2  # patch embedding
    for i in range(c.depth):
        n = n_t + counts[stage]
        per_student += 2 * n * C * 3 * C + 2 * 2 * n * n * C + 2 * n * C * C  # qkv, q@k^T and attn@v, proj
        if ratio_at.get(i, 1.0) < 1.0:
            stage += 1
            n = n_t + counts[stage]
        per_student += 2 * 2 * n * C * hidden  # fc1, fc2
    g2 = c.num_search_tokens
    widths = [2 * C, c.head_channels, c.head_channels // 2, c.head_channels // 4, c.head_channels // 8]
    head = 0
    for out_ch in (1, 2, 2):
        head += sum(2 * g2 * widths[i] * widths[i + 1] * 9 for i in range(4)) + 2 * g2 * widths[4] * out_ch
    return batch * (2 * per_student + head)
