"""Training configuration: typed dataclasses (paper values as defaults), read from YAML."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ckd_ros.assignment import parse_assignment
from ckd_ros.data.synthetic import CONDITIONS, SyntheticConfig
from ckd_ros.model import ModelConfig

from .data import SamplingConfig, check_close_calls, condition_probabilities
from .losses import LossWeights

DATASET_KINDS = ("synthetic", "lasher", "rgbt234", "rgbt210", "gtot", "vtuav", "plain")


@dataclass
class DataConfig:
    kind: str = "lasher"
    root: str = ""  # benchmark root (folders of sequences)
    sequence_list: str = ""  # optional text file of sequence names (e.g. LasHeR trainingsetList.txt)
    samples_per_epoch: int = 60000
    num_workers: int = 4
    seed: int = 0
    # synthetic only: scene seeds [start, stop), conditions and generator settings
    synthetic_seeds: tuple[int, int] = (0, 100000)
    conditions: tuple[str, ...] = CONDITIONS
    # relative sampling weight of each entry of `conditions`; empty = uniform. Lets the conditions where
    # only one modality sees the target (and the model must learn to set the other aside) come up more often.
    condition_weights: tuple[float, ...] = ()
    # share of scene blocks whose frames are drawn mostly from close calls (a distractor within
    # `close_call_distance` target sizes of the target): the moments a tracker jumps to a look-alike are a
    # few frames per scene, too rare in uniform draws to be learnt (as in distractor-aware training)
    close_call_prob: float = 0.0
    close_call_distance: float = 1.0
    synthetic: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in DATASET_KINDS:
            raise ValueError(f"data.kind must be one of {DATASET_KINDS}, got {self.kind!r}")
        if self.kind != "synthetic" and not self.root:
            raise ValueError(f"data.root is required for data.kind {self.kind!r}")
        self.synthetic_seeds = tuple(self.synthetic_seeds)
        self.conditions = tuple(self.conditions)
        self.condition_weights = tuple(float(w) for w in self.condition_weights)
        condition_probabilities(self.conditions, self.condition_weights)  # refuse bad weights when read
        check_close_calls(self.close_call_prob, self.close_call_distance)
        if self.kind == "synthetic":
            try:  # a misspelt or out-of-range generator setting fails when read, not an epoch later
                self.synthetic_config()
            except TypeError as e:
                raise ValueError(f"data.synthetic: {e}") from None

    def synthetic_config(self) -> SyntheticConfig:
        return SyntheticConfig(**self.synthetic)


@dataclass
class OptimConfig:
    """AdamW, constant learning rates per group, gradient clipping: the paper's recipe."""

    lr_head: float = 5e-5
    lr_backbone: float = 5e-6
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    batch_size: int = 10  # per process (GPU)
    epochs: int = 30
    schedule: str = "constant"  # "constant" (paper) or "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.05  # cosine: final lr / base lr


@dataclass
class TrainConfig:
    model: dict = field(default_factory=dict)  # ModelConfig fields
    share_students: bool = False
    drop_path: float = 0.1  # stochastic depth of every backbone, 0 at the first block to this at the last
    # "distill" (stage 1: CKD) or "mce" (stage 2: frozen backbones, the fused head fine-tuned, with candidate
    # elimination where model.ce_loc sets it, as in the paper; without ce_loc the head alone is fine-tuned)
    stage: str = "distill"
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    init: str = "scratch"  # "scratch", an OSTrack/DropTrack checkpoint, or a CKD training checkpoint
    output_dir: str = "runs/ckd"
    amp: bool = False  # the paper trains in fp32
    sync_bn: bool = False  # SyncBatchNorm in the heads under DDP on CUDA
    save_every: int = 1  # epochs
    log_every: int = 10  # steps
    seed: int = 42
    export_inference: str = ""  # at the end also write a teacher-free inference checkpoint (relative: in output_dir)
    # Single-modality baselines ("rgb", "tir") trained beside the RGB + thermal model in the same process: the
    # same recipe, initialisation and pairs (rendered once and shared), each in output_dir/baseline_<modality>.
    # They start from `init` too: scratch or a single-modality tracking checkpoint keeps them fair baselines
    baselines: tuple[str, ...] = ()
    # False: only the baselines train, on the pairs they would have shared with the RGB + thermal model. This
    # re-creates (or extends) the baselines of a model that already exists without training it again
    train_fused: bool = True

    def __post_init__(self) -> None:
        if self.stage not in ("distill", "mce"):
            raise ValueError(f"stage must be 'distill' or 'mce', got {self.stage!r}")
        mc = self.model_config()
        # crops follow the network's input sizes
        self.sampling.template_size = mc.template_size
        self.sampling.search_size = mc.search_size
        self.sampling.patch_size = mc.patch_size
        self.baselines = tuple(self.baselines)
        if not self.train_fused and not self.baselines:
            raise ValueError("train_fused: false trains the baselines only, so it needs baselines (e.g. [rgb, tir])")
        if self.baselines:
            if self.sampling.modality != "rgbt":
                raise ValueError("baselines are trained beside an RGB + thermal model (sampling.modality: rgbt)")
            if any(m not in ("rgb", "tir") for m in self.baselines) or len(set(self.baselines)) != len(self.baselines):
                raise ValueError(f"baselines must be distinct entries of ['rgb', 'tir'], got {list(self.baselines)}")

    def baseline_config(self, modality: str) -> "TrainConfig":
        """This config as the `modality` baseline's own run: its checkpoints record a plain single-modality
        recipe that `ckd train` can resume or repeat on its own."""
        return dataclasses.replace(self, baselines=(), train_fused=True, output_dir=str(Path(self.output_dir) / f"baseline_{modality}"),
                                   sampling=dataclasses.replace(self.sampling, modality=modality))

    def model_config(self) -> ModelConfig:
        return ModelConfig(**self.model)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _scalar(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the field's scalar type, or ValueError naming the key: a typo must fail when read.

    PyYAML reads YAML 1.1, where ``5e-5`` (no dot) is text, not a number; the paper's learning rates are
    written that way, so a float field takes text that reads as a number.
    """
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # output_dir=2024
    else:
        return value
    raise ValueError(f"{where} must be {hint.__name__}, got {value!r}")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown keys in {where}: {unknown}; known: {sorted(names)}")
    kwargs = {}
    nested = {"data": DataConfig, "sampling": SamplingConfig, "optim": OptimConfig, "loss": LossWeights}
    for k, v in values.items():
        if cls is TrainConfig and k in nested:
            if not isinstance(v, dict):
                raise ValueError(f"{where}.{k} must be a mapping")
            v = _build(nested[k], v, f"{where}.{k}")
        else:
            v = _scalar(v, hints[k], f"{where}.{k}")
        kwargs[k] = v
    return cls(**kwargs)


def _set_path(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def config_from_dict(values: dict[str, Any], overrides: list[str] | None = None) -> TrainConfig:
    values = dict(values or {})
    for item in overrides or []:
        _set_path(values, *parse_assignment(item, "="))
    return _build(TrainConfig, values, "config")


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training config {path} does not exist")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"training config {path} must be a YAML mapping")
    return config_from_dict(values, overrides)
