"""Reading and writing CKD checkpoints: the official layout ``{'net': state_dict, ...}`` and the project's own
files (same layout plus an embedded ``config`` dict). Always ``torch.load(..., weights_only=True)``."""
from __future__ import annotations

import math
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .ckd_net import CKDNet
from .config import ModelConfig
from .weights import TRAINING_ONLY_PREFIXES, inference_shapes

INFERENCE_PREFIXES = ("rgb_branch.", "tir_branch.", "box_head.")
STANDARD_HEAD_DIM = 64  # ViT-B/16 and every timm ViT size use 64-dim attention heads


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message says why."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    pass


def _read(path: Path) -> Any:
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses any global outside torch's tensor allow-list: loading it would execute code
        found = re.search(r"Unsupported global:.*?(?=\. Please use|\n|$)", str(e))
        detail = found.group(0) if found else str(e).split("\n")[0]
        raise CheckpointError(
            f"refusing checkpoint {path}: it is not a plain tensor file; unpickling it would need arbitrary "
            f"Python objects or code, which weights_only loading forbids for safety ({detail})") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        first = str(e).split("\n")[0]
        raise CheckpointError(f"checkpoint {path} ({size} bytes) is truncated or corrupt and cannot be read "
                              f"by torch.load: {first}") from e


def _state_dict_of(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict "
                              "{'net': state_dict, ...} (official CKD layout)")
    if "net" in obj:
        sd, meta = obj["net"], {k: v for k, v in obj.items() if k != "net"}
    elif any(isinstance(k, str) and k.startswith(INFERENCE_PREFIXES) for k in obj):
        sd, meta = obj, {}  # a bare state dict is accepted too
    else:
        raise CheckpointError(f"checkpoint {path} has no 'net' entry (keys: {sorted(map(str, obj))[:8]}); "
                              "expected the official CKD layout {'net': state_dict, ...}")
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"checkpoint {path}: 'net' is a {type(sd).__name__}, not a state dict")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: entries {bad[:5]} of 'net' are not tensors")
    missing = [p for p in INFERENCE_PREFIXES if not any(k.startswith(p) for k in sd)]
    if missing:
        sample = sorted(sd)[:6]
        raise CheckpointError(f"checkpoint {path} is not a CKD network (another architecture?): no keys under "
                              f"{', '.join(p + '*' for p in missing)}; its keys start with {sample}")
    return dict(sd), meta


