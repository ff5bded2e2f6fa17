"""build_tracker: the one way from settings (checkpoint, device, precision, candidate elimination, tracker
configuration) to a ready tracker."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ckd_ros.data.synthetic import generate_sequence
from ckd_ros.model import ModelConfig, default_checkpoint_path
from ckd_ros.tracking.calibration import load_calibration
from ckd_ros.tracking import CandidateElimination, TrackerConfig, TrackerSpec, build_tracker

REPO = Path(__file__).resolve().parents[1]


def test_model_config_takes_one_keep_ratio_for_every_elimination_layer_or_one_per_layer():
    assert ModelConfig(ce_loc=(3, 6, 9), ce_keep_ratio=0.7).ce_keep_ratio == (0.7, 0.7, 0.7)
    assert ModelConfig(ce_loc=[3, 6], ce_keep_ratio=[0.7, 0.5]).ce_keep_ratio == (0.7, 0.5)
    with pytest.raises(TypeError, match=r"ce_keep_ratio must be a number in \(0, 1\] .* got str"):
        ModelConfig(ce_loc=(3,), ce_keep_ratio="0.7")
    with pytest.raises(ValueError, match="differ in length"):
        ModelConfig(ce_loc=(3, 6), ce_keep_ratio=(0.7, 0.7, 0.7))


def test_default_spec_is_the_embedded_model_on_the_cpu_as_the_reference_computes():
    spec = TrackerSpec()
    assert spec.uses_embedded_model and spec.checkpoint_path == default_checkpoint_path()
    tracker = build_tracker(spec)
    shipped = load_calibration(spec.calibration_path())       # the embedded model ships its status calibration
    assert str(tracker.device) == "cpu" and tracker.config == dataclasses.replace(TrackerConfig(), status=shipped.status)
    raw = build_tracker(TrackerSpec(calibration="none"))
    assert raw.config == TrackerConfig()


def test_candidate_elimination_is_set_from_the_spec_with_a_float_or_per_layer_keep_ratio(reference_dir):
    ckpt = reference_dir / "ckd_small.pth.tar"
    stored = build_tracker(TrackerSpec(checkpoint=ckpt)).net.config
    off = build_tracker(TrackerSpec(checkpoint=ckpt, candidate_elimination=CandidateElimination("off"))).net.config
    assert stored.ce_loc == () and off.ce_loc == ()     # the reference small model stores none
    on = build_tracker(TrackerSpec(checkpoint=ckpt, candidate_elimination=CandidateElimination(
        "on", keep_ratio=0.5))).net.config
    assert on.ce_loc == stored.mce_layers() and set(on.ce_keep_ratio) == {0.5}
    two = build_tracker(TrackerSpec(checkpoint=ckpt, candidate_elimination=CandidateElimination(
        "on", layers=(1, 2), keep_ratio=(0.8, 0.6)))).net.config
    assert two.ce_loc == (1, 2) and two.ce_keep_ratio == (0.8, 0.6)
    with pytest.raises(ValueError, match=r"candidate elimination at layers \[99\]"):
        build_tracker(TrackerSpec(checkpoint=ckpt, candidate_elimination=CandidateElimination("on", layers=(99,))))


def test_device_and_precision_are_refused_before_the_checkpoint_is_read(tmp_path):
    missing = tmp_path / "never_read.pth.tar"
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        build_tracker(TrackerSpec(checkpoint=missing, precision="fp16"))
    with pytest.raises(ValueError, match="precision"):
        build_tracker(TrackerSpec(checkpoint=missing, precision="fp8"))
    with pytest.raises(ValueError, match="device"):
        build_tracker(TrackerSpec(checkpoint=missing, device="tpu"))


def test_fast_precision_tracks_like_the_exact_path_on_a_synthetic_sequence():
    seq = generate_sequence(3, "normal", num_frames=6)
    boxes = {}
    for precision in ("exact", "fp32"):
        tracker = build_tracker(TrackerSpec(precision=precision))
        tracker.initialize(seq.rgb[0], seq.thermal[0], seq.boxes[0])
        boxes[precision] = np.array([tracker.track(r, t).box for r, t in zip(seq.rgb[1:], seq.thermal[1:])])
    assert np.abs(boxes["fp32"] - boxes["exact"]).max() < 0.05


def test_every_caller_builds_its_tracker_through_the_factory():
    """No other module constructs CKDTracker from settings (the issue's 'grep finds one')."""
    proc = subprocess.run(["grep", "-rln", "CKDTracker(", "ckd_ros", "benchmarks"], cwd=REPO,
                          capture_output=True, text=True)
    users = sorted(p for p in proc.stdout.split() if not p.endswith("tracker.py"))
    assert users == ["ckd_ros/tracking/factory.py"], users
