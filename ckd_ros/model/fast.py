"""Fast inference paths, chosen explicitly (never the default; the default CKDNet is the exact path).

* ``fp32``: both students as ONE batched network (their weights stacked at build time, every Linear a single
  ``baddbmm`` over the student axis), fused scaled-dot-product attention, candidate-elimination scores from
  the template rows only, a head with BatchNorm folded into the convs and the three branches' first convs
  merged into one. Within ~1e-6 of the exact path (float32 summation order differs).
* ``bf16`` / ``fp16``: the ``fp32`` path under ``torch.autocast`` (CPU: bf16; CUDA: fp16 or bf16).
* ``int8`` (CPU): dynamic int8 quantisation of every backbone Linear (weights per channel int8, activations
  quantised per call), fused attention, folded head. Fewer memory bytes and VNNI int8 matmuls; its deviation
  from float32 is measured by the tests and the benchmark.

``optimize(net, precision, compile=...)`` returns a module with CKDNet's forward signature and outputs
(``score_map``, ``size_map``, ``offset_map``, ``pred_boxes``, ``backbone_feat``, ``ce_kept``/``ce_removed``).
"""
from __future__ import annotations

import copy
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .ckd_net import CKDNet
from .device import check_precision
from .head import BRANCHES, CenterHead
from .vit import LN_EPS



def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = conv.weight * scale.view(-1, 1, 1, 1)
    b = (conv.bias - bn.running_mean) * scale + bn.bias
    return w.detach().clone(), b.detach().clone()


class FoldedHead(nn.Module):
    """CenterHead with BatchNorm folded into each conv and the three first convs (the 2C-input ones, 90 % of
    the head's FLOPs) merged into one. On the CPU that merged conv runs as im2col + one GEMM through an
    ``nn.Linear`` (faster than the direct convolution here, and int8-quantisable like the backbone)."""

    def __init__(self, head: CenterHead, im2col: bool = True, channels_last: bool = False) -> None:
        super().__init__()
        w1, b1 = zip(*(_fold_bn(getattr(head, f"conv1_{n}")[0], getattr(head, f"conv1_{n}")[1]) for n in BRANCHES))
        w1, b1 = torch.cat(w1), torch.cat(b1)
        self.ch = w1.shape[0] // len(BRANCHES)
        self.im2col = im2col
        self.conv1 = nn.Linear(w1[0].numel(), w1.shape[0])
        self.conv1.weight.data.copy_(w1.reshape(w1.shape[0], -1))
        self.conv1.bias.data.copy_(b1)
        self.conv1.requires_grad_(False)
        self.rest = nn.ParameterDict()
        for n in BRANCHES:
            for i in range(2, 5):
                w, b = _fold_bn(getattr(head, f"conv{i}_{n}")[0], getattr(head, f"conv{i}_{n}")[1])
                self.rest[f"w{i}_{n}"] = nn.Parameter(w, requires_grad=False)
                self.rest[f"b{i}_{n}"] = nn.Parameter(b, requires_grad=False)
            c5 = getattr(head, f"conv5_{n}")
            self.rest[f"w5_{n}"] = nn.Parameter(c5.weight.detach().clone(), requires_grad=False)
            self.rest[f"b5_{n}"] = nn.Parameter(c5.bias.detach().clone(), requires_grad=False)
        self.channels_last = channels_last

    def first_conv(self, x: torch.Tensor) -> torch.Tensor:
        B, cin, g, _ = x.shape
        if self.im2col:
            cols = F.unfold(x, 3, padding=1).transpose(1, 2)  # (B, g*g, cin*9)
            return self.conv1(cols).transpose(1, 2).reshape(B, -1, g, g)
        w = self.conv1.weight.view(-1, cin, 3, 3)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, w, self.conv1.bias, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = F.relu(self.first_conv(x))
        outs = {}
        for j, n in enumerate(BRANCHES):
            t = y[:, j * self.ch:(j + 1) * self.ch]
            for i in range(2, 5):
                t = F.relu(F.conv2d(t, self.rest[f"w{i}_{n}"], self.rest[f"b{i}_{n}"], padding=1))
            outs[n] = F.conv2d(t, self.rest[f"w5_{n}"], self.rest[f"b5_{n}"]).float().contiguous()
        score = torch.clamp(outs["ctr"].sigmoid(), 1e-4, 1 - 1e-4)
        size = torch.clamp(outs["size"].sigmoid(), 1e-4, 1 - 1e-4)
        offset = outs["offset"]
        boxes = CenterHead.cal_bbox(score, size, offset)
        return {"score_map": score, "size_map": size, "offset_map": offset,
                "pred_boxes": boxes.view(x.shape[0], 1, 4)}


def _stack(mods: list[nn.Module], attr: str, transpose: bool = False) -> nn.Parameter:
    ts = [getattr(m, attr).detach() for m in mods]
    if transpose:
        ts = [t.t() for t in ts]
    return nn.Parameter(torch.stack(ts).contiguous(), requires_grad=False)


