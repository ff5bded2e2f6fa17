"""From settings to a ready tracker: the one place that does it.

The node, ``ckd track``, ``ckd eval``, the benchmarks and the demo describe what they want as a
:class:`TrackerSpec` and call :func:`build_tracker`; checkpoint loading, device and precision rules,
candidate elimination, the status calibration and the tracker's configuration are applied here and
nowhere else.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ckd_ros.model import (CKDNet, check_precision, default_checkpoint_path, load_checkpoint, optimize,
                           resolve_device)
from ckd_ros.model.backends import BACKENDS, OnnxModel, check_backend, exported, load_backend
from ckd_ros.model.export import template_mask_name

from .calibration import load_calibration, load_for_checkpoint, resolve_calibration
from .tracker import CKDTracker, TrackerConfig

CEMode = Literal["checkpoint", "off", "on"]


@dataclass(frozen=True)
class CandidateElimination:
    """Which candidate-elimination schedule the network runs (no weights change with it).

    ``checkpoint``: as stored with the model; ``off``: none; ``on``: at ``layers`` (0-based blocks; empty =
    the paper's placement at 1/4, 1/2 and 3/4 of the depth) keeping ``keep_ratio`` of the search tokens
    each time (one number for every layer, or one per layer).
    """

    mode: CEMode = "checkpoint"
    layers: tuple[int, ...] = ()
    keep_ratio: float | tuple[float, ...] = 0.7

    def __post_init__(self) -> None:
        if self.mode not in ("checkpoint", "off", "on"):
            raise ValueError(f"candidate elimination mode must be checkpoint, off or on, got {self.mode!r}")
        object.__setattr__(self, "layers", tuple(int(v) for v in self.layers))

    def apply(self, net: CKDNet) -> None:
        if self.mode == "off":
            net.set_ce((), ())
        elif self.mode == "on":
            layers = self.layers or net.config.mce_layers()
            try:  # ModelConfig checks the schedule against this network's depth
                net.set_ce(layers, self.keep_ratio)
            except ValueError as exc:
                raise ValueError(f"candidate elimination at layers {list(layers)}: {exc}") from None


@dataclass
class TrackerSpec:
    """Everything that decides which tracker is built. Defaults: the embedded model, exactly as the
    reference computes, on the CPU."""

    checkpoint: str | Path | None = None     # None or "": the embedded demonstration model
    device: str = "cpu"                      # auto | cpu | cuda | cuda:N
    precision: str = "exact"                 # exact | fp32 | int8 | bf16 | fp16 (ckd_ros.model.optimize)
    # torch | onnxruntime | openvino | tensorrt (ckd_ros.model.backends): what runs the network's forward;
    # a .onnx checkpoint (from `ckd export`) runs as it is, a .pth.tar one is exported and checked first
    backend: str = "torch"
    num_heads: int | None = None             # for checkpoints without an embedded config and non-64-wide heads
    candidate_elimination: CandidateElimination = field(default_factory=CandidateElimination)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    # status calibration (ckd_ros.tracking.calibration): None or "" = the checkpoint's own
    # <name>.status.yaml when there is one (the embedded model ships with its own), "none" = the raw peak
    # with tracker.status' thresholds, else a file. A loaded calibration replaces tracker.status.
    calibration: str | Path | None = None
    # one initialise + track on a blank frame, so that the first real frame pays for no lazy set-up
    warm_up: bool = False

    @property
    def uses_embedded_model(self) -> bool:
        return not self.checkpoint

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint) if self.checkpoint else default_checkpoint_path()

    def calibration_path(self, given_net: bool = False) -> Path | None:
        """The calibration file this spec selects. With a network given instead of the checkpoint, only an
        explicitly named file applies (the checkpoint's own calibration is not that network's)."""
        if given_net and (self.calibration is None or str(self.calibration) == ""):
            return None
        return resolve_calibration(self.calibration, self.checkpoint_path)

    @property
    def is_onnx(self) -> bool:
        return self.checkpoint_path.suffix.lower() == ".onnx"


def build_tracker(spec: TrackerSpec, net: CKDNet | None = None) -> CKDTracker:
    """A ready :class:`CKDTracker` for ``spec``. ``net``: an already built network to use instead of
    loading ``spec.checkpoint`` (seeded benchmark models, training's evaluation); the rest of ``spec``
    applies to it as to a loaded one."""
    device = resolve_device(spec.device)
    # before the weights are read: a wrong choice (or a back end that is not installed) fails fast
    if spec.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {spec.backend!r}")
    if spec.backend == "torch":
        check_precision(spec.precision, device)
    else:
        check_backend(spec.backend, device, spec.precision)
    config = spec.tracker
    calibration = spec.calibration_path(given_net=net is not None)
    if calibration is not None:   # before the weights: a wrong file fails fast
        loaded = load_calibration(calibration) if net is not None else \
            load_for_checkpoint(calibration, spec.checkpoint_path)
        config = dataclasses.replace(config, status=loaded.status)
    if net is None and spec.is_onnx:
        network = _onnx_network(spec, device)
    else:
        if net is None:
            net = load_checkpoint(spec.checkpoint_path, num_heads=spec.num_heads)
        spec.candidate_elimination.apply(net)
        if spec.backend == "torch":
            network = optimize(net.to(device), spec.precision)
        else:
            model = exported(net, template_mask_name(net.config, spec.tracker.ce_template_mask),
                             path=None if spec.uses_embedded_model else spec.checkpoint_path)
            network = load_backend(spec.backend, model, device, spec.precision)
    tracker = CKDTracker(network, config, device=device)
    if spec.warm_up:
        warm_up(tracker)
    return tracker


def _onnx_network(spec: TrackerSpec, device):
    """An exported graph from `ckd export`: its schedule and template mask are fixed in it."""
    path = spec.checkpoint_path
    if spec.backend == "torch":
        raise ValueError(f"{path} is an exported ONNX graph: run it with backend onnxruntime, openvino or "
                         "tensorrt (backend torch reads .pth.tar checkpoints)")
    if spec.candidate_elimination.mode != "checkpoint":
        raise ValueError(f"candidate elimination is part of the exported graph {path}; export again with "
                         "`ckd export --ce off|mce` instead of choosing a schedule here")
    model = OnnxModel.read(path)
    wanted = template_mask_name(model.metadata.config, spec.tracker.ce_template_mask)
    if wanted != model.metadata.template_mask:
        raise ValueError(f"{path} has the template mask {model.metadata.template_mask!r} built in, the tracker "
                         f"configuration asks for {wanted!r}")
    return load_backend(spec.backend, model, device, spec.precision)


def warm_up(tracker: CKDTracker) -> None:
    rgb = np.zeros((tracker.search_size, tracker.search_size, 3), np.uint8)
    tracker.initialize(rgb, rgb, (96.0, 96.0, 64.0, 64.0))
    tracker.track(rgb, rgb)
    tracker.reset()


def with_tracker_config(spec: TrackerSpec, **changes: object) -> TrackerSpec:
    """``spec`` with some TrackerConfig fields replaced (e.g. ``profile=True`` for a benchmark)."""
    return dataclasses.replace(spec, tracker=dataclasses.replace(spec.tracker, **changes))


def describe(tracker: CKDTracker, spec: TrackerSpec) -> str:
    """One line for logs: which model runs where, how."""
    cfg = tracker.net.config
    source = f"the embedded demonstration model {spec.checkpoint_path}" if spec.uses_embedded_model \
        else str(spec.checkpoint_path)
    status = tracker.config.status
    if status.head is not None:
        calibrated = f"status calibrated ({spec.calibration_path() or spec.calibration}, lost below confidence " \
                     f"{status.lost_threshold:.3f} for {status.lost_patience} frames)"
    else:
        calibrated = (f"status UNCALIBRATED (raw peak below {status.lost_threshold} for {status.lost_patience} "
                      "frames; run `ckd calibrate` for this checkpoint)")
    return (f"{source}: embed {cfg.embed_dim}, depth {cfg.depth}, candidate elimination at {list(cfg.ce_loc)}, "
            f"{tracker.device}, {spec.precision}, backend {spec.backend}, {calibrated}")


__all__ = ["CandidateElimination", "TrackerSpec", "build_tracker", "warm_up", "with_tracker_config", "describe"]
