"""Seeded weights of the reference vectors (shared WEIGHTS.md procedure) and their sha256 fingerprint.

Lets tests and the benchmark rebuild the paper-size network bit-for-bit without storing 740 MB of weights.
"""
from __future__ import annotations

import hashlib
from typing import Mapping

import torch

from .config import ModelConfig
from .head import CenterHead
from .vit import ViTBackbone

TRAINING_ONLY_PREFIXES = ("teacher_rgb.", "teacher_tir.", "box_head_v.", "box_head_i.")
_HEAD_PREFIXES = ("box_head", "box_head_v", "box_head_i")


def inference_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every key of the inference network's state dict with its shape, in state_dict() order."""
    from .ckd_net import CKDNet

    with torch.device("meta"):
        net = CKDNet(config)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def training_only_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Keys only the training model has: one teacher ViT and one 768-channel-input head per modality."""
    shapes: dict[str, tuple[int, ...]] = {}
    with torch.device("meta"):
        teacher = ViTBackbone(config)
        head = CenterHead(config.embed_dim, config.head_channels)
    for prefix, mod in (("teacher_rgb.", teacher), ("teacher_tir.", teacher), ("box_head_v.", head),
                        ("box_head_i.", head)):
        shapes.update({prefix + k: tuple(v.shape) for k, v in mod.state_dict().items()})
    return shapes


def _draw(key: str, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    # the rules are tested in this order (WEIGHTS.md); the order matters for which stream values go where
    if key.endswith("num_batches_tracked"):
        return torch.tensor(0)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g)
    if key.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g)
    if ("norm" in key and key.endswith(".weight")) or \
            (key.split(".")[0] in _HEAD_PREFIXES and key.endswith(".1.weight")):
        return 1 + 0.1 * torch.randn(shape, generator=g)
    return 0.02 * torch.randn(shape, generator=g)


def seeded_state_dict(config: ModelConfig, seed: int, training: bool = False) -> dict[str, torch.Tensor]:
    """The WEIGHTS.md fill: one CPU generator, inference keys in sorted() order, then (``training``) the
    training-only keys in sorted() order continuing the same generator. Returned in state_dict() order."""
    shapes = inference_shapes(config)
    g = torch.Generator().manual_seed(seed)
    values = {k: _draw(k, shapes[k], g) for k in sorted(shapes)}
    if training:
        extra = training_only_shapes(config)
        values.update({k: _draw(k, extra[k], g) for k in sorted(extra)})
        shapes = {**shapes, **extra}
    return {k: values[k] for k in shapes}


def seeded_model(config: ModelConfig, seed: int):
    """A CKDNet in eval mode holding the seeded weights."""
    from .ckd_net import CKDNet

    net = CKDNet(config)
    net.load_state_dict(seeded_state_dict(config, seed))
    return net.eval()


def state_dict_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the sorted keys: UTF-8 key bytes, then the raw little-endian bytes of the contiguous
    tensor (float32 weights, int64 num_batches_tracked), as in weights_fingerprint.txt."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(key.encode("utf-8"))
        h.update(t.view(torch.uint8).numpy().tobytes() if t.dim() else t.reshape(1).view(torch.uint8)
                 .numpy().tobytes())
    return h.hexdigest()
