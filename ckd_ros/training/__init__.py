"""CKD training (coupled knowledge distillation): data pairs, losses, the four-network training model, the
loop (single process or torchrun/DDP) and the `ckd train` command. Uses model/tracking/data, never ROS."""
from .config import DataConfig, OptimConfig, TrainConfig, load_config
from .data import SamplingConfig, SequencePairDataset, SyntheticPairDataset, collate, make_pair
from .losses import (LossWeights, content_loss, focal_loss, gaussian_heatmap, gaussian_radius, giou_loss,
                     style_loss, tracking_loss)
from .network import CKDTrainingNet, load_tracking_init

__all__ = ["TrainConfig", "DataConfig", "OptimConfig", "SamplingConfig", "LossWeights", "load_config",
           "SyntheticPairDataset", "SequencePairDataset", "collate", "make_pair", "CKDTrainingNet",
           "load_tracking_init", "style_loss", "content_loss", "focal_loss", "giou_loss", "gaussian_heatmap",
           "gaussian_radius", "tracking_loss"]
