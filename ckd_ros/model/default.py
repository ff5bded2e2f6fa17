"""The model shipped with the package (produced by the project's training run)."""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .ckd_net import CKDNet


def default_checkpoint_path() -> Path:
    return Path(__file__).resolve().parents[1] / "weights" / "ckd_demo_small.pth.tar"


def load_default_model(device: torch.device | str = "cpu") -> CKDNet:
    """The embedded demo model (its config is inside the file)."""
    path = default_checkpoint_path()
    if not path.is_file():
        raise FileNotFoundError(f"the default model {path} is missing: it is produced by the project's training "
                                "run (`ckd train`); reinstall the package or pass a checkpoint explicitly")
    return load_checkpoint(path, device=device)
