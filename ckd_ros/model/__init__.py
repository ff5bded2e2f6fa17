"""CKD network in pure PyTorch (no ROS, no project imports): model, checkpoints, MCE, fast inference."""
from .checkpoint import CheckpointError, CheckpointNotFoundError, infer_config, load_checkpoint, save_checkpoint
from .ckd_net import CKDNet
from .config import ModelConfig
from .default import default_checkpoint_path, load_default_model
from .device import PRECISIONS, check_precision, device_error, precision_error, resolve_device
from .fast import optimize
from .flops import forward_flops
from .head import CenterHead
from .mce import (LockstepOutput, candidate_scores, ctr_point_mask, gather_search_tokens, lockstep_forward,
                  select_candidates)
from .vit import Attention, Block, Mlp, PatchEmbed, ViTBackbone
from .weights import seeded_model, seeded_state_dict, state_dict_sha256

__all__ = ["CKDNet", "ModelConfig", "CenterHead", "ViTBackbone", "Block", "Attention", "Mlp", "PatchEmbed",
           "LockstepOutput", "lockstep_forward", "candidate_scores", "select_candidates",
           "gather_search_tokens", "ctr_point_mask", "CheckpointError", "CheckpointNotFoundError",
           "load_checkpoint", "save_checkpoint", "infer_config", "default_checkpoint_path",
           "load_default_model", "optimize", "PRECISIONS", "resolve_device", "check_precision",
           "device_error", "precision_error", "forward_flops", "seeded_model", "seeded_state_dict", "state_dict_sha256"]