def infer_config(state_dict: Mapping[str, torch.Tensor], **overrides: Any) -> ModelConfig:
    """Width, depth, MLP ratio, patch, input sizes and head width from tensor shapes; the head count is the
    standard one (64-dim heads) unless given, since no tensor shape carries it."""
    def shape(key: str) -> tuple[int, ...]:
        if key not in state_dict:
            raise CheckpointError(f"cannot infer the architecture: key {key!r} is missing")
        return tuple(state_dict[key].shape)

    embed_dim = shape("rgb_branch.pos_embed_z")[-1]
    patch = shape("rgb_branch.patch_embed.proj.weight")[-1]
    depth = 1 + max((int(m.group(1)) for k in state_dict
                     if (m := re.match(r"rgb_branch\.blocks\.(\d+)\.", k))), default=-1)
    if depth == 0:
        raise CheckpointError("cannot infer the architecture: no rgb_branch.blocks.* keys")
    hidden = shape("rgb_branch.blocks.0.mlp.fc1.weight")[0]
    t_tokens, s_tokens = shape("rgb_branch.pos_embed_z")[1], shape("rgb_branch.pos_embed_x")[1]
    for n, name in ((t_tokens, "pos_embed_z"), (s_tokens, "pos_embed_x")):
        if math.isqrt(n) ** 2 != n:
            raise CheckpointError(f"rgb_branch.{name} has {n} tokens, not a square grid")
    values = dict(embed_dim=embed_dim, depth=depth,
                  num_heads=max(1, embed_dim // STANDARD_HEAD_DIM), mlp_ratio=hidden / embed_dim,
                  patch_size=patch, template_size=math.isqrt(t_tokens) * patch,
                  search_size=math.isqrt(s_tokens) * patch,
                  head_channels=shape("box_head.conv1_ctr.0.weight")[0])
    values.update(overrides)
    try:
        return ModelConfig(**values)
    except ValueError as e:
        raise CheckpointError(f"tensor shapes describe no valid network: {e}") from e


def _check_against(sd: Mapping[str, torch.Tensor], config: ModelConfig, path: Path) -> None:
    expected = inference_shapes(config)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k.startswith(INFERENCE_PREFIXES) and k not in expected]
    wrong = [(k, tuple(sd[k].shape), expected[k]) for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if wrong:
        parts.append(f"{len(wrong)} shape mismatches (key: file vs config), e.g. " +
                     "; ".join(f"{k}: {list(a)} vs {list(b)}" for k, a, b in wrong[:5]))
    if missing:
        parts.append(f"{len(missing)} keys the config needs are missing from the file, e.g. {missing[:5]}")
    if unexpected:
        parts.append(f"{len(unexpected)} file keys the config does not have, e.g. {unexpected[:5]}")
    raise CheckpointError(f"checkpoint {path} does not match the model config "
                          f"({config.to_dict()}): " + "; ".join(parts))


def load_checkpoint(path: str | os.PathLike, config: ModelConfig | None = None,
                    device: torch.device | str = "cpu", *, num_heads: int | None = None) -> CKDNet:
    """A CKDNet in eval mode from an official or project checkpoint. Training-only keys (teachers and their
    heads) are ignored. ``config=None``: the embedded config if the file has one, else one inferred from
    the tensor shapes, with ``num_heads`` when given (no tensor shape carries the head count; the
    inference assumes 64-wide heads). A config that does not fit the tensors raises CheckpointError naming
    the keys."""
    path = Path(path)
    sd, meta = _state_dict_of(_read(path), path)
    embedded = None
    if isinstance(meta.get("config"), dict):
        try:
            embedded = ModelConfig.from_dict(meta["config"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path} embeds an invalid config: {e}") from e
    if num_heads is not None:
        if config is not None:
            raise ValueError("give either config or num_heads, not both (the config holds its head count)")
        if embedded is not None and embedded.num_heads != num_heads:
            raise CheckpointError(f"num_heads {num_heads} disagrees with the {embedded.num_heads} heads of the "
                                  f"config embedded in {path}")
        config = embedded or infer_config(sd, num_heads=num_heads)
    if config is None:
        config = embedded or infer_config(sd)
    elif embedded is not None and not config.same_architecture(embedded):
        diff = {k: (v, embedded.to_dict()[k]) for k, v in config.to_dict().items()
                if k not in ("ce_loc", "ce_keep_ratio") and v != embedded.to_dict()[k]}
        raise CheckpointError(f"the given config disagrees with the config embedded in {path} "
                              f"(field: given vs file): {diff}")
    _check_against(sd, config, path)
    nonfinite = [k for k, v in sd.items() if k.startswith(INFERENCE_PREFIXES) and v.is_floating_point()
                 and not bool(torch.isfinite(v).all())]
    if nonfinite:
        raise CheckpointError(f"checkpoint {path} has non-finite (NaN/Inf) values in {nonfinite[:5]}")
    net = CKDNet(config)
    net.load_state_dict({k: v for k, v in sd.items() if k.startswith(INFERENCE_PREFIXES)}, strict=True)
    return net.to(device).eval()


def save_checkpoint(net_or_state_dict: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike,
                    config: ModelConfig | None = None, **extra: Any) -> Path:
    """Write ``{'net': state_dict, 'config': config dict, 'net_type': 'OSTrack_CKD', **extra}`` atomically
    (the official layout plus our config). ``extra`` must be plain data (weights_only-loadable)."""
    if isinstance(net_or_state_dict, nn.Module):
        config = config or getattr(net_or_state_dict, "config", None)
        sd = net_or_state_dict.state_dict()
    else:
        sd = dict(net_or_state_dict)
    if config is None:
        raise ValueError("save_checkpoint needs the ModelConfig (pass config=...)")
    sd = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
    payload = {"net": sd, "config": config.to_dict(), "net_type": "OSTrack_CKD", **extra}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


__all__ = ["CheckpointError", "CheckpointNotFoundError", "load_checkpoint", "save_checkpoint", "infer_config",
           "TRAINING_ONLY_PREFIXES"]
