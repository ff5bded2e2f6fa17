"""ViT-B/16 one-stream backbone with the official CKD/OSTrack parameter names.

The default arithmetic follows the reference op sequence exactly (``q @ k^T * scale``, softmax, ``@ v``,
nn.Linear, LayerNorm, erf GELU) so float32 and float64 outputs match the reference vectors bit for bit.
``Attention.fused`` switches to fused scaled-dot-product attention for the fast paths (~1e-7 deviation).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

LN_EPS = 1e-6


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection; tokens come out in row-major grid order."""

    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        # fused SDPA: faster, but no attention map and ~1e-7 (f32) away from the reference
        self.fused = False

    def forward(self, x: torch.Tensor, need_attn: bool = True,
                attn_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (output, attention). The exact path returns the full (B, heads, N, N) softmax map. The
        fused path returns only the first ``attn_rows`` rows of the map when ``need_attn`` (enough for
        candidate elimination, which reads template rows only), else None."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if not self.fused:
            attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            out = (attn @ v).transpose(1, 2).reshape(B, N, C)
            return self.proj(out), attn
        out = F.scaled_dot_product_attention(q, k, v)
        rows = None
        if need_attn:
            q_rows = q if attn_rows is None else q[:, :, :attn_rows]
            rows = ((q_rows @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj(out.transpose(1, 2).reshape(B, N, C)), rows


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU, as in the reference
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drops a residual branch for whole samples, rescaling the survivors so that the
    expectation is unchanged. Identity at inference, so the eval-mode arithmetic stays the reference's."""
    if rate <= 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block split in two halves, because candidate elimination sits between them."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        # a training-time regulariser, not architecture: set by `set_drop_path`, never stored in checkpoints
        self.drop_path_rate = 0.0

    def attention_half(self, x: torch.Tensor, need_attn: bool = True,
                       attn_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x + Attn(LN1(x))`` and the softmax attention map (see ``Attention.forward``)."""
        out, attn = self.attn(self.norm1(x), need_attn, attn_rows)
        return x + drop_path(out, self.drop_path_rate, self.training), attn

    def mlp_half(self, x: torch.Tensor) -> torch.Tensor:
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.attention_half(x, need_attn=False)
        return self.mlp_half(x)


class ViTBackbone(nn.Module):
    """One modality's ViT: shared patch embedding for template and search, own positional embeddings,
    template tokens first, joint self-attention, final LayerNorm. ``cls_token`` and the 197-token
    ``pos_embed`` are unused but kept so official state dicts load with identical keys."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, c.legacy_pos_tokens, c.embed_dim))
        self.pos_embed_z = nn.Parameter(torch.zeros(1, c.num_template_tokens, c.embed_dim))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, c.num_search_tokens, c.embed_dim))
        self.patch_embed = PatchEmbed(c.patch_size, c.embed_dim)
        self.blocks = nn.ModuleList(Block(c.embed_dim, c.num_heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.embed_dim, eps=LN_EPS)

    def set_drop_path(self, max_rate: float) -> None:
        """Stochastic depth rising linearly from 0 at the first block to `max_rate` at the last (training
        only; the paper trains with 0.1)."""
        if not 0.0 <= max_rate < 1.0:
            raise ValueError(f"drop-path rate must lie in [0, 1), got {max_rate}")
        n = len(self.blocks)
        for i, blk in enumerate(self.blocks):
            blk.drop_path_rate = max_rate * i / max(n - 1, 1)

    def embed(self, template: torch.Tensor, search: torch.Tensor,
              search_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, 64 + 256, C). ``search_mask`` (B, 256) bool: True positions get their patch embedding
        zeroed BEFORE the positional embedding is added (the masked-modelling input of training)."""
        z = self.patch_embed(template)
        x = self.patch_embed(search)
        if search_mask is not None:
            x = x.masked_fill(search_mask.to(torch.bool).unsqueeze(-1), 0.0)
        z = z + self.pos_embed_z
        x = x + self.pos_embed_x
        return torch.cat([z, x], dim=1)

    def finalize(self, tokens: torch.Tensor, kept_index: torch.Tensor | None = None) -> torch.Tensor:
        """Final norm, then search tokens back on the full grid; eliminated positions are exactly zero.

        ``kept_index`` (B, n_kept) int64: the global grid index of each remaining search token (None = no
        elimination happened)."""
        tokens = self.norm(tokens)
        n_t = self.config.num_template_tokens
        if kept_index is None:
            return tokens
        z, x = tokens[:, :n_t], tokens[:, n_t:]
        B, _, C = x.shape
        full = x.new_zeros(B, self.config.num_search_tokens, C)
        full.scatter_(1, kept_index.unsqueeze(-1).expand(B, -1, C), x)
        return torch.cat([z, full], dim=1)

    def forward(self, template: torch.Tensor, search: torch.Tensor, search_mask: torch.Tensor | None = None,
                return_block_outputs: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stand-alone forward without elimination (training's teachers and students use this, or
        ``mce.lockstep_forward`` when several networks must share one elimination)."""
        t = self.embed(template, search, search_mask)
        feats = []
        for blk in self.blocks:
            t = blk(t)
            if return_block_outputs:
                feats.append(t)
        out = self.norm(t)
        return (out, feats) if return_block_outputs else out