class StackedCKD(nn.Module):
    """The two students run as one network over a leading student axis (see module docstring)."""

    def __init__(self, net: CKDNet, channels_last: bool = False) -> None:
        super().__init__()
        self.config = c = net.config
        bbs = [net.rgb_branch, net.tir_branch]
        self.patch_w = _stack([b.patch_embed.proj for b in bbs], "weight")
        self.patch_b = _stack([b.patch_embed.proj for b in bbs], "bias")
        self.pos_z = _stack(bbs, "pos_embed_z")  # (2, 1, T, C)
        self.pos_x = _stack(bbs, "pos_embed_x")
        self.blocks = nn.ModuleList()
        for i in range(c.depth):
            blks = [b.blocks[i] for b in bbs]
            p = nn.ParameterDict()
            for name, mods in (("ln1", [b.norm1 for b in blks]), ("ln2", [b.norm2 for b in blks])):
                p[name + "_w"] = nn.Parameter(torch.stack([m.weight.detach() for m in mods])[:, None], False)
                p[name + "_b"] = nn.Parameter(torch.stack([m.bias.detach() for m in mods])[:, None], False)
            for name, mods in (("qkv", [b.attn.qkv for b in blks]), ("proj", [b.attn.proj for b in blks]),
                               ("fc1", [b.mlp.fc1 for b in blks]), ("fc2", [b.mlp.fc2 for b in blks])):
                p[name + "_w"] = _stack(mods, "weight", transpose=True)  # (2, in, out) for baddbmm
                p[name + "_b"] = nn.Parameter(torch.stack([m.bias.detach() for m in mods])[:, None], False)
            self.blocks.append(nn.Module())
            self.blocks[-1].p = p
        self.norm_w = nn.Parameter(torch.stack([b.norm.weight.detach() for b in bbs])[:, None], False)
        self.norm_b = nn.Parameter(torch.stack([b.norm.bias.detach() for b in bbs])[:, None], False)
        on_cpu = self.patch_w.device.type == "cpu"
        self.head = FoldedHead(net.box_head, im2col=on_cpu, channels_last=channels_last and not on_cpu)

    @staticmethod
    def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # x (2, M, C); affine per student
        return torch.addcmul(b, F.layer_norm(x, x.shape[-1:], eps=LN_EPS), w)

    def forward(self, template_rgb: torch.Tensor, template_tir: torch.Tensor, search_rgb: torch.Tensor,
                search_tir: torch.Tensor, ce_template_mask: torch.Tensor | None = None) -> dict:
        c = self.config
        B = search_rgb.shape[0]
        C, H, n_t = c.embed_dim, c.num_heads, c.num_template_tokens
        D = C // H
        scale = D ** -0.5

        def embed(z: torch.Tensor, x: torch.Tensor, s: int) -> torch.Tensor:
            z = F.conv2d(z, self.patch_w[s], self.patch_b[s], stride=c.patch_size).flatten(2).transpose(1, 2)
            x = F.conv2d(x, self.patch_w[s], self.patch_b[s], stride=c.patch_size).flatten(2).transpose(1, 2)
            return torch.cat([z + self.pos_z[s], x + self.pos_x[s]], dim=1)

        t = torch.stack([embed(template_rgb, search_rgb, 0), embed(template_tir, search_tir, 1)])  # (2,B,N,C)
        global_index = torch.arange(c.num_search_tokens, device=t.device).expand(B, -1)
        ratio_at = dict(zip(c.ce_loc, c.ce_keep_ratio))
        kept, removed = [], []
        if ce_template_mask is not None:
            row_w = ce_template_mask.to(t.dtype)
            row_w = row_w / row_w.sum(dim=1, keepdim=True)  # mean over the selected template rows
        for i, blk in enumerate(self.blocks):
            p = blk.p
            N = t.shape[2]
            x = t.reshape(2, B * N, C)
            h = self._ln(x, p["ln1_w"], p["ln1_b"])
            qkv = torch.baddbmm(p["qkv_b"], h, p["qkv_w"]).view(2 * B, N, 3, H, D).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)  # (2B, H, N, D)
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, B * N, C)
            x = x + torch.baddbmm(p["proj_b"], a, p["proj_w"])
            ratio = ratio_at.get(i, 1.0)
            if ratio < 1.0:
                # scores need only the template rows of both students' attention maps
                logits = (q[:, :, :n_t] @ k.transpose(-2, -1)) * scale  # (2B, H, T, N)
                att = logits.float().softmax(dim=-1)[..., n_t:].view(2, B, H, n_t, N - n_t)
                m = torch.maximum(att[0], att[1])
                if ce_template_mask is not None:
                    score = (m * row_w[:, None, :, None]).sum(dim=2).mean(dim=1)
                else:
                    score = m.mean(dim=2).mean(dim=1)
                n_keep = math.ceil(ratio * (N - n_t))
                order = torch.sort(score, dim=1, descending=True).indices
                keep_pos = order[:, :n_keep]
                removed.append(global_index.gather(1, order[:, n_keep:]))
                global_index = global_index.gather(1, keep_pos)
                kept.append(global_index)
                x = x.view(2, B, N, C)
                s = x[:, :, n_t:].gather(2, keep_pos[None, :, :, None].expand(2, B, n_keep, C))
                x = torch.cat([x[:, :, :n_t], s], dim=2)
                N = x.shape[2]
                x = x.reshape(2, B * N, C)
            h = self._ln(x, p["ln2_w"], p["ln2_b"])
            h = F.gelu(torch.baddbmm(p["fc1_b"], h, p["fc1_w"]))
            x = x + torch.baddbmm(p["fc2_b"], h, p["fc2_w"])
            t = x.view(2, B, N, C)
        x = self._ln(t.reshape(2, -1, C), self.norm_w, self.norm_b).view(2, B, -1, C)
        if kept:
            full = x.new_zeros(2, B, c.num_search_tokens, C)
            full.scatter_(2, global_index[None, :, :, None].expand(2, B, -1, C), x[:, :, n_t:])
            x = torch.cat([x[:, :, :n_t], full], dim=2)
        feat = torch.cat([x[0], x[1]], dim=2)  # (B, T+S, 2C)
        g = c.search_grid
        fmap = feat[:, n_t:].transpose(1, 2).reshape(B, 2 * C, g, g)
        out = self.head(fmap)
        out["backbone_feat"] = feat
        if kept:
            out.update(ce_kept=kept, ce_removed=removed)
        return out


class Int8CKD(nn.Module):
    """CPU path: a copy of the network whose backbone Linears are dynamically quantised to int8."""

    def __init__(self, net: CKDNet, quantize_head: bool = True) -> None:
        super().__init__()
        net = copy.deepcopy(net).float().cpu().eval()
        for bb in (net.rgb_branch, net.tir_branch):
            for blk in bb.blocks:
                blk.attn.fused = True
        net.box_head = FoldedHead(net.box_head, im2col=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notice; the API still works
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            if not quantize_head:
                net.box_head.conv1 = _Float(net.box_head.conv1)
            # per-output-channel int8 weights: noticeably closer to float32 than one scale per tensor
            self.net = quantize_dynamic(net, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        self.config = net.config

    def forward(self, *args, **kwargs) -> dict:
        return self.net(*args, **kwargs)


class _Float(nn.Module):
    """Hides a Linear from quantize_dynamic (keeps it float32)."""

    def __init__(self, lin: nn.Linear) -> None:
        super().__init__()
        self.weight, self.bias = lin.weight, lin.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _Autocast(nn.Module):
    def __init__(self, inner: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner, self.device_type, self.dtype = inner, device_type, dtype
        self.config = inner.config

    def forward(self, *args, **kwargs) -> dict:
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.inner(*args, **kwargs)
        return {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                for k, v in out.items()}


def optimize(net: CKDNet, precision: str = "fp32", compile: bool = False,
             compile_mode: str | None = None) -> nn.Module:
    """A faster module computing ``net``'s function. ``precision``: exact | fp32 | bf16 | fp16 | int8.
    ``compile``: wrap in torch.compile (on CUDA ``compile_mode='reduce-overhead'`` adds CUDA graphs)."""
    device = next(net.parameters()).device
    check_precision(precision, device)
    if precision != "exact" and tuple(net.head_students) != (True, True):
        raise ValueError("the fast paths feed both students to the head; reset net.head_students to (True, True)")
    net = net.eval()
    if precision == "exact":
        mod: nn.Module = net
    elif precision == "int8":
        mod = Int8CKD(net)
    else:
        mod = StackedCKD(net, channels_last=device.type == "cuda").to(device).eval()
        if precision in ("bf16", "fp16"):
            mod = _Autocast(mod, device.type, torch.bfloat16 if precision == "bf16" else torch.float16)
    if compile:
        config = mod.config
        mod = torch.compile(mod, mode=compile_mode)
        mod.config = config
    return mod


def build_paths(net: CKDNet, precisions: list[str] | tuple[str, ...]) -> dict[str, nn.Module]:
    """Several paths at once; fp32 / bf16 / fp16 share one stacked copy of the weights."""
    device = next(net.parameters()).device
    mods: dict[str, nn.Module] = {}
    stacked = None
    for p in precisions:
        if p in ("fp32", "bf16", "fp16"):
            check_precision(p, device)
            stacked = stacked or StackedCKD(net.eval(), channels_last=device.type == "cuda").to(device).eval()
            mods[p] = stacked if p == "fp32" else \
                _Autocast(stacked, device.type, torch.bfloat16 if p == "bf16" else torch.float16)
        else:
            mods[p] = optimize(net, p)
    return mods


def with_ce_schedule(mod: nn.Module, config) -> nn.Module:
    """A shallow copy of a CKDNet / fast-path module sharing all weights, with another candidate-elimination
    schedule (``config`` must describe the same architecture)."""
    if not config.same_architecture(mod.config):
        raise ValueError("with_ce_schedule only changes the elimination schedule, not the architecture")
    new = copy.copy(mod)
    new.__dict__["_modules"] = dict(mod._modules)  # so that re-targeting children leaves `mod` untouched
    new.config = config
    for name in ("inner", "net"):
        child = mod._modules.get(name)
        if child is not None and hasattr(child, "config"):
            new._modules[name] = with_ce_schedule(child, config)
    return new
